package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/canary"
)

// The baseline judge on real parts, scenarios of TestCanaryOnRealPrometheus: a canary is compared with a
// baseline of the previous digest started beside it, on readings Prometheus takes of the test's traffic.

const (
	// judgeSamples is the judged apps' minSamples: above the judge's own minimum of 5 a side, so that a step
	// that has its samples can be judged.
	judgeSamples = 6
	// maxBaselineDeviation is the judged metric's maxBaselineDeviationPercent.
	maxBaselineDeviation = 20
)

// worseThanBaseline: the canary answers 3% of its requests with 5xx, its baseline 1%. Each reading of either is
// under the 5% maximum, so a threshold alone would promote it; the judge finds it significantly and more than
// 20% worse than the baseline, and it is rolled back through Git like any failed analysis.
func (w *canaryWorld) worseThanBaseline(t *testing.T, a *canaryApp) {
	done := w.waitSettled(t, a, a.v1, ferryv1.PhaseRolledBack, "the canary worse than its baseline to be rolled back")
	st := stageStatus(t, done, "prod")
	an := st.Analysis
	if an == nil || an.Digest != a.v2 || an.Phase != ferryv1.AnalysisFailed {
		t.Fatalf("the failed analysis kept for on-call: %s", describeAnalysis(an))
	}
	c := requireComparison(t, an, "Fail")
	t.Logf("the judge on %s: p=%s, medians %s (canary) and %s (baseline): %s", a.name, c.PValue, c.CanaryMedian, c.BaselineMedian, c.Reason)
	if p := parseDecimal(t, "pValue", c.PValue); p >= 0.05 {
		t.Errorf("p-value %s of a failing comparison, want < 0.05 (95%% confidence)", c.PValue)
	}
	canaryMedian, baselineMedian := parseDecimal(t, "canaryMedian", c.CanaryMedian), parseDecimal(t, "baselineMedian", c.BaselineMedian)
	if canaryMedian >= errorRatioLimit || canaryMedian <= baselineMedian*(1+maxBaselineDeviation/100.0) {
		t.Errorf("medians: canary %s, baseline %s; want the canary under the maximum %s but more than %d%% above the baseline",
			c.CanaryMedian, c.BaselineMedian, maxErrorRatio, maxBaselineDeviation)
	}
	if !strings.Contains(c.Reason, "beyond the allowed 20%") {
		t.Errorf("the judge's reasoning %q does not say the canary is beyond the allowed deviation", c.Reason)
	}
	// No threshold failed it: every reading of either track passed the maximum. (A reading Prometheus did not
	// answer in time under the suite's load is Inconclusive, no verdict, and the judge leaves it out.)
	for _, track := range []string{"canary", "baseline"} {
		passed, missing := 0, 0
		for _, m := range an.Measurements {
			switch {
			case m.Metric != "error-ratio" || m.Track != track:
			case m.Verdict == "Pass":
				passed++
			case m.Verdict == "Inconclusive" && m.Value == "":
				missing++
			default:
				t.Errorf("a reading of the %s's error ratio did not pass its threshold: %s %s %s %s", track, m.Value, m.Verdict, m.Reason, m.Message)
			}
		}
		if missing > 0 {
			t.Logf("%d readings of the %s's error ratio were missing", missing, track)
		}
		if passed < judgeSamples {
			t.Errorf("%d passing readings of the %s's error ratio, want at least %d:\n%s", passed, track, judgeSamples, describeAnalysis(an))
		}
	}
	for _, tally := range an.Tallies {
		if tally.Failed != 0 {
			t.Errorf("tally %+v: a threshold failed, want only the judge to", tally)
		}
	}

	if hold := st.Hold; hold == nil || hold.Digest != a.v1 || hold.Reason != "AnalysisFailed" || hold.RequestedBy != "ferry" {
		t.Errorf("hold = %+v, want on %s, AnalysisFailed, by ferry", hold, a.v1)
	}
	if e := historyOf(st, a.v2); e == nil || e.Outcome != ferryv1.OutcomeRolledBack || !strings.Contains(e.Reason, "baseline") {
		t.Errorf("history of %s = %+v, want RolledBack naming the baseline", a.v2, e)
	}
	log := w.git.Log(a.repo)
	if n := len(w.rollbackCommits(a)); n != 1 {
		t.Errorf("%d rollback commits, want 1:\n%s", n, formatLog(log))
	}
	back := requireRollbackCommit(t, log, "prod", a.v1)
	reason := back.Trailers["Ferry-Rollback-Reason"]
	if !strings.Contains(reason, a.v2) || !strings.Contains(reason, "error-ratio") || !strings.Contains(reason, "worse than baseline") {
		t.Errorf("Ferry-Rollback-Reason = %q, want the digest, the metric and the judge's 'worse than baseline'", reason)
	}
	if log[0].SHA != back.SHA || st.LastCommit != back.SHA {
		t.Errorf("main's tip %s, stage's last commit %s, want the rollback commit %s", shortSHA(log[0].SHA), shortSHA(st.LastCommit), shortSHA(back.SHA))
	}
	w.requireStableNeverRolled(t, a)
	w.waitNoCopies(t, a)
	w.requireBaselineRan(t, a)
	if reasons := w.h.eventReasons(a.name); !slices.Contains(reasons, "AnalysisFailed") || !slices.Contains(reasons, "RolledBack") {
		t.Errorf("events = %v, want AnalysisFailed and RolledBack", reasons)
	}
}

// equalToBaseline: canary and baseline serve the same noisy 1% of 5xx; the judge passes the canary, and it is
// promoted.
func (w *canaryWorld) equalToBaseline(t *testing.T, a *canaryApp) {
	done := w.waitSettled(t, a, a.v2, ferryv1.PhasePromoted, "the canary equal to its baseline to be promoted")
	w.requireNeverFailed(t, a)
	st := stageStatus(t, done, "prod")
	an := st.Analysis
	if an == nil || an.Digest != a.v2 || an.Phase != ferryv1.AnalysisPassed {
		t.Fatalf("analysis after the promotion: %s", describeAnalysis(an))
	}
	c := requireComparison(t, an, "Pass")
	t.Logf("the judge on %s: p=%s, medians %s (canary) and %s (baseline): %s", a.name, c.PValue, c.CanaryMedian, c.BaselineMedian, c.Reason)
	if e := historyOf(st, a.v2); e == nil || e.Outcome != ferryv1.OutcomePromoted {
		t.Errorf("history of %s = %+v, want Promoted", a.v2, e)
	}
	if n := len(w.rollbackCommits(a)); n != 0 {
		t.Errorf("%d rollback commits for a canary equal to its baseline:\n%s", n, formatLog(w.git.Log(a.repo)))
	}
	w.waitStableRolledOut(t, a, a.v2)
	w.waitNoCopies(t, a)
	w.requireBaselineRan(t, a)
}

// requireComparison returns the judge's comparison of error-ratio, failing the test unless it has verdict and
// at least judgeSamples readings on each side.
func requireComparison(t *testing.T, an *ferryv1.AnalysisStatus, verdict string) ferryv1.Comparison {
	t.Helper()
	if len(an.Comparisons) == 0 {
		t.Fatalf("no comparison with the baseline: %s", describeAnalysis(an))
	}
	c := an.Comparisons[0]
	if c.Metric != "error-ratio" || c.Verdict != verdict || c.CanarySamples < judgeSamples || c.BaselineSamples < judgeSamples {
		t.Errorf("comparison %+v, want error-ratio %s on at least %d samples a side", c, verdict, judgeSamples)
	}
	return c
}

func parseDecimal(t *testing.T, what, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Errorf("%s %q: %v", what, s, err)
	}
	return v
}

// requireBaselineRan fails unless the controller ran, during the canary, shop-canary on the new digest and
// shop-baseline on the previous one beside it, and nothing else.
func (w *canaryWorld) requireBaselineRan(t *testing.T, a *canaryApp) {
	t.Helper()
	want := []string{"shop-baseline " + canary.TrackBaseline + " " + a.image + "@" + a.v1,
		"shop-canary " + canary.TrackCanary + " " + a.image + "@" + a.v2}
	if got := w.seen.in(a.ns); !slices.Equal(got, want) {
		t.Errorf("copies run in %s: %v, want %v", a.ns, got, want)
	}
}

// copyLog records every copy (name, track, image) the controller ever ran, per namespace, from a watch: copies
// that come and go faster than a test's assertions get to them are seen too.
type copyLog struct {
	mu   sync.Mutex
	seen map[string]map[string]bool // namespace → "name track image"
}

func watchCopies(t *testing.T, h *harness) *copyLog {
	t.Helper()
	l := &copyLog{seen: map[string]map[string]bool{}}
	watchEvery(t, h, &appsv1.DeploymentList{}, func(obj client.Object) { l.note(obj.(*appsv1.Deployment)) }, func() {},
		client.HasLabels{canary.TrackLabel})
	return l
}

func (l *copyLog) note(d *appsv1.Deployment) {
	if len(d.Spec.Template.Spec.Containers) == 0 {
		return
	}
	key := fmt.Sprintf("%s %s %s", d.Name, d.Labels[canary.TrackLabel], d.Spec.Template.Spec.Containers[0].Image)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[d.Namespace] == nil {
		l.seen[d.Namespace] = map[string]bool{}
	}
	l.seen[d.Namespace][key] = true
}

// in lists the copies seen in a namespace, sorted.
func (l *copyLog) in(ns string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k := range l.seen[ns] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
