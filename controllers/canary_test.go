package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/analysis"
	"github.com/ferrycd/ferry/internal/canary"
	"github.com/ferrycd/ferry/internal/gitops"
)

// fakeProm answers instant queries from per-track values the test sets, as a Prometheus scraping the canary,
// baseline and stable pods would; an error makes every query fail as an unreachable server does.
type fakeProm struct {
	mu     sync.Mutex
	values map[string]func() float64 // by track
	err    error
	// missingFirst answers a track's first queries with no series, as a fresh canary's first scrape would.
	missingFirst map[string]int
}

func newFakeProm() *fakeProm { return &fakeProm{values: map[string]func() float64{}} }

func (f *fakeProm) set(track string, v func() float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[track] = v
}

func (f *fakeProm) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeProm) Query(_ context.Context, query string, at time.Time) (analysis.Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return analysis.Sample{}, f.err
	}
	for track, v := range f.values {
		if !strings.Contains(query, `track="`+track+`"`) {
			continue
		}
		if f.missingFirst[track] > 0 {
			f.missingFirst[track]--
			break
		}
		return analysis.Sample{Value: v(), Newest: at, Series: 1}, nil
	}
	return analysis.Sample{}, fmt.Errorf("%w: no series for %q", analysis.ErrNoData, query)
}

func constant(v float64) func() float64 { return func() float64 { return v } }

// canaryFixture is the dev stage of stagesFixture with a two-step canary measured on a fake Prometheus.
type canaryFixture struct {
	*stagesFixture
	prom *fakeProm
}

func newCanaryFixture(t testing.TB) *canaryFixture {
	prom := newFakeProm()
	f := newStagesFixtureWith(t, func(e *Engines) {
		e.Prometheus = func(analysis.Config) (analysis.Querier, error) { return prom, nil }
	})
	return &canaryFixture{stagesFixture: f, prom: prom}
}

// promotion is dev only, with a canary of 50% then 100% of 4 replicas and an error-rate analysis every 100 ms.
func (f *canaryFixture) promotion() *ferryv1.Promotion {
	p := f.stagesFixture.promotion()
	p.Spec.Stages = p.Spec.Stages[:1]
	ms := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	p.Spec.Stages[0].Canary = &ferryv1.CanarySpec{Replicas: 4, Steps: []ferryv1.CanaryStep{
		{Weight: 50, Pause: ms(300 * time.Millisecond)}, {Weight: 100, Pause: ms(300 * time.Millisecond)}}}
	limit := int32(2)
	p.Spec.Stages[0].Analysis = &ferryv1.AnalysisSpec{
		Prometheus:        ferryv1.PrometheusSpec{Address: "http://127.0.0.1:9090"},
		Interval:          ms(100 * time.Millisecond),
		MinSamples:        2,
		InconclusiveLimit: &limit,
		OutageDeadline:    ms(time.Hour),
		Metrics: []ferryv1.MetricSpec{{Name: "error-rate", Max: new("0.01"),
			Query: `sum(rate(http_requests_total{namespace="{{.Namespace}}",code=~"5..",track="{{.Track}}"}[{{.Interval}}]))`}},
	}
	return p
}

// running creates the Promotion and waits until dev runs a first release, deployed without a canary (there is
// nothing to compare it with).
func (f *canaryFixture) running(t testing.TB, p *ferryv1.Promotion) string {
	t.Helper()
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	f.prom.set("stable", constant(0))
	if err := f.e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev")
	return v1
}

// waitAnalysis waits until dev's analysis of digest is in phase, and returns the Promotion.
func (f *canaryFixture) waitAnalysis(t testing.TB, name, digest string, phase ferryv1.AnalysisPhase) *ferryv1.Promotion {
	t.Helper()
	var got *ferryv1.Promotion
	eventually(t, fmt.Sprintf("dev's analysis of %s to be %s", digest, phase), func() (bool, string) {
		got = getPromotion(t, f.e.Client, f.ns, name)
		st := got.Status.Stages[0]
		if a := st.Analysis; a != nil && a.Digest == digest && a.Phase == phase {
			return true, ""
		}
		return false, fmt.Sprintf("%s: %s %s", st.Phase, st.Message, analysisState(st.Analysis))
	})
	return got
}

func analysisState(a *ferryv1.AnalysisStatus) string {
	if a == nil {
		return "(no analysis)"
	}
	return fmt.Sprintf("(analysis %s %s: %s)", a.Run, a.Phase, a.Message)
}

// copies lists the canary and baseline Deployments in ns.
func (f *canaryFixture) copies(t testing.TB) []appsv1.Deployment {
	t.Helper()
	var list appsv1.DeploymentList
	if err := f.e.Client.List(context.Background(), &list, client.InNamespace(f.dev), client.HasLabels{canary.TrackLabel}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func (f *canaryFixture) stable(t testing.TB) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := f.e.Client.Get(context.Background(), types.NamespacedName{Namespace: f.dev, Name: "shop"}, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// TestCanaryPassesAndPromotes: a healthy canary runs beside the untouched stable Deployment, step by step, and
// only when its last step passed does the stable Deployment take the new digest; the copies are gone after.
func TestCanaryPassesAndPromotes(t *testing.T) {
	f := newCanaryFixture(t)
	p := f.promotion()
	v1 := f.running(t, p)
	stableBefore := f.stable(t)

	f.prom.set("canary", constant(0.001))
	v2 := f.pushRelease(t, "1.1.0", true).DigestStr()
	eventually(t, "a canary copy on v2 beside v1", func() (bool, string) {
		copies := f.copies(t)
		return len(copies) == 1 && strings.HasSuffix(copies[0].Spec.Template.Spec.Containers[0].Image, "@"+v2),
			fmt.Sprintf("%d copies", len(copies))
	})
	c := f.copies(t)[0]
	if c.Name != "shop-canary" || c.Spec.Template.Labels["app"] != "shop" || c.Spec.Template.Labels[canary.TrackLabel] != "canary" {
		t.Errorf("copy %s has pod labels %v", c.Name, c.Spec.Template.Labels)
	}
	if got := f.stable(t); got.ResourceVersion != stableBefore.ResourceVersion {
		t.Errorf("the stable Deployment changed during the canary: runs %s", got.Spec.Template.Spec.Containers[0].Image)
	}

	got := f.waitStages(t, p.Name, v2, ferryv1.PhasePromoted, "dev")
	if img := f.deploymentImage(t, f.dev); !strings.HasSuffix(img, "@"+v2) {
		t.Errorf("dev runs %s after the canary passed", img)
	}
	eventually(t, "the copies to be removed", func() (bool, string) { return len(f.copies(t)) == 0, "copies left" })
	a := got.Status.Stages[0].Analysis
	if a == nil || a.Phase != ferryv1.AnalysisPassed || a.Digest != v2 {
		t.Fatalf("analysis = %s", analysisState(a))
	}
	steps := map[int32]int{}
	for _, m := range a.Measurements {
		if m.Track == "canary" && m.Step != nil && m.Verdict == "Pass" {
			steps[*m.Step]++
		}
	}
	if steps[0] < 2 || steps[1] < 2 {
		t.Errorf("passing canary measurements per step = %v, want at least minSamples (2) in each", steps)
	}
	if len(a.Queries) == 0 || !strings.Contains(a.Queries[0].Query, `namespace="`+f.dev+`"`) {
		t.Errorf("queries after templating = %+v", a.Queries)
	}
	if !hasEvent(t, f.e.Client, f.ns, p.Name, corev1.EventTypeNormal, ReasonCanaryPassed) {
		t.Error("no CanaryPassed event")
	}
	if commits := f.stageCommits("dev"); len(commits) != 2 || commits[0] != v2 || commits[1] != v1 {
		t.Errorf("dev commits = %v", commits)
	}
}

// TestCanaryFailingMetricRollsBackThroughGit: a canary whose error rate is measured above the maximum fails; the
// previous digest is committed back to Git with a trailer naming the metric, the copies go, and the stable
// Deployment, which never left v1, is not touched: a rollback creates no pods.
func TestCanaryFailingMetricRollsBackThroughGit(t *testing.T) {
	f := newCanaryFixture(t)
	p := f.promotion()
	v1 := f.running(t, p)
	stableBefore := f.stable(t)

	f.prom.set("canary", constant(0.2))
	bad := f.pushRelease(t, "1.1.0", true).DigestStr()
	got := f.waitStages(t, p.Name, v1, ferryv1.PhaseRolledBack, "dev")

	if commits := f.stageCommits("dev"); len(commits) != 3 || commits[0] != v1+" (rollback)" || commits[1] != bad {
		t.Errorf("dev commits, newest first = %v", commits)
	}
	reason, by := "", ""
	for _, c := range f.git.Log("acme/deploy") {
		if c.Trailers[gitops.TrailerStage] == "dev" && c.Trailers[gitops.TrailerRollback] != "" {
			reason, by = c.Trailers[gitops.TrailerRollbackReason], c.Trailers[gitops.TrailerRollback]
			break
		}
	}
	if by != "ferry" {
		t.Errorf("Ferry-Rollback: %q, want ferry, which rolled back on its own", by)
	}
	if !strings.Contains(reason, "error-rate") || !strings.Contains(reason, "0.2") || !strings.Contains(reason, bad) {
		t.Errorf("rollback reason trailer = %q, want the digest, the metric and its value", reason)
	}
	st := got.Status.Stages[0]
	if st.Hold == nil || st.Hold.Reason != ReasonAnalysisFailed || st.Hold.Digest != v1 {
		t.Errorf("hold = %+v", st.Hold)
	}
	if h := st.History; len(h) < 2 || h[1].Digest != bad || h[1].Outcome != ferryv1.OutcomeRolledBack {
		t.Errorf("history = %+v", h)
	}
	if st.Analysis == nil || st.Analysis.Digest != bad || st.Analysis.Phase != ferryv1.AnalysisFailed {
		t.Errorf("the failed analysis is not kept for on-call: %s", analysisState(st.Analysis))
	}
	// The rollback commit's apply records its revision in an annotation; the pod template stays as it was.
	if got := f.stable(t); !equality.Semantic.DeepEqual(got.Spec.Template, stableBefore.Spec.Template) {
		t.Errorf("the stable Deployment's pod template changed: runs %s", got.Spec.Template.Spec.Containers[0].Image)
	}
	eventually(t, "the copies to be removed", func() (bool, string) { return len(f.copies(t)) == 0, "copies left" })
	if !hasEvent(t, f.e.Client, f.ns, p.Name, corev1.EventTypeWarning, ReasonAnalysisFailed) {
		t.Error("no AnalysisFailed event")
	}
}

// TestMissingDataHoldsThenResumes: with Prometheus unreachable the canary neither fails nor passes: it holds,
// Ready says why, nothing is committed; when data returns it resumes on its own and passes.
func TestMissingDataHoldsThenResumes(t *testing.T) {
	f := newCanaryFixture(t)
	p := f.promotion()
	limit := int32(1000) // the budget is not what this test is about
	p.Spec.Stages[0].Analysis.InconclusiveLimit = &limit
	f.running(t, p)

	f.prom.fail(fmt.Errorf("%w: dial tcp 127.0.0.1:9090: connection refused", analysis.ErrUnavailable))
	v2 := f.pushRelease(t, "1.1.0", true).DigestStr()
	eventually(t, "Ready=False AnalysisInconclusive with several readings missing", func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		ready := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady)
		a := got.Status.Stages[0].Analysis
		return ready != nil && ready.Reason == ReasonAnalysisInconclusive && a != nil && a.Missing >= 3,
			conditionState(got, ferryv1.ConditionReady)
	})
	got := getPromotion(t, f.e.Client, f.ns, p.Name)
	if st := got.Status.Stages[0]; st.Phase != ferryv1.PhaseCanary || st.Analysis.Phase != ferryv1.AnalysisRunning || st.Analysis.OutageSince == nil {
		t.Errorf("during the outage: %s %s", st.Phase, analysisState(st.Analysis))
	}
	if commits := f.stageCommits("dev"); len(commits) != 2 {
		t.Errorf("commits during the outage = %v, want only the two pins", commits)
	}

	f.prom.fail(nil)
	f.prom.set("canary", constant(0))
	f.waitStages(t, p.Name, v2, ferryv1.PhasePromoted, "dev")
}

// TestMissingBudgetHoldsForAPersonWhoApproves: past the missing-data budget the stage waits for a person; an
// approval starts the evidence afresh and the canary goes on.
func TestMissingBudgetHoldsForAPersonWhoApproves(t *testing.T) {
	f := newCanaryFixture(t)
	p := f.promotion()
	f.running(t, p)

	v2 := f.pushRelease(t, "1.1.0", true).DigestStr() // no canary values: every query finds no series
	got := f.waitAnalysis(t, p.Name, v2, ferryv1.AnalysisHeld)
	a := got.Status.Stages[0].Analysis
	if a.Missing <= a.Budget || !strings.Contains(a.Message, "missing") {
		t.Errorf("held with %d of %d missing (budget %d): %s", a.Missing, a.Taken, a.Budget, a.Message)
	}

	f.prom.set("canary", constant(0))
	annotate(t, f.e.Client, f.ns, p.Name, ferryv1.ApproveAnnotation, "dev")
	got = f.waitStages(t, p.Name, v2, ferryv1.PhasePromoted, "dev")
	if a := got.Status.Stages[0].Analysis; a.Approvals != 1 || a.ApprovedBy != "on-call-alice"+UnauthenticatedMark {
		t.Errorf("approvals %d by %q", a.Approvals, a.ApprovedBy)
	}
	if _, ok := got.Annotations[ferryv1.ApproveAnnotation]; ok {
		t.Error("the approve annotation was not removed")
	}
}

// TestAbortRollsBack: ferry abort fails a healthy canary at once, and the stage rolls back through Git.
func TestAbortRollsBack(t *testing.T) {
	f := newCanaryFixture(t)
	p := f.promotion()
	p.Spec.Stages[0].Canary.Steps[0].Pause = &metav1.Duration{Duration: time.Hour}
	v1 := f.running(t, p)

	f.prom.set("canary", constant(0))
	v2 := f.pushRelease(t, "1.1.0", true).DigestStr()
	eventually(t, "the canary to be measured", func() (bool, string) {
		a := getPromotion(t, f.e.Client, f.ns, p.Name).Status.Stages[0].Analysis
		return a != nil && a.Digest == v2 && a.Taken > 0, analysisState(a)
	})
	annotate(t, f.e.Client, f.ns, p.Name, ferryv1.AbortAnnotation, "dev")
	got := f.waitStages(t, p.Name, v1, ferryv1.PhaseRolledBack, "dev")
	st := got.Status.Stages[0]
	if st.Hold == nil || st.Hold.RequestedBy != "on-call-alice"+UnauthenticatedMark || st.Analysis.AbortedBy != "on-call-alice"+UnauthenticatedMark {
		t.Errorf("hold %+v, aborted by %q", st.Hold, st.Analysis.AbortedBy)
	}
	if commits := f.stageCommits("dev"); len(commits) != 3 || commits[0] != v1+" (rollback)" {
		t.Errorf("dev commits = %v", commits)
	}
}

// TestCanaryWorseThanBaselineFailsByTheJudge: the canary's error rate stays under the threshold, so a threshold
// alone would pass it, but it is clearly and consistently worse than the fresh baseline: the judge fails it.
func TestCanaryWorseThanBaselineFailsByTheJudge(t *testing.T) {
	f := newCanaryFixture(t)
	p := f.promotion()
	a := p.Spec.Stages[0].Analysis
	a.MinSamples = 6
	a.Baseline = &ferryv1.BaselineSpec{ConfidencePercent: 95}
	deviation := int32(20)
	a.Metrics[0].MaxBaselineDeviationPercent = &deviation
	v1 := f.running(t, p)

	var n int
	var mu sync.Mutex
	jitter := func(base float64) func() float64 { // distinct values, so the ranks carry the evidence
		return func() float64 {
			mu.Lock()
			defer mu.Unlock()
			n++
			return base + float64(n%7)*0.0001
		}
	}
	f.prom.set("baseline", jitter(0.002))
	f.prom.set("canary", jitter(0.006)) // three times the baseline, under max 0.01
	bad := f.pushRelease(t, "1.1.0", true).DigestStr()
	eventually(t, "a baseline copy on v1 beside the canary", func() (bool, string) {
		for _, c := range f.copies(t) {
			if c.Labels[canary.TrackLabel] == "baseline" && strings.HasSuffix(c.Spec.Template.Spec.Containers[0].Image, "@"+v1) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d copies", len(f.copies(t)))
	})
	got := f.waitStages(t, p.Name, v1, ferryv1.PhaseRolledBack, "dev")
	st := got.Status.Stages[0]
	if st.Analysis.Digest != bad || len(st.Analysis.Comparisons) != 1 || st.Analysis.Comparisons[0].Verdict != "Fail" {
		t.Fatalf("analysis %s, comparisons %+v", analysisState(st.Analysis), st.Analysis.Comparisons)
	}
	for _, m := range st.Analysis.Measurements {
		if m.Metric == "error-rate" && m.Track == "canary" && m.Verdict != "Pass" {
			t.Errorf("a canary reading failed its threshold (%s %s): the judge, not the threshold, should fail it", m.Value, m.Verdict)
		}
	}
}

// TestHeldTimeoutAbortsTheRun: with analysis.heldTimeout, a run nobody decides on is aborted when the wait is
// over, and the stage rolls back through Git; it never promotes on its own.
func TestHeldTimeoutAbortsTheRun(t *testing.T) {
	f := newCanaryFixture(t)
	p := f.promotion()
	p.Spec.Stages[0].Analysis.HeldTimeout = &metav1.Duration{Duration: 2 * time.Second}
	v1 := f.running(t, p)

	v2 := f.pushRelease(t, "1.1.0", true).DigestStr() // no canary values: the budget runs out, the run is held
	f.waitAnalysis(t, p.Name, v2, ferryv1.AnalysisHeld)
	got := f.waitStages(t, p.Name, v1, ferryv1.PhaseRolledBack, "dev")
	st := got.Status.Stages[0]
	if st.Analysis.Digest != v2 || !strings.Contains(st.Analysis.Message, "no decision") || st.Hold == nil || st.Hold.Reason != ReasonAnalysisFailed {
		t.Errorf("analysis %s, hold %+v", analysisState(st.Analysis), st.Hold)
	}
	if h := st.History; len(h) < 2 || h[1].Digest != v2 || h[1].Outcome != ferryv1.OutcomeRolledBack {
		t.Errorf("history = %+v", h)
	}
}

// TestCanaryRoutesTrafficThroughHTTPRoute: with trafficRouting, each step's weight goes to a canary Service through
// the stage's HTTPRoute once the canary's pods are ready, and the route's own weights come back when the canary
// ends.
func TestCanaryRoutesTrafficThroughHTTPRoute(t *testing.T) {
	f := newCanaryFixture(t)
	if err := f.e.InstallHTTPRouteCRD(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: f.dev},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "shop"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := f.e.Client.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	route := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "shop", "namespace": f.dev},
		"spec": map[string]any{"rules": []any{map[string]any{
			"backendRefs": []any{map[string]any{"name": "shop", "port": int64(80)}}}}},
	}}
	if err := f.e.Client.Create(ctx, route); err != nil {
		t.Fatal(err)
	}
	p := f.promotion()
	p.Spec.Stages[0].Canary.Steps[0].Pause = &metav1.Duration{Duration: 2 * time.Second}
	p.Spec.Stages[0].Canary.TrafficRouting = &ferryv1.TrafficRoutingSpec{
		HTTPRoute: ferryv1.HTTPRouteRouting{Name: "shop", Service: "shop"}}
	f.running(t, p)

	f.prom.set("canary", constant(0))
	v2 := f.pushRelease(t, "1.1.0", true).DigestStr()
	eventually(t, "the route to send 50% to shop-canary", func() (bool, string) {
		w := routeWeights(t, f.e.Client, f.dev)
		return w["shop"] == 50 && w["shop-canary"] == 50, fmt.Sprint(w)
	})
	f.waitStages(t, p.Name, v2, ferryv1.PhasePromoted, "dev")
	if w := routeWeights(t, f.e.Client, f.dev); len(w) != 1 || w["shop"] != 1 {
		t.Errorf("route weights after the canary = %v, want only shop at its own weight", w)
	}
	var canarySvc corev1.Service
	err := f.e.Client.Get(ctx, types.NamespacedName{Namespace: f.dev, Name: "shop-canary"}, &canarySvc)
	if err == nil && canarySvc.DeletionTimestamp.IsZero() {
		t.Error("the canary Service outlived the canary")
	}
}

// routeWeights reads the HTTPRoute "shop" in ns: each backend's weight.
func routeWeights(t testing.TB, c client.Client, ns string) map[string]int64 {
	t.Helper()
	route := &unstructured.Unstructured{}
	route.SetAPIVersion("gateway.networking.k8s.io/v1")
	route.SetKind("HTTPRoute")
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "shop"}, route); err != nil {
		t.Fatal(err)
	}
	weights := map[string]int64{}
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	for _, rule := range rules {
		refs, _, _ := unstructured.NestedSlice(rule.(map[string]any), "backendRefs")
		for _, ref := range refs {
			m := ref.(map[string]any)
			w, _, _ := unstructured.NestedInt64(m, "weight")
			weights[m["name"].(string)] = w
		}
	}
	return weights
}

// TestStepStartWithoutDataIsNotCounted: a step's first reading, taken as its pods become ready, finds no data for a
// fresh canary; that reading is kept but spends none of the missing-data budget, so even a budget of zero lets a
// healthy canary through.
func TestStepStartWithoutDataIsNotCounted(t *testing.T) {
	f := newCanaryFixture(t)
	p := f.promotion()
	zero := int32(0)
	p.Spec.Stages[0].Analysis.InconclusiveLimit = &zero
	p.Spec.Stages[0].Analysis.Interval = &metav1.Duration{Duration: 500 * time.Millisecond}
	f.running(t, p)

	f.prom.mu.Lock()
	f.prom.missingFirst = map[string]int{"canary": 1}
	f.prom.mu.Unlock()
	f.prom.set("canary", constant(0))
	v2 := f.pushRelease(t, "1.1.0", true).DigestStr()
	got := f.waitStages(t, p.Name, v2, ferryv1.PhasePromoted, "dev")
	missing := 0
	for _, m := range got.Status.Stages[0].Analysis.Measurements {
		if m.Track == "canary" && m.Verdict == "Inconclusive" {
			missing++
		}
	}
	if missing != 1 {
		t.Errorf("%d inconclusive canary readings kept, want the one at the first step's start", missing)
	}
}

// TestDeletedCopyIsAppliedAgain: a reading round only observes the step's copies; one deleted by hand mid-step is
// seen not to be as asked and is applied again.
func TestDeletedCopyIsAppliedAgain(t *testing.T) {
	f := newCanaryFixture(t)
	p := f.promotion()
	p.Spec.Stages[0].Canary.Steps[0].Pause = &metav1.Duration{Duration: time.Hour}
	f.running(t, p)

	f.prom.set("canary", constant(0))
	v2 := f.pushRelease(t, "1.1.0", true).DigestStr()
	eventually(t, "the step to be measured", func() (bool, string) {
		a := getPromotion(t, f.e.Client, f.ns, p.Name).Status.Stages[0].Analysis
		return a != nil && a.Digest == v2 && a.StepStartedAt != nil && a.Taken > 0, analysisState(a)
	})
	copies := f.copies(t)
	if len(copies) != 1 {
		t.Fatalf("%d copies, want the canary", len(copies))
	}
	gone := copies[0].UID
	if err := f.e.Client.Delete(context.Background(), &copies[0]); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the canary copy to be applied again", func() (bool, string) {
		now := f.copies(t)
		return len(now) == 1 && now[0].UID != gone && now[0].DeletionTimestamp.IsZero(), fmt.Sprintf("%d copies", len(now))
	})
}
