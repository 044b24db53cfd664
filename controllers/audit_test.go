package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/audit"
	"github.com/ferrycd/ferry/internal/gitops"
	"github.com/ferrycd/ferry/internal/testenv"
)

// TestRequesterWithoutTheWebhookIsAnUnauthenticatedFieldManager: without the audit webhook Ferry can only name the
// field manager, which the client picked, and says so; a companion nobody checked is not believed; and removing a
// request removes its companion.
func TestRequesterWithoutTheWebhookIsAnUnauthenticatedFieldManager(t *testing.T) {
	e := testenv.Need(t, env)
	ctx := context.Background()
	ns := e.Namespace(t)
	p := samplePromotion(t, ns)
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	rb, companion := ferryv1.RollbackAnnotation, audit.Companion(ferryv1.RollbackAnnotation)
	setAnnotations(t, e.Client, p, "ferry-rollback:release-manager", map[string]string{rb: "prod", companion: "alice"})

	r := &PromotionReconciler{Client: e.Client, APIReader: e.Client}
	const want = "ferry-rollback:release-manager" + UnauthenticatedMark
	if who := r.annotationSetter(ctx, getPromotion(t, e.Client, ns, p.Name), rb); who != want {
		t.Errorf("without the webhook, who asked = %q, want %q", who, want)
	}
	p = getPromotion(t, e.Client, ns, p.Name)
	if err := r.removeAnnotation(ctx, p, rb); err != nil {
		t.Fatal(err)
	}
	if got := getPromotion(t, e.Client, ns, p.Name).Annotations; got[rb] != "" || got[companion] != "" {
		t.Errorf("after removing the request: %v", got)
	}

	// With the webhook on, a request it never saw (made before it was installed) still names the field manager.
	r.AuditWebhook = true
	setAnnotations(t, e.Client, p, "kubectl-annotate", map[string]string{rb: "prod"})
	if who := r.annotationSetter(ctx, getPromotion(t, e.Client, ns, p.Name), rb); who != "kubectl-annotate"+UnauthenticatedMark {
		t.Errorf("with the webhook on but no companion, who asked = %q", who)
	}
}

// TestRollbackCreditsTheAuthenticatedUser: with the audit webhook, alice's rollback under the field manager
// ferry-rollback:release-manager is alice's in the hold, the history, the event and the rollback commit, and the
// request and its companion are both gone afterwards.
func TestRollbackCreditsTheAuthenticatedUser(t *testing.T) {
	f := newAuditedStagesFixture(t)
	p, v1 := f.devRunning(t)
	v2 := f.pushRelease(t, "1.1.0", true).DigestStr()
	f.waitStages(t, p.Name, v2, ferryv1.PhasePromoted, "dev")

	alice := f.e.PromotionEditor(t, f.ns, "alice")
	setAnnotations(t, alice, getPromotion(t, alice, f.ns, p.Name), "ferry-rollback:release-manager",
		map[string]string{ferryv1.RollbackAnnotation: "dev"})
	got := f.waitStages(t, p.Name, v1, ferryv1.PhaseRolledBack, "dev")

	st := got.Status.Stages[0]
	if st.Hold == nil || st.Hold.RequestedBy != "alice" {
		t.Errorf("hold = %+v, want requested by alice", st.Hold)
	}
	// Newest first: v1 back in the stage on alice's approval, and v2 rolled back on her request.
	if h := st.History; len(h) < 2 || h[0].Digest != v1 || h[0].Approver != "alice" ||
		h[1].Digest != v2 || h[1].Outcome != ferryv1.OutcomeRolledBack || h[1].Reason != "rolled back on request of alice" {
		t.Errorf("history = %+v, want %s rolled back on request of alice", h, v2)
	}
	if !eventSays(t, f.e.Client, f.ns, ReasonRollingBack, "requested by alice") {
		t.Error("no RollingBack event naming alice")
	}
	for _, c := range f.git.Log("acme/deploy") {
		if c.Trailers[gitops.TrailerStage] == "dev" && c.Trailers[gitops.TrailerRollback] != "" {
			if by := c.Trailers[gitops.TrailerRollback]; by != "alice" {
				t.Errorf("Ferry-Rollback: %q, want alice", by)
			}
			break
		}
	}
	for _, k := range []string{ferryv1.RollbackAnnotation, audit.Companion(ferryv1.RollbackAnnotation)} {
		if v, ok := got.Annotations[k]; ok {
			t.Errorf("%s=%q left behind", k, v)
		}
	}
}

// newAuditedStagesFixture is newStagesFixture with the audit webhook served, as config/webhook installs it, for
// the Promotions' namespace, and a reconciler that believes it.
func newAuditedStagesFixture(t *testing.T) *stagesFixture {
	t.Helper()
	e := testenv.Need(t, env)
	f := &stagesFixture{pipelineFixture: newPipelineFixture(t, e), e: e, dev: e.Namespace(t), stg: e.Namespace(t)}
	e.ServeMutatingWebhook(t, "config/webhook/manifests.yaml", f.ns, audit.Register, func() bool {
		ann, err := e.DryRunAnnotations(f.ns, ferryv1.RollbackAnnotation, "dev")
		return err == nil && ann[audit.Companion(ferryv1.RollbackAnnotation)] != ""
	})
	f.rollouts = startRolloutController(t, e.Client, f.dev, f.stg)
	syncer := NewGitopsSyncer()
	t.Cleanup(syncer.Close)
	f.syncer = &countingSyncer{Syncer: syncer}
	startAuditedManager(t, Engines{Git: newGitEngine(t), Sync: f.syncer, WorkDir: t.TempDir()})
	return f
}

// startAuditedManager is startManager with AuditWebhook on, set before the manager starts.
func startAuditedManager(t *testing.T, engines Engines) {
	t.Helper()
	e := testenv.Need(t, env)
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{Scheme: e.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}, Cache: CacheOptions(nil)})
	if err != nil {
		t.Fatal(err)
	}
	r := &PromotionReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("ferry-controller"),
		Engines: engines, LocalConfig: e.Config, Concurrency: 2, DegradedGrace: time.Second, AuditWebhook: true}
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

// setAnnotations sets annotations on p as c, under the field manager manager, as kubectl annotate does.
func setAnnotations(t *testing.T, c client.Client, p *ferryv1.Promotion, manager string, set map[string]string) {
	t.Helper()
	patch := client.MergeFrom(p.DeepCopy())
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	for k, v := range set {
		p.Annotations[k] = v
	}
	if err := c.Patch(context.Background(), p, patch, client.FieldOwner(manager)); err != nil {
		t.Fatal(err)
	}
}

// eventSays reports whether an event of reason in ns has a note containing text.
func eventSays(t *testing.T, c client.Client, ns, reason, text string) bool {
	t.Helper()
	var list eventsv1.EventList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, ev := range list.Items {
		if ev.Reason == reason && strings.Contains(ev.Note, text) {
			return true
		}
	}
	return false
}
