package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/analysis"
	"github.com/ferrycd/ferry/internal/canary"
	"github.com/ferrycd/ferry/internal/gitserver"
	"github.com/ferrycd/ferry/internal/promserver"
	"github.com/ferrycd/ferry/internal/signature/signaturetest"
)

// The canary on real parts: the controller process, a local cluster, registries, Git, cosign, and a real
// Prometheus scraping a real Pushgateway into which the test feeds each track's request counters, as an
// application's pods would be scraped. Each Promotion ("app") of the world has one stage, prod, its own source
// repository, deploy repository and namespace, so that the scenarios run side by side in one world and each
// app's metrics are told apart by their namespace label.

// Analysis timing: measured every second, steps of a few seconds, Prometheus scraping four times a second so
// that a sample is never older than the interval (a staler one would be Inconclusive, by design).
const (
	analysisInterval = time.Second
	scrapeInterval   = 250 * time.Millisecond
	// trafficTick is how often the test's traffic advances the counters and pushes them.
	trafficTick = 200 * time.Millisecond
)

// Queries of the analysis, as a platform team would write them against http_requests_total. The windows are a
// few intervals long, so that one late push of the test's traffic does not empty them.
const (
	errorRatioQuery = `sum(rate(http_requests_total{namespace="{{.Namespace}}",track="{{.Track}}",code=~"5.."}[5s]))` +
		` / sum(rate(http_requests_total{namespace="{{.Namespace}}",track="{{.Track}}"}[5s]))`
	trafficQuery    = `sum(increase(http_requests_total{namespace="{{.Namespace}}",track="{{.Track}}"}[5s]))`
	maxErrorRatio   = "0.05"
	minRequests     = "50"
	errorRatioLimit = 0.05
	minRequestCount = 50.0
)

// Traffic profiles the test gives a namespace's tracks.
var (
	healthy = profile{rps: 50, errorRatio: 0.002}
	failing = profile{rps: 50, errorRatio: 0.3}
	// trickle is too little traffic to judge anything by (about 10 requests in the 5s window, minimum 50), and
	// what little there is fails half the time: the analysis must wait, not fail.
	trickle = profile{rps: 2, errorRatio: 0.5}
	// For the baseline judge: the baseline's ratio, and a canary's three times as high, both well under the
	// maximum, so that no threshold fails them; noisy, so that readings differ and their ranks carry evidence.
	baselineLike = profile{rps: 50, errorRatio: 0.01, noise: 0.3}
	threeTimes   = profile{rps: 50, errorRatio: 0.03, noise: 0.3}
)

// TestCanaryOnRealPrometheus runs the canary and its analysis on the real controller process, in three rounds
// over one world, each app on its own releases:
//
//   - side by side: a healthy two-step canary is promoted; a canary serving 5xx above the maximum is rolled back
//     through Git; a canary with too little traffic holds (never fails) until its missing-data budget hands it
//     to a person, who approves it with `ferry approve` once traffic is back; a healthy canary is aborted with
//     `ferry abort` and rolled back; against a baseline, a canary three times as bad as the baseline but under
//     the maximum is failed by the judge and rolled back, and a canary equal to its baseline is promoted;
//   - Prometheus stopped mid-analysis: the stage holds (Ready=False AnalysisInconclusive, nothing committed),
//     and resumes on its own to promotion once Prometheus is back;
//   - the controller killed with SIGKILL while one canary is mid-step and another's rollback commit has reached
//     the Git server unanswered: restarted, the first resumes at the same step with its measurements, the
//     second ends with exactly one rollback commit.
//
// The rounds share the world (and the harness, whose helpers fail the test itself), so they are sections of one
// test rather than subtests.
func TestCanaryOnRealPrometheus(t *testing.T) {
	w := newCanaryWorld(t)
	good, bad, quiet, aborted := w.app("good", nil), w.app("bad", nil), w.app("quiet", nil), w.app("aborted", nil)
	outage := w.app("outage", nil)
	worse, even := w.app("worse", nil), w.app("even", nil)
	proxy := newHoldingProxy(t, w.git.URL)
	crash, crashBad := w.app("crash", nil), w.app("crash-bad", proxy)
	apps := []*canaryApp{good, bad, quiet, aborted, outage, crash, crashBad, worse, even}

	twoSteps := []ferryv1.CanaryStep{{Weight: 50, Pause: seconds(2)}, {Weight: 100, Pause: seconds(2)}}
	w.create(good, canaryOptions{steps: twoSteps, minSamples: 2})
	w.create(bad, canaryOptions{steps: twoSteps})
	w.create(quiet, canaryOptions{steps: twoSteps, inconclusiveLimit: 4})
	w.create(aborted, canaryOptions{steps: []ferryv1.CanaryStep{{Weight: 50, Pause: seconds(3600)}}})
	w.create(outage, canaryOptions{steps: []ferryv1.CanaryStep{{Weight: 50, Pause: seconds(4)}, {Weight: 100, Pause: seconds(3)}},
		inconclusiveLimit: 1000})
	w.create(crash, canaryOptions{steps: []ferryv1.CanaryStep{{Weight: 50, Pause: seconds(10)}, {Weight: 100, Pause: seconds(2)}}})
	w.create(crashBad, canaryOptions{steps: twoSteps})
	// The judge needs max(minSamples, 5) readings a side; a step ends after its pause and minSamples passing
	// readings of each track, and is judged then.
	judged := canaryOptions{steps: []ferryv1.CanaryStep{{Weight: 50, Pause: seconds(6)}}, minSamples: judgeSamples, baseline: true}
	w.create(worse, judged)
	w.create(even, judged)

	// The first release of each app has nothing to compare with: it is deployed without a canary, and its soak
	// is analysed on the stable track.
	began := time.Now()
	for _, a := range apps {
		a.v1 = w.release(t, a, "1.0.0")
	}
	for _, a := range apps {
		w.waitSettled(t, a, a.v1, ferryv1.PhasePromoted, "the first release")
	}
	t.Logf("first releases of %d apps promoted in %s", len(apps), time.Since(began).Round(100*time.Millisecond))

	began = time.Now()
	w.traffic.set(good.ns, "canary", healthy)
	w.traffic.set(bad.ns, "canary", failing)
	w.traffic.set(quiet.ns, "canary", trickle)
	w.traffic.set(aborted.ns, "canary", healthy)
	w.traffic.set(worse.ns, "baseline", baselineLike)
	w.traffic.set(worse.ns, "canary", threeTimes)
	w.traffic.set(even.ns, "baseline", baselineLike)
	w.traffic.set(even.ns, "canary", baselineLike)
	for _, a := range []*canaryApp{good, bad, quiet, aborted, worse, even} {
		a.stable = w.stableReplicaSets(t, a)
		a.v2 = w.release(t, a, "1.1.0")
	}
	w.section(t, "a healthy canary is promoted", func() { w.healthyCanary(t, good) })
	w.section(t, "a canary failing its error ratio rolls back through Git", func() { w.failingCanary(t, bad) })
	w.section(t, "too little traffic holds, then ferry approve goes on", func() { w.quietCanary(t, quiet) })
	w.section(t, "ferry abort rolls back", func() { w.abortCanary(t, aborted) })
	w.section(t, "the judge fails a canary worse than its baseline, under the maximum", func() { w.worseThanBaseline(t, worse) })
	w.section(t, "the judge passes a canary equal to its baseline", func() { w.equalToBaseline(t, even) })
	t.Logf("side by side: %s", time.Since(began).Round(100*time.Millisecond))

	w.section(t, "Prometheus stopped mid-analysis holds, then resumes", func() { w.prometheusOutage(t, outage) })
	w.section(t, "the controller killed mid-step resumes; a rollback is committed once", func() {
		w.controllerKilled(t, crash, crashBad, proxy)
	})
}

// section runs one scenario of the world, logging its name and how long it took.
func (w *canaryWorld) section(t *testing.T, name string, run func()) {
	t.Helper()
	began := time.Now()
	t.Logf("--- %s", name)
	run()
	t.Logf("--- %s: done in %s", name, time.Since(began).Round(100*time.Millisecond))
}

// healthyCanary: the copy runs the new digest beside the untouched stable Deployment, step by step, each step
// measured; only then does the stable Deployment take the digest, and the copy goes.
func (w *canaryWorld) healthyCanary(t *testing.T, a *canaryApp) {
	h := w.h
	var copies []appsv1.Deployment
	waitFor(t, "a canary copy of "+a.name+" on the new digest", func(context.Context) (bool, error) {
		copies = w.copies(t, a)
		return len(copies) == 1 && copies[0].Spec.Template.Spec.Containers[0].Image == a.image+"@"+a.v2, nil
	}, func() string { return describeCopies(copies) })
	c := copies[0]
	if c.Name != "shop-canary" || c.Spec.Template.Labels["app"] != "shop" || c.Spec.Template.Labels[canary.TrackLabel] != "canary" {
		t.Errorf("copy %s has pod labels %v, want app=shop and %s=canary", c.Name, c.Spec.Template.Labels, canary.TrackLabel)
	}
	if img := w.stableImage(t, a); img != a.image+"@"+a.v1 {
		t.Errorf("the stable Deployment runs %s during the canary, want %s", img, a.v1)
	}
	// ferry approve refuses a run that is not held, and changes nothing.
	out, err := w.ferry(t, "approve", a.name, "--stage", "prod")
	if err == nil || !strings.Contains(out, "not Held") {
		t.Errorf("ferry approve of a running canary: %v\n%s", err, out)
	}
	if _, set := h.promotion(a.name).Annotations[ferryv1.ApproveAnnotation]; set {
		t.Errorf("ferry approve set %s although it refused", ferryv1.ApproveAnnotation)
	}

	done := w.waitSettled(t, a, a.v2, ferryv1.PhasePromoted, "the canary to pass and the stable Deployment to take it")
	inStep := func(step int32) func(stageState) bool {
		return func(s stageState) bool {
			return s.Digest == a.v2 && s.Phase == ferryv1.PhaseCanary && s.Analysis == ferryv1.AnalysisRunning && s.Step == step
		}
	}
	promoted := func(s stageState) bool { return s.Digest == a.v2 && s.Phase == ferryv1.PhasePromoted }
	w.awaitLogged(t, a, "promoted", promoted)
	if i, j, k := w.states.first(a.name, inStep(0)), w.states.first(a.name, inStep(1)), w.states.first(a.name, promoted); i < 0 || j < i || k < j {
		t.Errorf("%s did not go through step 1, step 2, then Promoted; states:\n%s", a.name, w.states.describe(a.name))
	}
	w.requireNeverFailed(t, a)
	st := stageStatus(t, done, "prod")
	an := st.Analysis
	if an == nil || an.Digest != a.v2 || an.Phase != ferryv1.AnalysisPassed {
		t.Fatalf("analysis after the promotion: %s", describeAnalysis(an))
	}
	perStep := map[int32]int{}
	for _, m := range an.Measurements {
		if m.Metric == "error-ratio" && m.Track == "canary" && m.Step != nil && m.Verdict == "Pass" {
			perStep[*m.Step]++
		}
	}
	if perStep[0] < 2 || perStep[1] < 2 {
		t.Errorf("passing canary measurements per step = %v, want at least minSamples (2) in each", perStep)
	}
	if !hasMeasurement(an, "error-ratio", "stable", "Pass") {
		t.Errorf("no passing measurement of the soak on the stable track:\n%s", describeAnalysis(an))
	}
	wantQuery := `namespace="` + a.ns + `",track="canary"`
	if !slices.ContainsFunc(an.Queries, func(q ferryv1.AnalysisQuery) bool {
		return q.Metric == "error-ratio" && q.Track == "canary" && strings.Contains(q.Query, wantQuery)
	}) {
		t.Errorf("queries after templating = %+v, want the canary's with %s", an.Queries, wantQuery)
	}
	w.waitStableRolledOut(t, a, a.v2)
	w.waitNoCopies(t, a)
	if e := historyOf(st, a.v2); e == nil || e.Outcome != ferryv1.OutcomePromoted {
		t.Errorf("history of %s = %+v, want Promoted", a.v2, e)
	}
	if n := len(w.rollbackCommits(a)); n != 0 {
		t.Errorf("%d rollback commits for a healthy canary:\n%s", n, formatLog(w.git.Log(a.repo)))
	}
	if reasons := h.eventReasons(a.name); !slices.Contains(reasons, "CanaryStarted") || !slices.Contains(reasons, "CanaryPassed") {
		t.Errorf("events = %v, want CanaryStarted and CanaryPassed", reasons)
	}
}

// failingCanary: measured 5xx above the maximum fails the canary; the previous digest is committed back with a
// trailer naming the metric, the copy goes, and the stable Deployment never rolled.
func (w *canaryWorld) failingCanary(t *testing.T, a *canaryApp) {
	done := w.waitSettled(t, a, a.v1, ferryv1.PhaseRolledBack, "the failing canary to be rolled back")
	st := stageStatus(t, done, "prod")
	if hold := st.Hold; hold == nil || hold.Digest != a.v1 || hold.Reason != "AnalysisFailed" || hold.RequestedBy != "ferry" {
		t.Errorf("hold = %+v, want on %s, AnalysisFailed, by ferry", hold, a.v1)
	}
	if e := historyOf(st, a.v2); e == nil || e.Outcome != ferryv1.OutcomeRolledBack || !strings.Contains(e.Reason, "error-ratio") {
		t.Errorf("history of %s = %+v, want RolledBack naming error-ratio", a.v2, e)
	}
	an := st.Analysis
	if an == nil || an.Digest != a.v2 || an.Phase != ferryv1.AnalysisFailed || !hasMeasurementReason(an, "error-ratio", "canary", "Fail", "AboveMax") {
		t.Errorf("the failed analysis kept for on-call: %s", describeAnalysis(an))
	}
	log := w.git.Log(a.repo)
	back := requireRollbackCommit(t, log, "prod", a.v1)
	reason := back.Trailers["Ferry-Rollback-Reason"]
	if !strings.Contains(reason, a.v2) || !strings.Contains(reason, "analysis failed") || !strings.Contains(reason, "error-ratio") {
		t.Errorf("Ferry-Rollback-Reason = %q, want the digest, 'analysis failed' and the metric", reason)
	}
	if log[0].SHA != back.SHA || st.LastCommit != back.SHA {
		t.Errorf("main's tip %s, stage's last commit %s, want the rollback commit %s", shortSHA(log[0].SHA), shortSHA(st.LastCommit), shortSHA(back.SHA))
	}
	w.requireStableNeverRolled(t, a)
	w.waitNoCopies(t, a)
	if reasons := w.h.eventReasons(a.name); !slices.Contains(reasons, "AnalysisFailed") || !slices.Contains(reasons, "RolledBack") {
		t.Errorf("events = %v, want AnalysisFailed and RolledBack", reasons)
	}
}

// quietCanary: a canary with too little traffic is not judged, however bad its few requests: the stage holds,
// says why, commits nothing; past its missing-data budget it waits for a person. Traffic returns, on-call runs
// `ferry approve`, and the canary goes on to promotion.
func (w *canaryWorld) quietCanary(t *testing.T, a *canaryApp) {
	h := w.h
	// Held first shows with Ready still saying why the last round was inconclusive; the next status write names
	// the hold: wait for both.
	held := h.waitPromotion(a.name, "the quiet canary's budget to run out", func(p *ferryv1.Promotion) bool {
		st := findStage(p, "prod")
		ready := readyCondition(p)
		return st != nil && st.Analysis != nil && st.Analysis.Digest == a.v2 && st.Analysis.Phase == ferryv1.AnalysisHeld &&
			ready != nil && ready.Reason == "AnalysisHeld"
	})
	// On the way, as the controller wrote it: holding on missing data (Ready says why), then held for a person.
	holding := func(s stageState) bool {
		return s.Digest == a.v2 && s.Phase == ferryv1.PhaseCanary && s.Analysis == ferryv1.AnalysisRunning && s.Outage &&
			s.Ready == "False/AnalysisInconclusive"
	}
	heldState := func(s stageState) bool {
		return s.Digest == a.v2 && s.Phase == ferryv1.PhaseCanary && s.Analysis == ferryv1.AnalysisHeld && s.Ready == "False/AnalysisHeld"
	}
	w.awaitLogged(t, a, "held", heldState)
	if i, j := w.states.first(a.name, holding), w.states.first(a.name, heldState); i < 0 || j < i {
		t.Errorf("%s did not hold on missing data (Running, Ready=False AnalysisInconclusive) before it was held; states:\n%s",
			a.name, w.states.describe(a.name))
	}
	st := stageStatus(t, held, "prod")
	an := st.Analysis
	if st.Phase != ferryv1.PhaseCanary || an.Missing <= an.Budget || an.Budget != 4 {
		t.Errorf("held in phase %s with %d of %d missing (budget %d), want Canary past a budget of 4", st.Phase, an.Missing, an.Taken, an.Budget)
	}
	if ready := readyCondition(held); ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != "AnalysisHeld" {
		t.Errorf("Ready = %+v, want False AnalysisHeld", ready)
	}
	if !hasMeasurementReason(an, "traffic", "canary", "Inconclusive", "LowTraffic") {
		t.Errorf("no LowTraffic reading:\n%s", describeAnalysis(an))
	}
	for _, m := range an.Measurements {
		if m.Track == "canary" && m.Verdict != "Inconclusive" {
			t.Errorf("a reading of the quiet canary was judged: %s %s %s %s", m.Metric, m.Value, m.Verdict, m.Message)
		}
	}
	if n := len(w.rollbackCommits(a)); n != 0 {
		t.Errorf("%d rollback commits while the canary held:\n%s", n, formatLog(w.git.Log(a.repo)))
	}
	w.requireStableNeverRolled(t, a)
	if reasons := h.eventReasons(a.name); !slices.Contains(reasons, "AnalysisInconclusive") || !slices.Contains(reasons, "AnalysisHeld") {
		t.Errorf("events = %v, want AnalysisInconclusive and AnalysisHeld", reasons)
	}

	// Traffic comes back; on-call checks that Prometheus sees it, then approves.
	w.traffic.set(a.ns, "canary", healthy)
	w.waitPrometheusSees(t, a, "canary", healthy)
	out, err := w.ferry(t, "approve", a.name, "--stage", "prod")
	if err != nil || !strings.Contains(out, "set "+ferryv1.ApproveAnnotation+"=prod") {
		t.Fatalf("ferry approve: %v\n%s", err, out)
	}
	done := w.waitSettled(t, a, a.v2, ferryv1.PhasePromoted, "the approved canary to be promoted")
	an = stageStatus(t, done, "prod").Analysis
	if an.Approvals != 1 || !strings.HasPrefix(an.ApprovedBy, "ferry-approve") {
		t.Errorf("approvals %d by %q, want 1 by ferry-approve:<user>", an.Approvals, an.ApprovedBy)
	}
	if _, set := done.Annotations[ferryv1.ApproveAnnotation]; set {
		t.Errorf("the %s annotation was not removed", ferryv1.ApproveAnnotation)
	}
	if n := len(w.rollbackCommits(a)); n != 0 {
		t.Errorf("%d rollback commits:\n%s", n, formatLog(w.git.Log(a.repo)))
	}
	w.requireNeverFailed(t, a)
	w.waitStableRolledOut(t, a, a.v2)
	w.waitNoCopies(t, a)
}

// abortCanary: a healthy canary in a long step is aborted with `ferry abort`: rolled back through Git whatever
// the metrics say, the person recorded.
func (w *canaryWorld) abortCanary(t *testing.T, a *canaryApp) {
	h := w.h
	h.waitPromotion(a.name, "the canary to be measured", func(p *ferryv1.Promotion) bool {
		st := findStage(p, "prod")
		return st != nil && st.Analysis != nil && st.Analysis.Digest == a.v2 && st.Analysis.Taken > 0
	})
	out, err := w.ferry(t, "abort", a.name, "--stage", "prod")
	if err != nil || !strings.Contains(out, "set "+ferryv1.AbortAnnotation+"=prod") {
		t.Fatalf("ferry abort: %v\n%s", err, out)
	}
	done := w.waitSettled(t, a, a.v1, ferryv1.PhaseRolledBack, "the aborted canary to be rolled back")
	st := stageStatus(t, done, "prod")
	an := st.Analysis
	if an == nil || an.Phase != ferryv1.AnalysisFailed || !strings.HasPrefix(an.AbortedBy, "ferry-abort") {
		t.Fatalf("analysis after the abort, want Failed and aborted by ferry-abort:<user>: %s", describeAnalysis(an))
	}
	if hold := st.Hold; hold == nil || hold.Digest != a.v1 || hold.RequestedBy != an.AbortedBy {
		t.Errorf("hold = %+v, want on %s requested by %s", hold, a.v1, an.AbortedBy)
	}
	back := requireRollbackCommit(t, w.git.Log(a.repo), "prod", a.v1)
	if reason := back.Trailers["Ferry-Rollback-Reason"]; !strings.Contains(reason, "aborted by "+an.AbortedBy) {
		t.Errorf("Ferry-Rollback-Reason = %q, want who aborted", reason)
	}
	if _, set := done.Annotations[ferryv1.AbortAnnotation]; set {
		t.Errorf("the %s annotation was not removed", ferryv1.AbortAnnotation)
	}
	w.requireStableNeverRolled(t, a)
	w.waitNoCopies(t, a)
}

// prometheusOutage: Prometheus dies while a canary is measured. Missing data is no verdict: the stage holds in
// its step, Ready says why, nothing is committed. Prometheus comes back on the same port and storage; the canary
// resumes on its own and is promoted.
func (w *canaryWorld) prometheusOutage(t *testing.T, a *canaryApp) {
	h := w.h
	w.traffic.set(a.ns, "canary", healthy)
	a.v2 = w.release(t, a, "1.1.0")
	h.waitPromotion(a.name, "the canary to be measured with data", func(p *ferryv1.Promotion) bool {
		st := findStage(p, "prod")
		return st != nil && st.Phase == ferryv1.PhaseCanary && st.Analysis != nil && st.Analysis.Digest == a.v2 &&
			hasMeasurement(st.Analysis, "error-ratio", "canary", "Pass")
	})
	if err := w.prom.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	holding := h.waitPromotion(a.name, "the stage to hold while Prometheus is down", func(p *ferryv1.Promotion) bool {
		st, ready := findStage(p, "prod"), readyCondition(p)
		return st != nil && st.Phase == ferryv1.PhaseCanary && st.Analysis != nil && st.Analysis.Digest == a.v2 &&
			st.Analysis.Phase == ferryv1.AnalysisRunning && st.Analysis.OutageSince != nil && st.Analysis.Missing >= 2 &&
			ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == "AnalysisInconclusive"
	})
	an := stageStatus(t, holding, "prod").Analysis
	if !hasMeasurementReason(an, "error-ratio", "canary", "Inconclusive", analysis.ReasonUnavailable) {
		t.Errorf("no PrometheusUnavailable reading during the outage:\n%s", describeAnalysis(an))
	}
	if ready := readyCondition(holding); !strings.Contains(ready.Message, "no usable data") {
		t.Errorf("Ready message %q does not say why the stage waits", ready.Message)
	}
	if n := len(w.rollbackCommits(a)); n != 0 {
		t.Errorf("%d rollback commits during the outage:\n%s", n, formatLog(w.git.Log(a.repo)))
	}
	if img := w.stableImage(t, a); img != a.image+"@"+a.v1 {
		t.Errorf("the stable Deployment runs %s during the outage, want %s", img, a.v1)
	}

	if err := w.prom.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.prom.WaitScraped(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("Prometheus was down for %s", time.Since(stopped).Round(100*time.Millisecond))
	done := w.waitSettled(t, a, a.v2, ferryv1.PhasePromoted, "the canary to resume and be promoted after the outage")
	an = stageStatus(t, done, "prod").Analysis
	if an.Phase != ferryv1.AnalysisPassed || an.OutageSince != nil {
		t.Errorf("analysis after the outage: %s", describeAnalysis(an))
	}
	// Ready follows the Promoted phase by one status write: wait for it (a timeout fails the test).
	w.h.waitPromotion(a.name, "Ready=True after the outage", func(p *ferryv1.Promotion) bool {
		ready := readyCondition(p)
		return ready != nil && ready.Status == metav1.ConditionTrue
	})
	if n := len(w.rollbackCommits(a)); n != 0 {
		t.Errorf("%d rollback commits:\n%s", n, formatLog(w.git.Log(a.repo)))
	}
	w.requireNeverFailed(t, a)
	w.waitStableRolledOut(t, a, a.v2)
	w.waitNoCopies(t, a)
}

// controllerKilled: one canary is mid-step (a long first step) and another's analysis failed, its rollback
// commit pushed through a proxy that lets Git take it and holds the answer. SIGKILL then: no cleanup, no last
// status write. The restarted controller resumes the first at the same step with every measurement it had, and
// recognises the second's rollback commit instead of committing it again.
func (w *canaryWorld) controllerKilled(t *testing.T, a, bad *canaryApp, proxy *holdingProxy) {
	h := w.h
	w.traffic.set(a.ns, "canary", healthy)
	w.traffic.set(bad.ns, "canary", failing)
	bad.stable = w.stableReplicaSets(t, bad)
	// The failing app's first push is its pin of the release, the second its rollback: that one is held.
	pushes := 0
	rollbackPush := proxy.hold(func(r *http.Request) bool {
		if gitPush(r) {
			pushes++ // the proxy asks its rules under its lock
			return pushes == 2
		}
		return false
	})
	a.v2 = w.release(t, a, "1.1.0")
	bad.v2 = w.release(t, bad, "1.1.0")
	waitReached(t, h, rollbackPush, "the rollback commit of "+bad.name+" to reach the Git server")
	letGo := sync.OnceFunc(rollbackPush.letGo)
	defer letGo() // a test failing before the kill must not leave the proxy holding the answer
	back := requireRollbackCommit(t, w.git.Log(bad.repo), "prod", bad.v1)

	before := h.waitPromotion(a.name, "the long canary step to be measured", func(p *ferryv1.Promotion) bool {
		st := findStage(p, "prod")
		return st != nil && st.Phase == ferryv1.PhaseCanary && st.Analysis != nil && st.Analysis.Digest == a.v2 &&
			st.Analysis.Step != nil && *st.Analysis.Step == 0 && st.Analysis.StepStartedAt != nil && st.Analysis.Taken >= 2
	})
	b := stageStatus(t, before, "prod").Analysis
	t.Logf("killing the controller: %s is %s into step 1 with %d readings; %s is %s", a.name,
		time.Since(b.StepStartedAt.Time).Round(time.Second), len(b.Measurements), bad.name, stageStatus(t, h.promotion(bad.name), "prod").Phase)
	h.kill(h.ctrl)
	letGo()
	h.restart(h.cache)
	restarted := time.Now()

	// The first status the new process writes after a measurement of its own: same step, same start, nothing lost.
	after := h.waitPromotion(a.name, "the restarted controller to measure the canary", func(p *ferryv1.Promotion) bool {
		st := findStage(p, "prod")
		return st != nil && st.Analysis != nil && st.Analysis.Digest == a.v2 && slices.ContainsFunc(st.Analysis.Measurements,
			func(m ferryv1.Measurement) bool { return m.Time.Time.After(restarted) })
	})
	c := stageStatus(t, after, "prod").Analysis
	t.Logf("restarted: %s is %s into step %s with %d readings", a.name, time.Since(b.StepStartedAt.Time).Round(time.Second),
		stepOf(c), len(c.Measurements))
	if c.Step == nil || *c.Step != 0 || !c.StepStartedAt.Equal(b.StepStartedAt) || c.Run != ferryv1.RunCanary {
		t.Errorf("after the restart: %s step started %v, want step 1 (index 0) started %v", describeAnalysis(c), c.StepStartedAt, b.StepStartedAt)
	}
	if lost := missingMeasurements(b.Measurements, c.Measurements); len(lost) > 0 {
		t.Errorf("%d measurements taken before the kill are gone after it, e.g. %+v", len(lost), lost[0])
	}

	doneBad := w.waitSettled(t, bad, bad.v1, ferryv1.PhaseRolledBack, "the failed canary's rollback to finish after the restart")
	log := w.git.Log(bad.repo)
	if again := requireRollbackCommit(t, log, "prod", bad.v1); again.SHA != back.SHA || log[0].SHA != back.SHA {
		t.Errorf("the rollback commit is %s, main's tip %s; the one pushed before the kill was %s:\n%s",
			shortSHA(again.SHA), shortSHA(log[0].SHA), shortSHA(back.SHA), formatLog(log))
	}
	if n := len(ferryCommits(log, "prod", bad.v2)); n != 1 {
		t.Errorf("%d commits pin %s, want 1:\n%s", n, bad.v2, formatLog(log))
	}
	st := stageStatus(t, doneBad, "prod")
	if st.LastCommit != back.SHA {
		t.Errorf("the stage's last commit is %s, want the rollback commit %s", shortSHA(st.LastCommit), shortSHA(back.SHA))
	}
	rolledBack := 0
	for _, e := range st.History {
		if e.Digest == bad.v2 && e.Outcome == ferryv1.OutcomeRolledBack {
			rolledBack++
		}
	}
	if rolledBack != 1 {
		t.Errorf("history has %d RolledBack entries of %s, want 1: %+v", rolledBack, bad.v2, st.History)
	}
	w.requireStableNeverRolled(t, bad)
	w.waitNoCopies(t, bad)

	w.waitSettled(t, a, a.v2, ferryv1.PhasePromoted, "the resumed canary to be promoted")
	w.waitStableRolledOut(t, a, a.v2)
	w.waitNoCopies(t, a)
}

// canaryWorld is the surroundings of the canary scenarios: a harness (cluster and controller), the release key,
// a source registry and a stage registry (one repository per app in each), a Git server (one deploy repository
// per app), Prometheus with a Pushgateway, and the test's traffic feeding it.
type canaryWorld struct {
	h       *harness
	cosign  *cosignCLI
	src     *signaturetest.Registry
	stage   *signaturetest.Registry
	git     *gitserver.Server
	prom    *promserver.Server
	traffic *traffic
	query   *analysis.Prometheus
	states  *stateLog
	seen    *copyLog // every copy the controller ran, from a watch
}

// canaryApp is one Promotion with a single stage, prod.
type canaryApp struct {
	name   string // the Promotion
	source string // its source repository, acme/<name>
	ns     string // the stage's namespace
	repo   string // its deploy repository on the Git server
	gitURL string // how the controller reaches it
	image  string // the stage's image repository
	v1, v2 string // its releases' digests
	stable []appsv1.ReplicaSet
}

func newCanaryWorld(t *testing.T) *canaryWorld {
	t.Helper()
	prom := startPromServer(t)
	w := &canaryWorld{h: newHarness(t), cosign: newCosign(t), src: signaturetest.NewRegistry(t, true),
		stage: signaturetest.NewRegistry(t, true), git: gitserver.Start(t), prom: prom}
	var err error
	if w.query, err = analysis.NewPrometheus(analysis.Config{Address: prom.URL, Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	go cliOnce.Do(buildCLI) // while the world starts; ferryCLI waits for it
	w.traffic = startTraffic(t, prom)
	w.states = watchStates(t, w.h)
	w.seen = watchCopies(t, w.h)
	w.h.create(keySecret(w.cosign.PublicKey(t)))
	// Prometheus hands its targets to its scrapers every 5s: the first releases' soaks should find data.
	if err := prom.WaitScraped(t.Context()); err != nil {
		t.Fatal(err)
	}
	return w
}

// startPromServer runs Prometheus and a Pushgateway on loopback for the test, or skips it without the
// binaries (fails it under FERRY_REQUIRE_TOOLS=1).
func startPromServer(t *testing.T) *promserver.Server {
	t.Helper()
	promBin, pgwBin := os.Getenv("FERRY_PROMETHEUS"), os.Getenv("FERRY_PUSHGATEWAY")
	if promBin == "" || pgwBin == "" {
		msg := "FERRY_PROMETHEUS and FERRY_PUSHGATEWAY are not set: " +
			"{ read -r FERRY_PROMETHEUS; read -r FERRY_PUSHGATEWAY; } < <(hack/prometheus.sh), as `make test` does"
		if os.Getenv("FERRY_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	logPath := filepath.Join(t.TempDir(), "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	s, err := promserver.Start(t.Context(), promserver.Options{Prometheus: promBin, Pushgateway: pgwBin,
		ScrapeInterval: scrapeInterval, Log: logFile})
	if err != nil {
		_ = logFile.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stopping Prometheus: %v", err)
		}
		_ = logFile.Close()
		if t.Failed() {
			t.Logf("--- last lines of %s ---\n%s", logPath, tail(logPath, 30))
		}
	})
	return s
}

// app sets up an app's repositories and namespace, and the healthy traffic of its stable track. Through a
// proxy (non-nil), the controller reaches its deploy repository through it.
func (w *canaryWorld) app(name string, proxy *holdingProxy) *canaryApp {
	a := &canaryApp{name: name, source: "acme/" + name, ns: "shop-" + name, repo: "acme/deploy-" + name,
		image: w.stage.Host + "/" + name + "/shop"}
	a.gitURL = w.git.NewRepo(a.repo, map[string]string{
		"envs/prod/deployment.yaml": deploymentYAML(a.image+":0.0.0", deploymentOptions{}),
	})
	if proxy != nil {
		a.gitURL = proxy.URL + "/" + a.repo + ".git"
	}
	w.h.createNamespaces(a.ns)
	w.traffic.set(a.ns, "stable", healthy)
	return a
}

type canaryOptions struct {
	steps             []ferryv1.CanaryStep
	minSamples        int32 // 0: the default, 1
	inconclusiveLimit int32 // 0: 20, more than a healthy run ever misses
	// baseline runs a baseline beside the canary, and compares error-ratio with it (20% allowed, 95% confidence).
	baseline bool
}

// create creates the app's Promotion: the source's semver tags, signed by the release key, pinned in the app's
// deploy repository; one stage, prod, with a canary of 2 replicas and an analysis of the 5xx ratio gated on
// traffic, measured every second.
func (w *canaryWorld) create(a *canaryApp, o canaryOptions) {
	limit := o.inconclusiveLimit
	if limit == 0 {
		limit = 20
	}
	metric := ferryv1.MetricSpec{Name: "error-ratio", Query: errorRatioQuery, Max: ptrTo(maxErrorRatio)}
	var baseline *ferryv1.BaselineSpec
	if o.baseline {
		metric.MaxBaselineDeviationPercent = ptrTo(int32(maxBaselineDeviation))
		baseline = &ferryv1.BaselineSpec{ConfidencePercent: 95}
	}
	stage := ferryv1.StageSpec{
		Name: "prod", Path: "envs/prod",
		Registry: ferryv1.StageRegistry{Repository: a.image},
		Manifest: ferryv1.ManifestSpec{Format: ferryv1.ManifestPlain},
		Sync:     ferryv1.SyncSpec{Namespace: a.ns, Prune: true, HealthTimeout: &metav1.Duration{Duration: 2 * time.Minute}},
		Canary:   &ferryv1.CanarySpec{Replicas: 2, Steps: o.steps},
		Analysis: &ferryv1.AnalysisSpec{
			Prometheus:        ferryv1.PrometheusSpec{Address: w.prom.URL},
			Interval:          &metav1.Duration{Duration: analysisInterval},
			MinSamples:        o.minSamples,
			InconclusiveLimit: &limit,
			OutageDeadline:    &metav1.Duration{Duration: 10 * time.Minute},
			Traffic:           &ferryv1.TrafficSpec{Query: trafficQuery, MinRequests: minRequests},
			Metrics:           []ferryv1.MetricSpec{metric},
			Baseline:          baseline,
		},
	}
	w.h.create(&ferryv1.Promotion{
		ObjectMeta: metav1.ObjectMeta{Name: a.name, Namespace: promotionNamespace},
		Spec: ferryv1.PromotionSpec{
			Source: ferryv1.SourceSpec{Image: w.src.Host + "/" + a.source,
				TagPolicy: &ferryv1.TagPolicy{Semver: &ferryv1.SemverPolicy{Range: ">=1.0.0"}}},
			Verification: ferryv1.VerificationSpec{Keys: []ferryv1.PublicKeySource{
				{Name: "release-key", SecretRef: ferryv1.SecretKeyReference{Name: "release-key"}}}},
			Git: ferryv1.GitSpec{URL: a.gitURL, Branch: "main",
				CommitMessageTemplate: "Promote {{.Promotion}} to {{.Stage}}{{if .Rollback}} (rollback){{end}}"},
			Interval: &metav1.Duration{Duration: time.Minute},
			Stages:   []ferryv1.StageSpec{stage},
		},
	})
}

// release pushes a new image tagged version to the app's source repository, signs it with cosign as CI does,
// tells the controller, and returns the digest.
func (w *canaryWorld) release(t *testing.T, a *canaryApp, version string) string {
	t.Helper()
	d := w.src.PushImage(t, a.source)
	desc, err := remote.Get(d)
	if err != nil {
		t.Fatalf("reading %s: %v", d, err)
	}
	if err := remote.Tag(d.Context().Tag(version), desc); err != nil {
		t.Fatalf("tagging %s as %s: %v", d, version, err)
	}
	w.cosign.sign(t, d)
	w.h.notify(w.src.Host + "/" + a.source)
	return d.DigestStr()
}

// waitSettled waits until the app's stage runs digest in phase with nothing in flight.
func (w *canaryWorld) waitSettled(t *testing.T, a *canaryApp, digest string, phase ferryv1.StagePhase, what string) *ferryv1.Promotion {
	t.Helper()
	var last *ferryv1.Promotion
	settled := false
	defer func() { // waitPromotion fails the test when it times out: show the analysis and the way there
		if !settled && last != nil {
			if st := findStage(last, "prod"); st != nil {
				t.Logf("%s: analysis %s\nstates:\n%s", a.name, describeAnalysis(st.Analysis), w.states.describe(a.name))
			}
		}
	}()
	w.h.waitPromotion(a.name, a.name+": "+what, func(p *ferryv1.Promotion) bool {
		last = p.DeepCopy()
		return settledOn(p, "prod", digest, phase)
	})
	settled = true
	return last
}

// copies lists the canary and baseline Deployments in the app's namespace.
func (w *canaryWorld) copies(t *testing.T, a *canaryApp) []appsv1.Deployment {
	t.Helper()
	var list appsv1.DeploymentList
	if err := w.h.c.List(t.Context(), &list, client.InNamespace(a.ns), client.HasLabels{canary.TrackLabel}); err != nil {
		t.Fatalf("listing copies: %v", err)
	}
	return list.Items
}

// waitNoCopies waits until neither copies nor their pods are left in the app's namespace.
func (w *canaryWorld) waitNoCopies(t *testing.T, a *canaryApp) {
	t.Helper()
	var last string
	waitFor(t, "the copies of "+a.name+" and their pods to be gone", func(ctx context.Context) (bool, error) {
		var pods corev1.PodList
		if err := w.h.c.List(ctx, &pods, client.InNamespace(a.ns), client.HasLabels{canary.TrackLabel}); err != nil {
			return false, err
		}
		copies := w.copies(t, a)
		last = fmt.Sprintf("%s; %d pods", describeCopies(copies), len(pods.Items))
		return len(copies) == 0 && len(pods.Items) == 0, nil
	}, func() string { return last })
}

func (w *canaryWorld) stable(t *testing.T, a *canaryApp) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := w.h.c.Get(t.Context(), client.ObjectKey{Namespace: a.ns, Name: "shop"}, &d); err != nil {
		t.Fatalf("reading the stable Deployment of %s: %v", a.name, err)
	}
	return &d
}

func (w *canaryWorld) stableImage(t *testing.T, a *canaryApp) string {
	t.Helper()
	return w.stable(t, a).Spec.Template.Spec.Containers[0].Image
}

// stableReplicaSets lists the ReplicaSets of the stable Deployment (not of its copies): one per pod template it
// ever rolled out.
func (w *canaryWorld) stableReplicaSets(t *testing.T, a *canaryApp) []appsv1.ReplicaSet {
	t.Helper()
	var list appsv1.ReplicaSetList
	if err := w.h.c.List(t.Context(), &list, client.InNamespace(a.ns)); err != nil {
		t.Fatalf("listing ReplicaSets: %v", err)
	}
	var own []appsv1.ReplicaSet
	for _, rs := range list.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.Kind == "Deployment" && ref.Name == "shop" {
			own = append(own, rs)
		}
	}
	return own
}

// requireStableNeverRolled fails unless the stable Deployment still has exactly the ReplicaSets it had before
// the release, on the previous digest: its pod template never changed, so no pod was replaced.
func (w *canaryWorld) requireStableNeverRolled(t *testing.T, a *canaryApp) {
	t.Helper()
	now := w.stableReplicaSets(t, a)
	names := func(rss []appsv1.ReplicaSet) []string {
		var out []string
		for _, rs := range rss {
			out = append(out, rs.Name+"="+rs.Spec.Template.Spec.Containers[0].Image)
		}
		sort.Strings(out)
		return out
	}
	if len(a.stable) == 0 || !slices.Equal(names(now), names(a.stable)) {
		t.Errorf("the stable Deployment's ReplicaSets are %v, were %v before the release: its pod template changed", names(now), names(a.stable))
	}
	if img := w.stableImage(t, a); img != a.image+"@"+a.v1 {
		t.Errorf("the stable Deployment runs %s, want %s", img, a.v1)
	}
}

// waitStableRolledOut waits until the stable Deployment has rolled out digest to its 2 replicas.
func (w *canaryWorld) waitStableRolledOut(t *testing.T, a *canaryApp, digest string) {
	t.Helper()
	var last string
	waitFor(t, "the stable Deployment of "+a.name+" to run "+digest, func(ctx context.Context) (bool, error) {
		d := w.stable(t, a)
		last = fmt.Sprintf("image %s, %+v", d.Spec.Template.Spec.Containers[0].Image, d.Status)
		return d.Spec.Template.Spec.Containers[0].Image == a.image+"@"+digest && rolloutComplete(d, 2), nil
	}, func() string { return last })
}

// rollbackCommits are the app's commits with the Ferry-Rollback trailer.
func (w *canaryWorld) rollbackCommits(a *canaryApp) []gitserver.LogEntry {
	var out []gitserver.LogEntry
	for _, e := range w.git.Log(a.repo) {
		if e.Trailers["Ferry-Rollback"] != "" {
			out = append(out, e)
		}
	}
	return out
}

// waitPrometheusSees waits until Prometheus answers the analysis's own queries for the track with what profile
// feeds it: enough traffic and an error ratio under the maximum.
func (w *canaryWorld) waitPrometheusSees(t *testing.T, a *canaryApp, track string, p profile) {
	t.Helper()
	vars := analysis.QueryVars{Namespace: a.ns, Stage: "prod", Promotion: a.name, Digest: a.v2, Track: track,
		Interval: analysis.PromDuration(analysisInterval)}
	ratioQ, err := analysis.RenderQuery(errorRatioQuery, vars)
	if err != nil {
		t.Fatal(err)
	}
	trafficQ, err := analysis.RenderQuery(trafficQuery, vars)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	waitFor(t, fmt.Sprintf("Prometheus to see %s's %s traffic at %v", a.name, track, p), func(ctx context.Context) (bool, error) {
		ratio, err1 := w.query.Query(ctx, ratioQ, time.Time{})
		requests, err2 := w.query.Query(ctx, trafficQ, time.Time{})
		last = fmt.Sprintf("ratio %v (%v), requests %v (%v)", ratio.Value, err1, requests.Value, err2)
		return err1 == nil && err2 == nil && ratio.Value < errorRatioLimit && requests.Value >= minRequestCount &&
			math.Abs(ratio.Value-p.errorRatio) < 0.01, nil
	}, func() string { return last })
}

// ferry runs the ferry CLI against the world's cluster, in the Promotions' namespace.
func (w *canaryWorld) ferry(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return w.h.ferry(args...)
}

// profile is a track's traffic: requests per second, and the share of them answered 5xx; with noise, the share
// of each tick's requests is drawn uniformly within ±noise of it (relative), so that readings differ.
type profile struct{ rps, errorRatio, noise float64 }

func (p profile) String() string {
	s := fmt.Sprintf("%g rps, %g%% 5xx", p.rps, p.errorRatio*100)
	if p.noise > 0 {
		s += fmt.Sprintf(" ±%g%%", p.noise*100)
	}
	return s
}

// traffic plays each namespace's tracks' requests into http_requests_total counters (code 200 and 500) and
// pushes them to the Pushgateway as one group per namespace, as Prometheus would scrape them from the pods.
type traffic struct {
	prom     *promserver.Server
	mu       sync.Mutex
	profiles map[string]map[string]profile    // namespace → track → profile
	counts   map[string]map[string][2]float64 // namespace → track → {200, 500}
	pushes   int
	lastErr  error
}

func startTraffic(t *testing.T, prom *promserver.Server) *traffic {
	tr := &traffic{prom: prom, profiles: map[string]map[string]profile{}, counts: map[string]map[string][2]float64{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(trafficTick)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				tr.advance(now.Sub(last))
				last = now
				tr.push(ctx)
			}
		}
	}()
	t.Cleanup(func() { // before Prometheus stops: cleanups run last registered first
		cancel()
		<-done
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if t.Failed() {
			t.Logf("traffic: %d pushes, last error %v", tr.pushes, tr.lastErr)
		}
	})
	return tr
}

// set gives a namespace's track a traffic profile from now on.
func (tr *traffic) set(ns, track string, p profile) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.profiles[ns] == nil {
		tr.profiles[ns], tr.counts[ns] = map[string]profile{}, map[string][2]float64{}
	}
	tr.profiles[ns][track] = p
}

func (tr *traffic) advance(d time.Duration) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for ns, tracks := range tr.profiles {
		for track, p := range tracks {
			n := p.rps * d.Seconds()
			ratio := p.errorRatio
			if p.noise > 0 {
				ratio *= 1 + p.noise*(2*rand.Float64()-1)
			}
			c := tr.counts[ns][track]
			c[0] += n * (1 - ratio)
			c[1] += n * ratio
			tr.counts[ns][track] = c
		}
	}
}

// push replaces each namespace's group job="shop",namespace=<ns> with its counters.
func (tr *traffic) push(ctx context.Context) {
	tr.mu.Lock()
	groups := map[string]string{}
	for ns, tracks := range tr.counts {
		var b strings.Builder
		b.WriteString("# TYPE http_requests_total counter\n")
		for track, c := range tracks {
			fmt.Fprintf(&b, "http_requests_total{track=%q,code=\"200\"} %f\n", track, c[0])
			fmt.Fprintf(&b, "http_requests_total{track=%q,code=\"500\"} %f\n", track, c[1])
		}
		groups[ns] = b.String()
	}
	tr.mu.Unlock()
	for ns, text := range groups {
		err := tr.prom.Push(ctx, "shop", map[string]string{"namespace": ns}, text)
		tr.mu.Lock()
		tr.pushes++
		if err != nil && ctx.Err() == nil {
			tr.lastErr = err
		}
		tr.mu.Unlock()
	}
}

// requireNeverFailed fails if the app's stage was ever failed or rolled back while analysing its second release.
func (w *canaryWorld) requireNeverFailed(t *testing.T, a *canaryApp) {
	t.Helper()
	failed := func(s stageState) bool {
		return s.Digest == a.v2 && (s.Analysis == ferryv1.AnalysisFailed || s.Phase == ferryv1.PhaseRollingBack ||
			s.Phase == ferryv1.PhaseRolledBack || s.Phase == ferryv1.PhaseFailed)
	}
	if w.states.first(a.name, failed) >= 0 {
		t.Errorf("%s failed or rolled back its canary; states:\n%s", a.name, w.states.describe(a.name))
	}
}

// stageState is what a stage's status said at one moment, in brief.
type stageState struct {
	Phase    ferryv1.StagePhase
	Digest   string // of the analysis
	Analysis ferryv1.AnalysisPhase
	Step     int32 // -1 outside a canary step
	Outage   bool
	Ready    string // status/reason
}

func (s stageState) String() string {
	return fmt.Sprintf("%s analysis=%s(%s) step=%d outage=%v Ready=%s", s.Phase, s.Analysis, shortDigest(s.Digest), s.Step+1, s.Outage, s.Ready)
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// stateLog records every state of every Promotion's prod stage as the controller writes it, from a watch, so
// that a test can check states that pass faster than its own assertions get to them.
type stateLog struct {
	mu     sync.Mutex
	states map[string][]stageState // by Promotion, consecutive duplicates dropped
	errs   int
}

func watchStates(t *testing.T, h *harness) *stateLog {
	t.Helper()
	l := &stateLog{states: map[string][]stageState{}}
	watchEvery(t, h, &ferryv1.PromotionList{}, func(obj client.Object) { l.note(obj.(*ferryv1.Promotion)) }, func() {
		l.mu.Lock()
		l.errs++
		l.mu.Unlock()
	}, client.InNamespace(promotionNamespace))
	return l
}

// watchEvery calls note with every object of list's kind the API server reports, from now until the test ends,
// watching again from where it stopped when a watch ends (and from the current state after 410 Gone); failed
// calls to start a watch are counted through failed.
func watchEvery(t *testing.T, h *harness, list client.ObjectList, note func(client.Object), failed func(), opts ...client.ListOption) {
	t.Helper()
	c, err := client.NewWithWatch(h.cluster.RESTConfig, client.Options{Scheme: h.c.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rv := ""
		for ctx.Err() == nil {
			watcher, err := c.Watch(ctx, list, append(opts, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})...)
			if err != nil {
				failed()
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond): // the API server may be briefly busy
				}
				continue
			}
			for ev := range watcher.ResultChan() {
				obj, ok := ev.Object.(client.Object)
				if !ok || ev.Type == watch.Error { // e.g. 410 Gone: start again from the current state
					rv = ""
					continue
				}
				rv = obj.GetResourceVersion()
				note(obj)
			}
			watcher.Stop()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func (l *stateLog) note(p *ferryv1.Promotion) {
	st := findStage(p, "prod")
	if st == nil {
		return
	}
	s := stageState{Phase: st.Phase, Step: -1}
	if a := st.Analysis; a != nil {
		s.Digest, s.Analysis, s.Outage = a.Digest, a.Phase, a.OutageSince != nil
		if a.Step != nil {
			s.Step = *a.Step
		}
	}
	if ready := readyCondition(p); ready != nil {
		s.Ready = string(ready.Status) + "/" + ready.Reason
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if seen := l.states[p.Name]; len(seen) == 0 || seen[len(seen)-1] != s {
		l.states[p.Name] = append(seen, s)
	}
}

// awaitLogged waits for the state log to hold a state of a that matches: the log follows a watch of its own,
// which may be a moment behind the read that saw the state.
func (w *canaryWorld) awaitLogged(t *testing.T, a *canaryApp, what string, match func(stageState) bool) {
	t.Helper()
	waitFor(t, "the state log to see "+a.name+" "+what, func(context.Context) (bool, error) {
		return w.states.first(a.name, match) >= 0, nil
	}, func() string { return w.states.describe(a.name) })
}

// first is the index of the first state of name that matches, or -1.
func (l *stateLog) first(name string, match func(stageState) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.IndexFunc(l.states[name], match)
}

func (l *stateLog) describe(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, s := range l.states[name] {
		fmt.Fprintf(&b, "    %s\n", s)
	}
	if l.errs > 0 {
		fmt.Fprintf(&b, "    (%d failed watch attempts)\n", l.errs)
	}
	return b.String()
}

// describeAnalysis is a readable dump of an analysis status for failure messages.
func describeAnalysis(a *ferryv1.AnalysisStatus) string {
	if a == nil {
		return "(no analysis)"
	}
	var b strings.Builder
	step := "-"
	if a.Step != nil {
		step = fmt.Sprint(*a.Step + 1)
	}
	fmt.Fprintf(&b, "%s %s of %s step %s at %d%%: %s (taken %d, missing %d, budget %d, outage since %v)\n",
		a.Run, a.Phase, a.Digest, step, a.Weight, a.Message, a.Taken, a.Missing, a.Budget, a.OutageSince)
	from := max(0, len(a.Measurements)-12)
	for _, m := range a.Measurements[from:] {
		s := "-"
		if m.Step != nil {
			s = fmt.Sprint(*m.Step + 1)
		}
		fmt.Fprintf(&b, "    %s %s/%s step %s = %s %s %s: %s\n", m.Time.Format(time.TimeOnly), m.Metric, m.Track, s, m.Value, m.Verdict, m.Reason, m.Message)
	}
	return b.String()
}

func describeCopies(copies []appsv1.Deployment) string {
	var parts []string
	for _, c := range copies {
		parts = append(parts, fmt.Sprintf("%s (%s, %d/%d ready)", c.Name, c.Spec.Template.Spec.Containers[0].Image,
			c.Status.ReadyReplicas, c.Status.Replicas))
	}
	return fmt.Sprintf("%d copies %v", len(copies), parts)
}

func hasMeasurement(a *ferryv1.AnalysisStatus, metric, track, verdict string) bool {
	return hasMeasurementReason(a, metric, track, verdict, "")
}

// hasMeasurementReason reports whether the analysis kept a reading of metric on track with verdict (and reason,
// unless empty).
func hasMeasurementReason(a *ferryv1.AnalysisStatus, metric, track, verdict, reason string) bool {
	return a != nil && slices.ContainsFunc(a.Measurements, func(m ferryv1.Measurement) bool {
		return m.Metric == metric && m.Track == track && m.Verdict == verdict && (reason == "" || m.Reason == reason)
	})
}

// missingMeasurements returns the readings of before that after lacks (as a multiset: two identical readings
// in one second are two).
func missingMeasurements(before, after []ferryv1.Measurement) []ferryv1.Measurement {
	key := func(m ferryv1.Measurement) string {
		step := int32(-1)
		if m.Step != nil {
			step = *m.Step
		}
		return fmt.Sprintf("%s|%s|%d|%s|%s|%s|%s", m.Metric, m.Track, step, m.Time.UTC().Format(time.RFC3339), m.Value, m.Verdict, m.Reason)
	}
	have := map[string]int{}
	for _, m := range after {
		have[key(m)]++
	}
	var lost []ferryv1.Measurement
	for _, m := range before {
		if have[key(m)] == 0 {
			lost = append(lost, m)
			continue
		}
		have[key(m)]--
	}
	return lost
}

func stepOf(a *ferryv1.AnalysisStatus) string {
	if a.Step == nil {
		return "-"
	}
	return fmt.Sprint(*a.Step + 1)
}

func seconds(n int) *metav1.Duration {
	return &metav1.Duration{Duration: time.Duration(n) * time.Second}
}

func ptrTo[T any](v T) *T { return &v }
