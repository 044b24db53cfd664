package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	gosync "sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/gitops"
	"github.com/ferrycd/ferry/internal/sync"
	"github.com/ferrycd/ferry/internal/testenv"
)

// argoFixture is a Promotion whose stages are synced by a real Argo CD: Ferry verifies, copies and pins each
// digest in Git (plain manifests under envs/argo-<stage>), and each stage's Application syncs that path from the
// same repository into the stage's namespace of the test API server, where the test plays the deployment
// controller.
type argoFixture struct {
	*pipelineFixture
	e        *testenv.Env
	argo     *argoCD
	rollouts *rolloutController
	stages   map[string]string // stage name → namespace
	base     string            // the commit the Applications start at
}

func newArgoFixture(t testing.TB, stages ...string) *argoFixture {
	t.Helper()
	e := testenv.Need(t, env)
	f := &argoFixture{e: e, argo: startArgoCD(t, e), pipelineFixture: newPipelineFixture(t, e), stages: map[string]string{}}
	files := map[string]string{}
	var namespaces []string
	for _, s := range stages {
		f.stages[s] = e.Namespace(t)
		namespaces = append(namespaces, f.stages[s])
		files["envs/argo-"+s+"/deployment.yaml"] = deploymentYAML(f.stageReg.Host + "/" + s + "/shop:0.9")
	}
	f.base = f.git.Commit("acme/deploy", "main", files, "stage paths synced by Argo CD")
	f.rollouts = startRolloutController(t, e.Client, namespaces...)
	return f
}

// application creates stage's Application and waits until Argo CD runs the starting commit there, Synced and
// Healthy: from then on, an Application that looks healthy at an older commit is there to mislead Ferry.
func (f *argoFixture) application(t testing.TB, stage string, automated bool) {
	t.Helper()
	f.argo.application(t, "shop-"+stage, f.repoURL, "envs/argo-"+stage, f.stages[stage], automated)
	if !automated {
		f.syncByHand(t, "shop-"+stage, f.base)
	}
	f.argo.syncedAt(t, "shop-"+stage, f.base)
}

// syncByHand asks Argo CD to sync an Application at revision as a person would (`argocd app sync --revision`).
func (f *argoFixture) syncByHand(t testing.TB, name, revision string) {
	t.Helper()
	u := argoObject("Application", f.argo.ns, name, nil)
	patch := `{"operation":{"sync":{"revision":"` + revision + `"},"initiatedBy":{"username":"test"}}}`
	if err := f.e.Client.Patch(context.Background(), u, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

// promotion has one ArgoCD-mode stage per name, in order.
func (f *argoFixture) promotion(stages ...string) *ferryv1.Promotion {
	p := f.pipelineFixture.promotion()
	p.Spec.Interval = &metav1.Duration{Duration: time.Second} // new releases are found by polling
	p.Spec.Stages = nil
	for _, s := range stages {
		p.Spec.Stages = append(p.Spec.Stages, ferryv1.StageSpec{
			Name: s, Path: "envs/argo-" + s, Manifest: ferryv1.ManifestSpec{Format: ferryv1.ManifestPlain},
			Registry: ferryv1.StageRegistry{Repository: f.stageReg.Host + "/" + s + "/shop"},
			Sync: ferryv1.SyncSpec{Namespace: f.stages[s], Mode: ferryv1.SyncArgoCD,
				ArgoCD: &ferryv1.ArgoCDSyncSpec{Name: "shop-" + s, Namespace: f.argo.ns}},
		})
	}
	return p
}

// createWithRelease pushes signed release 1.0.0 and creates a Promotion of the stages named; it returns the
// Promotion and the release's digest.
func (f *argoFixture) createWithRelease(t testing.TB, stages ...string) (*ferryv1.Promotion, string) {
	t.Helper()
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion(stages...)
	if err := f.e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p, v1
}

// engines syncs ArgoCD-mode stages with syncer, and has no engine for Ferry's own mode: nothing here is applied
// by Ferry.
func (f *argoFixture) engines(t testing.TB, syncer Syncer) Engines {
	t.Helper()
	return Engines{Git: newGitEngine(t), Sync: &ModeSyncer{ArgoCD: syncer}, WorkDir: t.TempDir()}
}

func newArgoSyncer(t testing.TB) *ArgoCDSyncer {
	t.Helper()
	s := NewArgoCDSyncer()
	t.Cleanup(s.Close)
	return s
}

// waitStages waits until every stage named runs digest, settled in phase.
func (f *argoFixture) waitStages(t testing.TB, name, digest string, phase ferryv1.StagePhase, stages ...string) *ferryv1.Promotion {
	t.Helper()
	var got *ferryv1.Promotion
	waitFor(t, argoWait, fmt.Sprintf("%v to run %s (%s)", stages, digest, phase), func() (bool, string) {
		got = getPromotion(t, f.e.Client, f.ns, name)
		found := 0
		for _, st := range got.Status.Stages {
			if !contains(stages, st.Name) {
				continue
			}
			found++
			if st.Digest != digest || st.Phase != phase || st.InFlightDigest != "" {
				return false, got.Status.Summary + "; " + st.Name + ": " + st.Message + "; " + conditionState(got, ferryv1.ConditionReady)
			}
		}
		return found == len(stages), got.Status.Summary
	})
	return got
}

// runs checks that Argo CD reports the stage's last commit synced and healthy, and that the stage's workload
// runs digest from the stage's registry.
func (f *argoFixture) runs(t testing.TB, p *ferryv1.Promotion, stage, digest string) {
	t.Helper()
	st := stageNamed(p, stage)
	app := f.argo.app(t, "shop-"+stage)
	if s := app.Status; s.Sync.Revision != st.LastCommit || s.Sync.Status != argoSynced || s.Health.Status != argoHealthy {
		t.Errorf("%s: Argo CD reports %s at %s, health %s; Ferry's commit is %s", stage, s.Sync.Status, s.Sync.Revision, s.Health.Status, st.LastCommit)
	}
	var d appsv1.Deployment
	if err := f.e.Client.Get(context.Background(), types.NamespacedName{Namespace: f.stages[stage], Name: "shop"}, &d); err != nil {
		t.Fatal(err)
	}
	if img, want := d.Spec.Template.Spec.Containers[0].Image, f.stageReg.Host+"/"+stage+"/shop@"+digest; img != want {
		t.Errorf("%s runs %s, want %s", stage, img, want)
	}
}

func stageNamed(p *ferryv1.Promotion, name string) *ferryv1.StageStatus {
	for i := range p.Status.Stages {
		if p.Status.Stages[i].Name == name {
			return &p.Status.Stages[i]
		}
	}
	return &ferryv1.StageStatus{}
}

// stageCommits lists the Ferry commits of a stage, newest first.
func (f *argoFixture) stageCommits(stage string) []string {
	var out []string
	for _, c := range f.git.Log("acme/deploy") {
		if c.Trailers[gitops.TrailerStage] == stage {
			out = append(out, c.Trailers[gitops.TrailerDigest]+rollbackMark(c.Trailers))
		}
	}
	return out
}

// commitToHealthy is how long after its commit pinning digest in stage Ferry saw the stage healthy: the times of
// its Committed and Healthy events for the digest (microseconds, written by Ferry as it happened).
func (f *argoFixture) commitToHealthy(t testing.TB, p *ferryv1.Promotion, stage, digest string) time.Duration {
	t.Helper()
	var list eventsv1.EventList
	if err := f.e.Client.List(context.Background(), &list, client.InNamespace(f.ns)); err != nil {
		t.Fatal(err)
	}
	var committed, healthy time.Time
	for _, ev := range list.Items {
		if ev.Regarding.Name != p.Name || !strings.HasPrefix(ev.Note, "stage "+stage+":") || !strings.Contains(ev.Note, digest) {
			continue
		}
		switch ev.Reason {
		case ReasonCommitted:
			committed = ev.EventTime.Time
		case ReasonHealthy:
			healthy = ev.EventTime.Time
		}
	}
	if committed.IsZero() || healthy.IsZero() {
		t.Fatalf("no Committed and Healthy events for %s in stage %s", digest, stage)
	}
	return healthy.Sub(committed)
}

// heldSyncer holds back the first Apply — it asks nothing of Argo CD until the test lets it — so that the test
// sees what Ferry makes of an Application that is synced and healthy at an older commit.
type heldSyncer struct {
	Syncer
	mu   gosync.Mutex
	held *SyncTarget // the Apply held back; nil once let go
	once bool
}

func (h *heldSyncer) Apply(ctx context.Context, t SyncTarget, dir, revision string) ([]sync.ObjectRef, error) {
	h.mu.Lock()
	if !h.once {
		h.once, h.held = true, &t
		h.mu.Unlock()
		return nil, nil
	}
	h.mu.Unlock()
	return h.Syncer.Apply(ctx, t, dir, revision)
}

// release makes the Apply held back.
func (h *heldSyncer) release(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	if held == nil {
		t.Fatal("no Apply was held back")
	}
	if _, err := h.Syncer.Apply(context.Background(), *held, "", held.Revision); err != nil {
		t.Fatal(err)
	}
}

// A digest reaches prod through two stages that Argo CD syncs — dev with automated sync (Ferry asks for a
// refresh), prod without (Ferry asks for a sync operation to its commit) — and each stage counts as promoted only
// once Argo CD reports Ferry's commit synced and healthy: the Applications are synced and healthy at an older
// commit all along, and that must not count.
func TestArgoCDPromotionReachesProd(t *testing.T) {
	f := newArgoFixture(t, "dev", "prod")
	f.application(t, "dev", true)
	f.application(t, "prod", false)
	held := &heldSyncer{Syncer: newArgoSyncer(t)}
	startManager(t, f.engines(t, held))
	p, v1 := f.createWithRelease(t, "dev", "prod")

	// Ferry pinned dev but Argo CD has not heard of it: healthy at the older commit is not healthy.
	waitFor(t, argoWait, "dev to wait for Argo CD to sync Ferry's commit", func() (bool, string) {
		st := stageNamed(getPromotion(t, f.e.Client, f.ns, p.Name), "dev")
		return st.Phase == ferryv1.PhaseProgressing && strings.Contains(st.Message, "to sync Ferry's commit "+shortSHA(st.LastCommit)) &&
			strings.Contains(st.Message, "Synced at "+shortSHA(f.base)+", health Healthy"), string(st.Phase) + ": " + st.Message
	})
	if app := f.argo.app(t, "shop-dev"); app.Status.Sync.Revision != f.base {
		t.Fatalf("Argo CD moved on its own to %s", app.Status.Sync.Revision)
	}
	held.release(t)

	got := f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev", "prod")
	f.runs(t, got, "dev", v1)
	f.runs(t, got, "prod", v1)
	if c := f.stageCommits("prod"); len(c) != 1 {
		t.Errorf("prod commits = %v, want one", c)
	}
	// prod was synced by the operation Ferry asked for, once, at its commit.
	prodCommit := stageNamed(got, "prod").LastCommit
	if h := f.argo.history(t, "shop-prod"); h[len(h)-1] != prodCommit || strings.Count(strings.Join(h, ","), prodCommit) != 1 {
		t.Errorf("prod's sync history %v, want one sync of %s last", h, prodCommit)
	}
	if op := f.argo.app(t, "shop-prod").Status.OperationState; op == nil || op.Operation.InitiatedBy.Username != argoUsername {
		t.Errorf("prod's last operation %+v, want one Ferry initiated", op)
	}
	t.Logf("argocd timing: prod (no automated sync) commit to healthy %s", f.commitToHealthy(t, got, "prod", v1).Round(time.Millisecond))
}

// A rollout that Argo CD reports Degraded rolls back through Git, and Argo CD syncs the rollback commit.
func TestArgoCDFailingRolloutRollsBackThroughGit(t *testing.T) {
	f := newArgoFixture(t, "dev")
	f.application(t, "dev", true)
	startManager(t, f.engines(t, newArgoSyncer(t)))
	p, v1 := f.createWithRelease(t, "dev")
	got := f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev")
	t.Logf("argocd timing: dev (automated sync) commit to healthy %s", f.commitToHealthy(t, got, "dev", v1).Round(time.Millisecond))

	bad := f.pushRelease(t, "1.1.0", true).DigestStr()
	f.rollouts.failRollouts(bad)
	got = f.waitStages(t, p.Name, v1, ferryv1.PhaseRolledBack, "dev")

	if c := f.stageCommits("dev"); len(c) != 3 || c[0] != v1+" (rollback)" || c[1] != bad {
		t.Errorf("dev commits, newest first = %v", c)
	}
	f.runs(t, got, "dev", v1)
	st := stageNamed(got, "dev")
	if st.Hold == nil || st.Hold.Digest != v1 || st.Hold.Reason != ReasonHealthFailed {
		t.Errorf("hold = %+v", st.Hold)
	}
	if h := st.History; len(h) < 2 || h[1].Digest != bad || h[1].Outcome != ferryv1.OutcomeRolledBack ||
		!strings.Contains(h[1].Reason, "Degraded") {
		t.Errorf("history = %+v", h)
	}
	if h := f.argo.history(t, "shop-dev"); h[len(h)-1] != st.LastCommit {
		t.Errorf("Argo CD's last sync %v, want the rollback commit %s", h, st.LastCommit)
	}
}

// A stage naming an Application that does not exist stalls naming the field, and goes on by itself once the
// Application is created: the watch of its namespace wakes the stage.
func TestArgoCDMissingApplicationStallsThenRecovers(t *testing.T) {
	f := newArgoFixture(t, "dev")
	startManager(t, f.engines(t, newArgoSyncer(t)))
	p, v1 := f.createWithRelease(t, "dev")
	waitFor(t, argoWait, "the Promotion to stall on the missing Application", func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		c := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionStalled)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonExternalNotFound &&
				strings.HasPrefix(c.Message, "spec.stages[0].sync.argoCD.name: Application "+f.argo.ns+"/shop-dev not found"),
			conditionState(got, ferryv1.ConditionStalled)
	})

	f.argo.application(t, "shop-dev", f.repoURL, "envs/argo-dev", f.stages["dev"], true)
	got := f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev")
	f.runs(t, got, "dev", v1)
	if c := f.stageCommits("dev"); len(c) != 1 {
		t.Errorf("dev commits = %v, want one", c)
	}
	if c := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		t.Errorf("still stalled: %s", c.Message)
	}
}

// crashingSyncer asks Argo CD to sync and then hangs until Ferry's manager is stopped, before Ferry records that
// it asked: the worst moment for Ferry to die mid-sync.
type crashingSyncer struct {
	Syncer
	asked chan struct{}
	once  gosync.Once
}

func (c *crashingSyncer) Apply(ctx context.Context, t SyncTarget, dir, revision string) ([]sync.ObjectRef, error) {
	if _, err := c.Syncer.Apply(ctx, t, dir, revision); err != nil {
		return nil, err
	}
	c.once.Do(func() { close(c.asked) })
	<-ctx.Done()
	return nil, ctx.Err()
}

// Ferry's manager stopped after asking Argo CD to sync and before recording it; the next one resumes the stage
// with no second commit and no second sync.
func TestArgoCDRestartMidSyncResumesOnce(t *testing.T) {
	f := newArgoFixture(t, "dev")
	f.application(t, "dev", false)
	crashing := &crashingSyncer{Syncer: newArgoSyncer(t), asked: make(chan struct{})}
	stop := ferryManager(t, f.e, f.engines(t, crashing))
	p, v1 := f.createWithRelease(t, "dev")
	select {
	case <-crashing.asked:
	case <-time.After(argoWait):
		t.Fatal("Ferry never asked Argo CD to sync")
	}
	stop()
	if st := stageNamed(getPromotion(t, f.e.Client, f.ns, p.Name), "dev"); st.Phase != ferryv1.PhaseSyncing {
		t.Fatalf("dev is %s after the crash, want Syncing (the sync not recorded)", st.Phase)
	}

	startManager(t, f.engines(t, newArgoSyncer(t)))
	got := f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev")
	f.runs(t, got, "dev", v1)
	if c := f.stageCommits("dev"); len(c) != 1 {
		t.Errorf("dev commits = %v, want one", c)
	}
	commit := stageNamed(got, "dev").LastCommit
	if h := f.argo.history(t, "shop-dev"); strings.Count(strings.Join(h, ","), commit) != 1 {
		t.Errorf("Argo CD's sync history %v, want one sync of %s", h, commit)
	}
}

// The watch of an Application's namespace wakes the stage that names it when the Application appears and when its
// status changes, and stops once no stage names an Application there. Argo CD's CRD alone, no Argo CD: the test
// writes the status.
func TestArgoCDWatchWakesStagesAndStops(t *testing.T) {
	e := testenv.Need(t, env)
	dir, _ := argoCDTools(t)
	installArgoCRDs(t, e, dir)
	ns := e.Namespace(t)
	syncer := newArgoSyncer(t)
	woke := make(chan string, 16)
	syncer.OnChange(func(owner string) { woke <- owner })
	target := func(owner, app string) SyncTarget {
		return SyncTarget{Config: e.Config, Owner: owner, Mode: ferryv1.SyncArgoCD, Revision: argoNew,
			External: ExternalRef{Kind: "Application", Namespace: ns, Name: app}}
	}
	if err := syncer.Expect([]SyncTarget{target("a", "shop-a"), target("b", "shop-b")}); err != nil {
		t.Fatal(err)
	}
	if n := syncer.Watches(); n != 1 {
		t.Fatalf("%d watches for two Applications of one namespace, want 1", n)
	}
	ctx := context.Background()
	var missing *ExternalMissing
	if _, err := syncer.Health(ctx, target("a", "shop-a"), nil, ""); !errors.As(err, &missing) || missing.Detail != "" {
		t.Fatalf("health of a missing Application: %v, want ExternalMissing", err)
	}

	app := argoObject("Application", ns, "shop-a", map[string]any{"project": "default",
		"source":      map[string]any{"repoURL": "https://git.example.com/deploy", "path": "envs/dev"},
		"destination": map[string]any{"server": "https://kubernetes.default.svc", "namespace": "shop"}})
	if err := e.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	awaitWake(t, woke, "a")
	status := `{"status":{"sync":{"status":"Synced","revision":"` + argoNew + `"},"health":{"status":"Healthy"}}}`
	if err := e.Client.Patch(ctx, app, client.RawPatch(types.MergePatchType, []byte(status))); err != nil {
		t.Fatal(err)
	}
	awaitWake(t, woke, "a")
	waitFor(t, argoWait, "the watch to see the status", func() (bool, string) {
		h, err := syncer.Health(ctx, target("a", "shop-a"), nil, "")
		return err == nil && h.Healthy, fmt.Sprint(h, err)
	})

	syncer.Forget("a")
	if n := syncer.Watches(); n != 1 {
		t.Errorf("%d watches while stage b still names an Application there, want 1", n)
	}
	syncer.Forget("b")
	if n := syncer.Watches(); n != 0 {
		t.Errorf("%d watches once no stage names an Application, want 0", n)
	}
}

// awaitWake waits for the watch to wake owner's stage.
func awaitWake(t *testing.T, woke <-chan string, owner string) {
	t.Helper()
	deadline := time.After(argoWait)
	for {
		select {
		case got := <-woke:
			if got == owner {
				return
			}
		case <-deadline:
			t.Fatalf("stage %s was never woken", owner)
		}
	}
}
