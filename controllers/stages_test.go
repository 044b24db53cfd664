package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/gitops"
	"github.com/ferrycd/ferry/internal/signature/signaturetest"
	"github.com/ferrycd/ferry/internal/sync"
	"github.com/ferrycd/ferry/internal/testenv"
)

// stagesFixture runs two stages, dev (kustomize) and staging (plain manifests), synced into two namespaces of
// the test API server by the real sync engine, with the test playing the deployment controller.
type stagesFixture struct {
	*pipelineFixture
	e        *testenv.Env
	rollouts *rolloutController
	dev, stg string // stage namespaces
	syncer   *countingSyncer
}

// countingSyncer counts the renders a Syncer is asked for outside a sync.
type countingSyncer struct {
	Syncer
	renders atomic.Int32
}

func (c *countingSyncer) Objects(t SyncTarget, dir string) ([]sync.ObjectRef, error) {
	c.renders.Add(1)
	return c.Syncer.Objects(t, dir)
}

func newStagesFixture(t testing.TB) *stagesFixture {
	t.Helper()
	return newStagesFixtureWith(t, func(*Engines) {})
}

// newStagesFixtureWith is newStagesFixture with engines changed by with before the manager starts.
func newStagesFixtureWith(t testing.TB, with func(*Engines)) *stagesFixture {
	t.Helper()
	f, engines := stagesFixtureEngines(t)
	with(&engines)
	startManager(t, engines)
	return f
}

// stagesFixtureEngines sets up the stages fixture and returns it with the engines its manager is to run, for the
// caller to start the manager its own way.
func stagesFixtureEngines(t testing.TB) (*stagesFixture, Engines) {
	t.Helper()
	e := testenv.Need(t, env)
	f := &stagesFixture{pipelineFixture: newPipelineFixture(t, e), e: e, dev: e.Namespace(t), stg: e.Namespace(t)}
	f.rollouts = startRolloutController(t, e.Client, f.dev, f.stg)
	syncer := NewGitopsSyncer()
	t.Cleanup(syncer.Close)
	f.syncer = &countingSyncer{Syncer: syncer}
	return f, Engines{Git: newGitEngine(t), Sync: f.syncer, WorkDir: t.TempDir()}
}

func (f *stagesFixture) promotion() *ferryv1.Promotion {
	p := f.pipelineFixture.promotion()
	p.Spec.Interval = &metav1.Duration{Duration: time.Second} // new releases are found by polling
	p.Spec.Stages[0].Sync.Namespace = f.dev
	p.Spec.Stages = append(p.Spec.Stages, ferryv1.StageSpec{
		Name: "staging", Path: "envs/staging", Manifest: ferryv1.ManifestSpec{Format: ferryv1.ManifestPlain},
		Registry: ferryv1.StageRegistry{Repository: f.stageReg.Host + "/staging/shop"},
		Sync:     ferryv1.SyncSpec{Namespace: f.stg},
	})
	return p
}

// waitStages waits until every stage runs digest and is settled in phase.
func (f *stagesFixture) waitStages(t testing.TB, name, digest string, phase ferryv1.StagePhase, stages ...string) *ferryv1.Promotion {
	t.Helper()
	var got *ferryv1.Promotion
	eventually(t, fmt.Sprintf("%v to run %s (%s)", stages, digest, phase), func() (bool, string) {
		got = getPromotion(t, f.e.Client, f.ns, name)
		found := 0
		for _, st := range got.Status.Stages {
			if !contains(stages, st.Name) {
				continue
			}
			found++
			if st.Digest != digest || st.Phase != phase || st.InFlightDigest != "" {
				return false, got.Status.Summary + "; " + st.Name + ": " + st.Message
			}
		}
		// Every stage named must be there: a misspelt name must not make the wait pass.
		return found == len(stages), got.Status.Summary
	})
	return got
}

func (f *stagesFixture) deploymentImage(t testing.TB, ns string) string {
	t.Helper()
	var d appsv1.Deployment
	if err := f.e.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "shop"}, &d); err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

// stageCommits lists the Ferry commits of a stage, newest first.
func (f *stagesFixture) stageCommits(stage string) []string {
	var out []string
	for _, c := range f.git.Log("acme/deploy") {
		if c.Trailers[gitops.TrailerStage] == stage {
			out = append(out, c.Trailers[gitops.TrailerDigest]+rollbackMark(c.Trailers))
		}
	}
	return out
}

func rollbackMark(trailers map[string]string) string {
	if _, ok := trailers[gitops.TrailerRollback]; ok {
		return " (rollback)"
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestDigestMovesThroughEveryStage(t *testing.T) {
	f := newStagesFixture(t)
	ctx := context.Background()
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	if err := f.e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	got := f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev", "staging")

	// The same digest runs everywhere, pulled from each stage's own registry, pinned by digest.
	if img := f.deploymentImage(t, f.dev); img != f.stageReg.Host+"/dev/shop@"+v1 {
		t.Errorf("dev runs %s", img)
	}
	if img := f.deploymentImage(t, f.stg); img != f.stageReg.Host+"/staging/shop@"+v1 {
		t.Errorf("staging runs %s", img)
	}
	// Staging took the digest from dev's registry, not from the source.
	if h := got.Status.Stages[1].History; len(h) != 1 || h[0].Source != f.stageReg.Host+"/dev/shop@"+v1 ||
		h[0].Outcome != ferryv1.OutcomePromoted || h[0].Approver != "automatic" || len(h[0].Signers) != 1 {
		t.Errorf("staging history = %+v", h)
	}
	if got := f.stageCommits("staging"); len(got) != 1 {
		t.Errorf("staging commits = %v, want one", got)
	}

	// A second release follows the same path; the first stays in history for rollbacks.
	v2 := f.pushRelease(t, "1.1.0", true).DigestStr()
	got = f.waitStages(t, p.Name, v2, ferryv1.PhasePromoted, "dev", "staging")
	if h := got.Status.Stages[0].History; len(h) != 2 || h[0].Digest != v2 || h[1].Digest != v1 {
		t.Errorf("dev history = %+v", h)
	}
	if c := f.stageCommits("dev"); len(c) != 2 {
		t.Errorf("dev commits = %v, want two", c)
	}
	if !hasEvent(t, f.e.Client, f.ns, p.Name, corev1.EventTypeNormal, ReasonPromoted) {
		t.Error("no Promoted event")
	}
	// Health polls and drift checks used what each sync rendered: a commit never needs rendering twice.
	if n := f.syncer.renders.Load(); n != 0 {
		t.Errorf("%d renders outside a sync, want none", n)
	}
}

func TestFailedHealthRollsBackThroughGit(t *testing.T) {
	f := newStagesFixture(t)
	p, v1 := f.devRunning(t)

	bad := f.pushRelease(t, "1.1.0", true).DigestStr()
	f.rollouts.failRollouts(bad)
	got := f.waitStages(t, p.Name, v1, ferryv1.PhaseRolledBack, "dev")

	// Git and cluster agree again: the last commit pins v1 with a rollback trailer, and dev runs v1.
	if c := f.stageCommits("dev"); len(c) != 3 || c[0] != v1+" (rollback)" || c[1] != bad {
		t.Errorf("dev commits, newest first = %v", c)
	}
	if img := f.deploymentImage(t, f.dev); img != f.stageReg.Host+"/dev/shop@"+v1 {
		t.Errorf("dev runs %s after the rollback", img)
	}
	st := got.Status.Stages[0]
	if st.Hold == nil || st.Hold.Digest != v1 || st.Hold.Reason != ReasonHealthFailed || st.Hold.RequestedBy != "ferry" {
		t.Errorf("hold = %+v", st.Hold)
	}
	if h := st.History; len(h) < 2 || h[1].Digest != bad || h[1].Outcome != ferryv1.OutcomeRolledBack {
		t.Errorf("history = %+v", h)
	}
	if !hasEvent(t, f.e.Client, f.ns, p.Name, corev1.EventTypeWarning, ReasonHealthFailed) {
		t.Error("no HealthFailed event")
	}
}

func TestOnCallRollbackByAnnotation(t *testing.T) {
	f := newStagesFixture(t)
	p, v1 := f.devRunning(t)
	v2 := f.pushRelease(t, "1.1.0", true).DigestStr()
	f.waitStages(t, p.Name, v2, ferryv1.PhasePromoted, "dev")

	annotate(t, f.e.Client, f.ns, p.Name, ferryv1.RollbackAnnotation, "dev")
	got := f.waitStages(t, p.Name, v1, ferryv1.PhaseRolledBack, "dev")
	if _, still := got.Annotations[ferryv1.RollbackAnnotation]; still {
		t.Error("the rollback annotation was not removed")
	}
	if c := f.stageCommits("dev"); len(c) != 3 || c[0] != v1+" (rollback)" {
		t.Errorf("dev commits = %v", c)
	}
	if img := f.deploymentImage(t, f.dev); !strings.HasSuffix(img, "@"+v1) {
		t.Errorf("dev runs %s", img)
	}
	if h := got.Status.Stages[0].Hold; h == nil || h.Reason != ReasonRollbackRequested || h.RequestedBy != "on-call-alice"+UnauthenticatedMark {
		t.Errorf("hold = %+v", h)
	}

	// Held: v2 is not promoted again by itself. A newer release releases the hold.
	if why := notHeldOff(&scope{p: got}, 0, v2); why == "" {
		t.Error("the rolled-back digest is not refused while held")
	}
	v3 := f.pushRelease(t, "1.2.0", true).DigestStr()
	got = f.waitStages(t, p.Name, v3, ferryv1.PhasePromoted, "dev")
	if got.Status.Stages[0].Hold != nil {
		t.Errorf("hold not released by a newer digest: %+v", got.Status.Stages[0].Hold)
	}
}

func TestRollbackToADigestNotInHistoryIsRefused(t *testing.T) {
	f := newStagesFixture(t)
	p, _ := f.devRunning(t)
	commits := len(f.git.Log("acme/deploy"))
	stranger := "sha256:" + strings.Repeat("0", 64)
	annotate(t, f.e.Client, f.ns, p.Name, ferryv1.RollbackAnnotation, "dev="+stranger)
	eventually(t, "the request to be refused", func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		return strings.Contains(conditionState(got, ferryv1.ConditionStalled), ReasonInvalidRollback), conditionState(got, ferryv1.ConditionStalled)
	})
	if n := len(f.git.Log("acme/deploy")); n != commits {
		t.Errorf("a refused rollback committed %d times", n-commits)
	}
}

// devRunning creates a dev-only Promotion and waits until dev runs a first signed release, which it returns.
func (f *stagesFixture) devRunning(t testing.TB) (*ferryv1.Promotion, string) {
	t.Helper()
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	p.Spec.Stages = p.Spec.Stages[:1]
	if err := f.e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev")
	return p, v1
}

func annotate(t testing.TB, c client.Client, ns, name, key, value string) {
	t.Helper()
	p := getPromotion(t, c, ns, name)
	patch := client.MergeFrom(p.DeepCopy())
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[key] = value
	if err := c.Patch(context.Background(), p, patch, client.FieldOwner("on-call-alice")); err != nil {
		t.Fatal(err)
	}
}

// TestDriftIsReportedWhenTheClusterChanges: a hand edit of a synced Deployment is reported as drift at once — the
// sync engine's watch wakes the Promotion — not at the next poll, which here is an hour away.
func TestDriftIsReportedWhenTheClusterChanges(t *testing.T) {
	f := newStagesFixture(t)
	ctx := context.Background()
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	p.Spec.Interval = &metav1.Duration{Duration: time.Hour}
	p.Spec.Stages = p.Spec.Stages[:1]
	if err := f.e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev")
	if c := apimeta.FindStatusCondition(getPromotion(t, f.e.Client, f.ns, p.Name).Status.Conditions, ConditionDrifted); c != nil {
		t.Fatalf("drift reported before anything changed: %+v", c)
	}

	// Someone runs `kubectl set image` on dev.
	var d appsv1.Deployment
	if err := f.e.Client.Get(ctx, types.NamespacedName{Namespace: f.dev, Name: "shop"}, &d); err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = f.stageReg.Host + "/dev/shop:hotfix"
	if err := f.e.Client.Update(ctx, &d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Drifted condition", func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		c := apimeta.FindStatusCondition(got.Status.Conditions, ConditionDrifted)
		if c == nil {
			return false, got.Status.Summary
		}
		return c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "hotfix"), c.Message
	})
}

// TestSourceOutageDoesNotStopARollback: with the source registry gone, Ready names it, and an on-call rollback of a
// stage still goes through Git and the cluster — a failing source never freezes the stages.
func TestSourceOutageDoesNotStopARollback(t *testing.T) {
	f := newStagesFixture(t)
	p, v1 := f.devRunning(t)
	v2 := f.pushRelease(t, "1.1.0", true).DigestStr()
	f.waitStages(t, p.Name, v2, ferryv1.PhasePromoted, "dev")

	f.source.Close()
	eventually(t, "Ready=False RegistryUnavailable", func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		ready := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady)
		return ready != nil && ready.Reason == ReasonRegistryUnavailable, conditionState(got, ferryv1.ConditionReady)
	})
	annotate(t, f.e.Client, f.ns, p.Name, ferryv1.RollbackAnnotation, "dev")
	f.waitStages(t, p.Name, v1, ferryv1.PhaseRolledBack, "dev")
	if img := f.deploymentImage(t, f.dev); !strings.HasSuffix(img, "@"+v1) {
		t.Errorf("dev runs %s after the rollback", img)
	}
}

// TestRollbackToADigestThatNoLongerVerifiesIsRefused: once the release key is replaced (the old one revoked), a
// rollback to a digest signed only by the old key is refused — nothing is committed — and the stage says why.
func TestRollbackToADigestThatNoLongerVerifiesIsRefused(t *testing.T) {
	f := newStagesFixture(t)
	p, v1 := f.devRunning(t)
	v2 := f.pushRelease(t, "1.1.0", true).DigestStr()
	f.waitStages(t, p.Name, v2, ferryv1.PhasePromoted, "dev")
	commits := len(f.git.Log("acme/deploy"))

	var key corev1.Secret
	ctx := context.Background()
	if err := f.e.Client.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "cosign"}, &key); err != nil {
		t.Fatal(err)
	}
	key.Data["cosign.pub"] = signaturetest.NewKeySigner(t).PublicKeyPEM // the old key is revoked
	if err := f.e.Client.Update(ctx, &key); err != nil {
		t.Fatal(err)
	}
	annotate(t, f.e.Client, f.ns, p.Name, ferryv1.RollbackAnnotation, "dev="+v1)
	var got *ferryv1.Promotion
	eventually(t, "the rollback to be refused", func() (bool, string) {
		got = getPromotion(t, f.e.Client, f.ns, p.Name)
		st := got.Status.Stages[0]
		return st.Phase == ferryv1.PhaseFailed && strings.Contains(st.Message, "refused"), string(st.Phase) + ": " + st.Message
	})
	if n := len(f.git.Log("acme/deploy")); n != commits {
		t.Errorf("%d commits after a refused rollback, want none", n-commits)
	}
	if img := f.deploymentImage(t, f.dev); !strings.HasSuffix(img, "@"+v2) {
		t.Errorf("dev runs %s, want %s still", img, v2)
	}
	if !hasEvent(t, f.e.Client, f.ns, p.Name, corev1.EventTypeWarning, ReasonRollbackRefused) {
		t.Error("no RollbackRefused event")
	}
}
