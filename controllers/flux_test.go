package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/gitops"
	"github.com/ferrycd/ferry/internal/testenv"
)

// fluxFixture is a Promotion whose stages are applied by Flux: real source-controller and kustomize-controller
// processes fetch the test Git server's repository and apply each stage's path into its namespace, and Ferry —
// the real pipeline, with ModeSyncer routing mode Flux to FluxSyncer — pins, asks Flux, and reads the
// Kustomizations.
type fluxFixture struct {
	*pipelineFixture
	e        *testenv.Env
	rollouts *rolloutController
	stages   []string          // dev, staging, prod
	ns       map[string]string // stage → namespace its Kustomization applies to
	repo     string            // the repository's name on the test Git server
	repoURL  string
}

const fluxSource = "deploy" // the GitRepository every stage's Kustomization applies from

func newFluxFixture(t testing.TB, stages ...string) *fluxFixture {
	t.Helper()
	e := testenv.Need(t, env)
	fluxBinaries(t) // skip before building anything when Flux is not built
	f := &fluxFixture{pipelineFixture: newPipelineFixture(t, e), e: e, stages: stages, ns: map[string]string{}, repo: "acme/flux"}
	files := map[string]string{}
	var namespaces []string
	for _, s := range stages {
		f.ns[s] = e.Namespace(t)
		namespaces = append(namespaces, f.ns[s])
		image := f.stageReg.Host + "/" + s + "/shop"
		files["envs/"+s+"/kustomization.yaml"] = "resources:\n  - deployment.yaml\nimages:\n  - name: " + image +
			"\n    newTag: \"0.9\"\n"
		files["envs/"+s+"/deployment.yaml"] = deploymentYAML(image + ":0.9")
	}
	f.repoURL = f.git.NewRepo(f.repo, files)
	f.rollouts = startRolloutController(t, e.Client, namespaces...)
	startAvailability(t, e.Client, namespaces...)
	startFlux(t, e)
	f.create(t, gitRepository(f.pipelineFixture.ns, fluxSource, f.repoURL))
	return f
}

// create creates a Flux object, and deletes it before Flux stops at the end of the test, so that Flux removes
// its finalizer and the next test's controllers do not reconcile it.
func (f *fluxFixture) create(t testing.TB, obj *unstructured.Unstructured) {
	t.Helper()
	if err := f.e.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
	t.Cleanup(func() { _ = f.e.Client.Delete(context.Background(), obj.DeepCopy()) })
}

// kustomizationName is the Kustomization of a stage.
func kustomizationName(stage string) string { return "shop-" + stage }

// createKustomization creates the Kustomization of stage, suspended or not.
func (f *fluxFixture) createKustomization(t testing.TB, stage string, suspend bool) {
	t.Helper()
	k := kustomization(f.pipelineFixture.ns, kustomizationName(stage), fluxSource, "./envs/"+stage, f.ns[stage])
	if suspend {
		_ = unstructured.SetNestedField(k.Object, true, "spec", "suspend")
	}
	f.create(t, k)
}

// engines runs Ferry's own sync for mode Ferry and FluxSyncer for mode Flux.
func (f *fluxFixture) engines(t testing.TB) Engines {
	t.Helper()
	ferry, flux := NewGitopsSyncer(), NewFluxSyncer()
	t.Cleanup(ferry.Close)
	t.Cleanup(flux.Close)
	return Engines{Git: newGitEngine(t), Sync: &ModeSyncer{Ferry: ferry, Flux: flux}, WorkDir: t.TempDir()}
}

// promotion is a Promotion of the fixture's stages, each synced by its Flux Kustomization.
func (f *fluxFixture) promotion() *ferryv1.Promotion {
	p := f.pipelineFixture.promotion()
	p.Spec.Git.URL = f.repoURL
	p.Spec.Interval = &metav1.Duration{Duration: time.Second} // new releases are found by polling
	p.Spec.Stages = nil
	for _, s := range f.stages {
		p.Spec.Stages = append(p.Spec.Stages, ferryv1.StageSpec{
			Name: s, Path: "envs/" + s,
			Registry: ferryv1.StageRegistry{Repository: f.stageReg.Host + "/" + s + "/shop"},
			Sync: ferryv1.SyncSpec{Namespace: f.ns[s], Mode: ferryv1.SyncFlux,
				Flux: &ferryv1.FluxSyncSpec{Name: kustomizationName(s)}},
		})
	}
	return p
}

// waitStage waits until stage runs digest, settled in phase.
func (f *fluxFixture) waitStage(t testing.TB, name, stage, digest string, phase ferryv1.StagePhase) ferryv1.StageStatus {
	t.Helper()
	var got ferryv1.StageStatus
	fluxEventually(t, fmt.Sprintf("%s to run %s (%s)", stage, digest, phase), func() (bool, string) {
		p := getPromotion(t, f.e.Client, f.pipelineFixture.ns, name)
		for _, st := range p.Status.Stages {
			if st.Name == stage {
				got = st
				return st.Digest == digest && st.Phase == phase && st.InFlightDigest == "", string(st.Phase) + ": " + st.Message
			}
		}
		return false, p.Status.Summary + "; " + conditionState(p, ferryv1.ConditionReady)
	})
	return got
}

// image is what the Deployment of stage runs.
func (f *fluxFixture) image(t testing.TB, stage string) string {
	t.Helper()
	var d appsv1.Deployment
	if err := f.e.Client.Get(context.Background(), types.NamespacedName{Namespace: f.ns[stage], Name: "shop"}, &d); err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

// commits lists Ferry's commits of a stage, newest first.
func (f *fluxFixture) commits(stage string) []string {
	var out []string
	for _, c := range f.git.Log(f.repo) {
		if c.Trailers[gitops.TrailerStage] == stage {
			out = append(out, c.Trailers[gitops.TrailerDigest]+rollbackMark(c.Trailers))
		}
	}
	return out
}

// appliedCommit says whether stage's Kustomization applied commit and is Ready.
func (f *fluxFixture) appliedCommit(t testing.TB, stage, commit string) (bool, string) {
	k := readKustomization(t, f.e.Client, f.pipelineFixture.ns, kustomizationName(stage))
	return k.appliedReady(commit), k.assess(ExternalRef{Kind: "Kustomization", Name: kustomizationName(stage)}, commit).Message
}

// TestFluxPromotionReachesProd: a digest moves dev → staging → prod with every stage applied by its Flux
// Kustomization. The GitRepository and the Kustomizations reconcile on their own only hourly, so each stage
// syncing at once shows Ferry's reconcile requests, and each stage moving on at once shows the watch.
func TestFluxPromotionReachesProd(t *testing.T) {
	f := newFluxFixture(t, "dev", "staging", "prod")
	for _, s := range f.stages {
		f.createKustomization(t, s, false)
	}
	startManager(t, f.engines(t))
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	if err := f.e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var prod ferryv1.StageStatus
	for _, s := range f.stages {
		prod = f.waitStage(t, p.Name, s, v1, ferryv1.PhasePromoted)
		t.Logf("%s promoted %.1f s after the Promotion was created", s, time.Since(start).Seconds())
	}
	for _, s := range f.stages {
		if img, want := f.image(t, s), f.stageReg.Host+"/"+s+"/shop@"+v1; img != want {
			t.Errorf("%s runs %s, want %s", s, img, want)
		}
		if c := f.commits(s); len(c) != 1 || c[0] != v1 {
			t.Errorf("%s commits = %v, want one pinning %s", s, c, v1)
		}
	}
	// prod's commit is the last one: every Kustomization (they share the GitRepository) ends there.
	if head := f.git.Head(f.repo, "main"); head != prod.LastCommit {
		t.Fatalf("the branch is at %s, prod's commit is %s", head, prod.LastCommit)
	}
	for _, s := range f.stages {
		fluxEventually(t, s+"'s Kustomization to apply Ferry's last commit", func() (bool, string) {
			return f.appliedCommit(t, s, prod.LastCommit)
		})
	}
}

// TestFluxFailedRolloutRollsBackThroughGit: a digest whose rollout fails fails Flux's health check; Ferry commits
// the previous digest back to Git, and Flux applies that commit: Git and the cluster agree again.
func TestFluxFailedRolloutRollsBackThroughGit(t *testing.T) {
	f := newFluxFixture(t, "dev")
	f.createKustomization(t, "dev", false)
	startManager(t, f.engines(t))
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	if err := f.e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	f.waitStage(t, p.Name, "dev", v1, ferryv1.PhasePromoted)

	bad := f.pushRelease(t, "1.1.0", true).DigestStr()
	f.rollouts.failRollouts(bad)
	st := f.waitStage(t, p.Name, "dev", v1, ferryv1.PhaseRolledBack)
	if c := f.commits("dev"); len(c) != 3 || c[0] != v1+" (rollback)" || c[1] != bad {
		t.Errorf("dev commits, newest first = %v", c)
	}
	if st.Hold == nil || st.Hold.Reason != ReasonHealthFailed || len(st.History) < 2 || !strings.Contains(st.History[1].Reason, "HealthCheckFailed") {
		t.Errorf("hold = %+v, history = %+v: want the failed health check named", st.Hold, st.History)
	}
	// Flux applied the rollback commit, and the Deployment runs the previous digest again.
	if ok, state := f.appliedCommit(t, "dev", st.LastCommit); !ok {
		t.Errorf("the Kustomization did not apply the rollback commit %s: %s", st.LastCommit, state)
	}
	if img, want := f.image(t, "dev"), f.stageReg.Host+"/dev/shop@"+v1; img != want {
		t.Errorf("dev runs %s after the rollback, want %s", img, want)
	}
}

// TestFluxMissingKustomizationStallsUntilCreated: a stage naming a Kustomization that does not exist stalls naming
// spec.stages[0].sync.flux.name, with no retry; creating the Kustomization brings it back through the watch, and
// Ferry asks it to apply its commit (the GitRepository would fetch only in an hour).
func TestFluxMissingKustomizationStallsUntilCreated(t *testing.T) {
	f := newFluxFixture(t, "dev")
	startManager(t, f.engines(t))
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	if err := f.e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	fluxEventually(t, "a stall naming sync.flux.name", func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.pipelineFixture.ns, p.Name)
		c := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionStalled)
		return c != nil && c.Reason == ReasonExternalNotFound && strings.HasPrefix(c.Message, "spec.stages[0].sync.flux.name: "),
			conditionState(got, ferryv1.ConditionStalled)
	})

	f.createKustomization(t, "dev", false)
	st := f.waitStage(t, p.Name, "dev", v1, ferryv1.PhasePromoted)
	if ok, state := f.appliedCommit(t, "dev", st.LastCommit); !ok {
		t.Errorf("the Kustomization did not apply Ferry's commit %s: %s", st.LastCommit, state)
	}
	if got := getPromotion(t, f.e.Client, f.pipelineFixture.ns, p.Name); apimeta.IsStatusConditionTrue(got.Status.Conditions, ferryv1.ConditionStalled) {
		t.Errorf("still stalled: %s", conditionState(got, ferryv1.ConditionStalled))
	}
}

// TestFluxRestartMidSyncResumes: Ferry's controller stops while Flux has not applied its commit yet (the
// Kustomization is suspended); started again, it waits for the same commit — no second commit — and promotes it
// once Flux applies it.
func TestFluxRestartMidSyncResumes(t *testing.T) {
	f := newFluxFixture(t, "dev")
	f.createKustomization(t, "dev", true)
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	if err := f.e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	var before ferryv1.StageStatus
	t.Run("first controller", func(t *testing.T) {
		startManager(t, f.engines(t)) // stopped when this subtest ends
		fluxEventually(t, "dev to wait for the suspended Kustomization", func() (bool, string) {
			stages := getPromotion(t, f.e.Client, f.pipelineFixture.ns, p.Name).Status.Stages
			if len(stages) == 0 {
				return false, "no stage status yet"
			}
			before = stages[0]
			return before.Phase == ferryv1.PhaseProgressing && strings.Contains(before.Message, "suspended"), before.Message
		})
	})
	setSuspended(t, f.e.Client, f.pipelineFixture.ns, kustomizationName("dev"), false)
	startManager(t, f.engines(t)) // a fresh process: nothing remembered but the Promotion's status
	st := f.waitStage(t, p.Name, "dev", v1, ferryv1.PhasePromoted)
	if st.LastCommit != before.LastCommit {
		t.Errorf("promoted at commit %s, the first controller pinned %s", st.LastCommit, before.LastCommit)
	}
	if c := f.commits("dev"); len(c) != 1 {
		t.Errorf("dev commits = %v, want exactly one", c)
	}
	if ok, state := f.appliedCommit(t, "dev", st.LastCommit); !ok {
		t.Errorf("the Kustomization did not apply Ferry's commit: %s", state)
	}
}

// TestFluxHelmReleaseIsRefused: a HelmRelease is not followed by this controller: the stage stalls naming
// sync.flux.kind rather than pinning commits nobody reports on.
func TestFluxHelmReleaseIsRefused(t *testing.T) {
	f := newFluxFixture(t, "dev")
	startManager(t, f.engines(t))
	f.pushRelease(t, "1.0.0", true)
	p := f.promotion()
	p.Spec.Stages[0].Sync.Flux.Kind = ferryv1.FluxHelmRelease
	if err := f.e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	fluxEventually(t, "a stall naming sync.flux.kind", func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.pipelineFixture.ns, p.Name)
		c := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionStalled)
		return c != nil && c.Reason == ReasonNotSupported && strings.HasPrefix(c.Message, "spec.stages[0].sync.flux.kind: ") &&
			strings.Contains(c.Message, "not supported by this controller"), conditionState(got, ferryv1.ConditionStalled)
	})
}

// A Flux object's watch lives as long as a stage names an object in its namespace.
func TestFluxWatchesStopWhenNoStageNamesThem(t *testing.T) {
	e := testenv.Need(t, env)
	s := NewFluxSyncer()
	defer s.Close()
	target := func(owner, ns, name string) SyncTarget {
		return SyncTarget{Config: e.Config, Owner: owner, Mode: ferryv1.SyncFlux,
			External: ExternalRef{Kind: "Kustomization", Namespace: ns, Name: name}}
	}
	if err := s.Expect([]SyncTarget{target("a.shop.dev", "team", "shop-dev"), target("a.shop.prod", "team", "shop-prod"),
		target("b.web.dev", "web", "web-dev")}); err != nil {
		t.Fatal(err)
	}
	if n := s.Watches(); n != 2 {
		t.Fatalf("%d watches, want one per namespace (2)", n)
	}
	s.Forget("a.shop.dev")
	if n := s.Watches(); n != 2 {
		t.Errorf("%d watches after one of team's two stages went, want 2", n)
	}
	s.Forget("a.shop.prod")
	if n := s.Watches(); n != 1 {
		t.Errorf("%d watches after team's stages went, want 1", n)
	}
	// A stage that names another object moves its watch.
	if err := s.Expect([]SyncTarget{target("b.web.dev", "web2", "web-dev")}); err != nil {
		t.Fatal(err)
	}
	if n := s.Watches(); n != 1 {
		t.Errorf("%d watches after the stage moved, want 1", n)
	}
}

func TestFluxHealthAssessment(t *testing.T) {
	const sha, old = "0123456789abcdef0123456789abcdef01234567", "fedcba9876543210fedcba9876543210fedcba98"
	ref := ExternalRef{Kind: "Kustomization", Namespace: "team", Name: "shop-dev"}
	ready := func(status, reason, msg string) fluxCondition {
		return fluxCondition{Type: "Ready", Status: status, Reason: reason, Message: msg}
	}
	k := func(applied, attempted string, gen, observed int64, conds ...fluxCondition) *fluxKustomization {
		return &fluxKustomization{Metadata: fluxMeta{Generation: gen}, Status: fluxStatus{ObservedGeneration: observed,
			LastAppliedRevision: applied, LastAttemptedRevision: attempted, Conditions: conds}}
	}
	for _, tc := range []struct {
		name              string
		k                 *fluxKustomization
		healthy, degraded bool
		messageContains   string
	}{
		{"applied and ready", k("main@sha1:"+sha, "main@sha1:"+sha, 2, 2, ready("True", "ReconciliationSucceeded", "Applied")),
			true, false, "applied main@sha1:" + sha},
		{"legacy revision form", k("main/"+sha, "main/"+sha, 1, 1, ready("True", "ReconciliationSucceeded", "")), true, false, ""},
		{"ready at an older commit", k("main@sha1:"+old, "main@sha1:"+old, 1, 1, ready("True", "ReconciliationSucceeded", "")),
			false, false, "Flux Kustomization team/shop-dev at main@sha1:fedcba987654, waiting for 0123456789ab"},
		{"spec changed since", k("main@sha1:"+sha, "main@sha1:"+sha, 3, 2, ready("True", "ReconciliationSucceeded", "")),
			false, false, "waiting for"},
		{"health check failed at Ferry's commit", k("main@sha1:"+old, "main@sha1:"+sha, 1, 1,
			ready("False", "HealthCheckFailed", "timeout waiting for: [Deployment/dev/shop status: 'Failed']")),
			false, true, "failed at main@sha1:0123456789ab: False, HealthCheckFailed: timeout waiting for"},
		{"health check failed at an older commit", k("main@sha1:"+old, "main@sha1:"+old, 1, 1, ready("False", "HealthCheckFailed", "x")),
			false, false, "waiting for 0123456789ab (Ready False, HealthCheckFailed: x)"},
		{"source not fetched yet", k("", "main@sha1:"+sha, 1, 0, ready("False", "ArtifactFailed", "Source artifact not found")),
			false, false, "has applied nothing yet"},
		{"in progress", k("main@sha1:"+old, "main@sha1:"+sha, 1, 1, ready("Unknown", "Progressing", "Reconciliation in progress")),
			false, false, "Ready Unknown, Progressing"},
		{"stalled", k("", "", 1, 1, fluxCondition{Type: "Stalled", Status: "True", Reason: "InvalidCELExpression", Message: "bad"}),
			false, true, "is stalled: InvalidCELExpression: bad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.k.assess(ref, sha)
			if h.Healthy != tc.healthy || h.Degraded != tc.degraded || !strings.Contains(h.Message, tc.messageContains) {
				t.Errorf("got %+v, want healthy %t, degraded %t, a message with %q", h, tc.healthy, tc.degraded, tc.messageContains)
			}
		})
	}
	suspended := k("main@sha1:"+old, "", 1, 1)
	suspended.Spec.Suspend = true
	if h := suspended.assess(ref, sha); h.Healthy || h.Degraded || !strings.Contains(h.Message, "suspended") {
		t.Errorf("a suspended Kustomization: %+v", h)
	}
	if long := cutFluxMessage(strings.Repeat("é", fluxMessageMax)); len(long) > fluxMessageMax+len("…") {
		t.Errorf("a message of %d bytes kept", len(long))
	}
}

// The errors FluxSyncer returns stall the stage naming the field at fault; others are left as they are.
func TestFluxStallNamesTheField(t *testing.T) {
	p := samplePromotion(t, "team")
	ref := ExternalRef{Kind: "HelmRelease", Namespace: "team", Name: "shop"}
	p.Spec.Stages[1].Sync.Mode = ferryv1.SyncFlux
	p.Spec.Stages[1].Sync.Flux = &ferryv1.FluxSyncSpec{Kind: ferryv1.FluxHelmRelease, Name: "shop"}
	if s := externalStall(p, 1, fmt.Errorf("wrapped: %w", fluxServes(SyncTarget{External: ref}))); s == nil ||
		s.Field != "spec.stages[1].sync.flux.kind" || s.Reason != ReasonNotSupported {
		t.Errorf("a HelmRelease: %v", s)
	}
	ref.Kind = "Kustomization"
	if s := externalStall(p, 1, &ExternalMissing{Ref: ref}); s == nil || s.Field != "spec.stages[1].sync.flux.name" {
		t.Errorf("a missing Kustomization: %v", s)
	}
	if s := externalStall(p, 1, errors.New("connection refused")); s != nil {
		t.Errorf("a cluster error stalls: %v", s)
	}
	if err := fluxServes(SyncTarget{External: ref}); err != nil {
		t.Errorf("a Kustomization is refused: %v", err)
	}
}
