package controllers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/analysis"
	"github.com/ferrycd/ferry/internal/judge"
	"github.com/ferrycd/ferry/internal/text"
)

// Reasons of analyses, in events and conditions.
const (
	ReasonAnalysisFailed       = "AnalysisFailed"
	ReasonAnalysisHeld         = "AnalysisHeld"
	ReasonAnalysisInconclusive = "AnalysisInconclusive"
	ReasonAnalysisApproved     = "AnalysisApproved"
	ReasonAnalysisAborted      = "AnalysisAborted"
)

// Tracks a query is measured on.
const (
	trackCanary   = "canary"
	trackBaseline = "baseline"
	trackStable   = "stable"
)

// Bounds of what an analysis keeps in status: a status must stay well under the API server's object size limit.
const (
	maxMeasurements   = 120
	maxStoredQuery    = 1024
	maxStoredMessage  = 256
	minJudgeSamples   = 5
	defaultInterval   = time.Minute
	defaultBudget     = 5
	defaultOutage     = 10 * time.Minute
	baselineTallyMark = "/" + trackBaseline
)

// stepVerdict is what an analysis run says of the step (or soak) under way.
type stepVerdict int

const (
	stepContinue stepVerdict = iota
	stepPassed
)

// analyse measures the run under way when a measurement is due and judges it: Failed and Held end up in the
// run's phase; stepPassed when the step's pause is over and the evidence is in. A stage without an analysis
// passes each step when its pause is over.
func (r *PromotionReconciler) analyse(ctx context.Context, s *scope, i int) (stepVerdict, bool, error) {
	st := s.stage(i)
	a := st.Analysis
	spec := s.p.Spec.Stages[i].Analysis
	end := a.StepStartedAt.Add(runLength(s, i))
	elapsedDone := !s.now.Time.Before(end)
	if spec == nil {
		if elapsedDone {
			return stepPassed, true, nil
		}
		st.Message = fmt.Sprintf("%s; %s to go.", describeRun(s, i), end.Sub(s.now.Time).Round(time.Second))
		s.waitAtMost(end.Sub(s.now.Time))
		return stepContinue, false, nil
	}
	moved := false
	if due := measurementDue(a, interval(spec)); !s.now.Time.Before(due) {
		if err := r.measureRound(ctx, s, i); err != nil {
			return stepContinue, false, err
		}
		moved = true
	}
	decision, reason := decide(s, i, elapsedDone)
	switch decision {
	case analysis.Failed:
		a.Phase, a.Message = ferryv1.AnalysisFailed, reason
		r.event(s.p, corev1.EventTypeWarning, ReasonAnalysisFailed, "stage %s: analysis of %s failed: %s", st.Name, a.Digest, reason)
		return stepContinue, true, nil
	case analysis.Held:
		a.Phase, a.Message, a.HeldSince = ferryv1.AnalysisHeld, reason, &s.now
		r.event(s.p, corev1.EventTypeWarning, ReasonAnalysisHeld, "stage %s: analysis of %s waits for a person: %s", st.Name, a.Digest, reason)
		return stepContinue, true, nil
	case analysis.Passed:
		return stepPassed, true, nil
	}
	a.Message = reason
	// The stage message stays the same from one reading to the next — the counts are in the analysis status — so
	// that the Ready condition, which quotes it, does not change (and emit an event) at every reading.
	st.Message = fmt.Sprintf("%s: measuring every %s (`ferry analysis %s --stage %s`).", describeRun(s, i),
		interval(spec), s.p.Name, st.Name)
	if a.OutageSince != nil {
		s.waitFor(ReasonAnalysisInconclusive, "stage %s: no usable data since %s: %s", st.Name, a.OutageSince.Format(time.RFC3339), lastMissing(a))
	}
	next := measurementDue(a, interval(spec))
	if !elapsedDone && end.Before(next) {
		next = end
	}
	s.waitAtMost(next.Sub(s.now.Time))
	return stepContinue, moved, nil
}

// describeRun names the run under way for status messages.
func describeRun(s *scope, i int) string {
	a := s.stage(i).Analysis
	if a.Run == ferryv1.RunSoak {
		return fmt.Sprintf("Soaking %s with analysis", a.Digest)
	}
	return fmt.Sprintf("Canary step %d of %d at %d%%", *a.Step+1, len(s.p.Spec.Stages[i].Canary.Steps), a.Weight)
}

// runLength is how long the run under way lasts at least: the canary step's pause, or the soak.
func runLength(s *scope, i int) time.Duration {
	stage := &s.p.Spec.Stages[i]
	a := s.stage(i).Analysis
	var d *time.Duration
	if a.Run == ferryv1.RunCanary {
		if p := stage.Canary.Steps[*a.Step].Pause; p != nil {
			d = &p.Duration
		}
	} else if stage.Gates.Soak != nil {
		d = &stage.Gates.Soak.Duration
	}
	if d == nil {
		return 0
	}
	return *d
}

func interval(spec *ferryv1.AnalysisSpec) time.Duration {
	if spec.Interval != nil && spec.Interval.Duration > 0 {
		return spec.Interval.Duration
	}
	return defaultInterval
}

func missingBudget(spec *ferryv1.AnalysisSpec) int32 {
	if spec == nil || spec.InconclusiveLimit == nil {
		return defaultBudget
	}
	return *spec.InconclusiveLimit
}

func outageDeadline(spec *ferryv1.AnalysisSpec) time.Duration {
	if spec.OutageDeadline != nil {
		return spec.OutageDeadline.Duration
	}
	return defaultOutage
}

// windowStart is when the evidence of the run under way begins: the step's start, or its last approval.
func windowStart(a *ferryv1.AnalysisStatus) time.Time {
	start := a.StepStartedAt.Time
	if a.ApprovedAt != nil && a.ApprovedAt.After(start) {
		start = a.ApprovedAt.Time
	}
	return start
}

// measurementDue is when the next measurement is due: as soon as the window begins (a canary bad from its first
// sample is caught one interval sooner; a reading taken before the canary has data is only inconclusive), then one
// interval after the last.
func measurementDue(a *ferryv1.AnalysisStatus, every time.Duration) time.Time {
	start := windowStart(a)
	if a.LastMeasuredAt == nil || a.LastMeasuredAt.Time.Before(start) {
		return start
	}
	return a.LastMeasuredAt.Add(every)
}

// tracks are what a run measures: the canary (and the baseline beside it), or the whole stage during the soak.
func tracks(s *scope, i int) []string {
	if s.stage(i).Analysis.Run == ferryv1.RunSoak {
		return []string{trackStable}
	}
	if s.p.Spec.Stages[i].Analysis.Baseline != nil {
		return []string{trackCanary, trackBaseline}
	}
	return []string{trackCanary}
}

// trackDigest is the digest a track runs: the baseline runs the stage's current digest, the others the one in flight.
func trackDigest(st *ferryv1.StageStatus, track string) string {
	if track == trackBaseline {
		return st.Digest
	}
	return st.InFlightDigest
}

// measureRound measures every metric on every track once, and keeps the readings in status.
func (r *PromotionReconciler) measureRound(ctx context.Context, s *scope, i int) error {
	st := s.stage(i)
	a := st.Analysis
	spec := s.p.Spec.Stages[i].Analysis
	q, err := r.querier(s, i)
	if err != nil {
		return err
	}
	allMissing := true
	for _, track := range tracks(s, i) {
		vars := analysis.QueryVars{Namespace: s.p.Spec.Stages[i].Sync.Namespace, Stage: st.Name, Promotion: s.p.Name,
			Digest: trackDigest(st, track), Track: track, Interval: analysis.PromDuration(interval(spec))}
		gate, err := r.measureTraffic(ctx, s, i, q, vars)
		if err != nil {
			return err
		}
		for j := range spec.Metrics {
			m, err := r.measureMetric(ctx, s, i, j, q, vars, gate)
			if err != nil {
				return err
			}
			if track != trackBaseline && m.Verdict != analysis.Inconclusive {
				allMissing = false
			}
		}
	}
	a.LastMeasuredAt = &s.now
	r.noteOutage(s, i, allMissing)
	return nil
}

// measureTraffic reads the traffic behind a track's metrics, when the analysis sets a minimum. Too little traffic
// makes the track's measurements of this round inconclusive: it returns that reading, or nil.
func (r *PromotionReconciler) measureTraffic(ctx context.Context, s *scope, i int, q analysis.Querier, vars analysis.QueryVars) (*analysis.Measurement, error) {
	spec := s.p.Spec.Stages[i].Analysis
	if spec.Traffic == nil {
		return nil, nil
	}
	field := fmt.Sprintf("spec.stages[%d].analysis.traffic", i)
	query, err := analysis.RenderQuery(spec.Traffic.Query, vars)
	if err != nil {
		return nil, stalling(ReasonInvalidSpec, field+".query", "%v", err)
	}
	minimum, err := strconv.ParseFloat(spec.Traffic.MinRequests, 64)
	if err != nil {
		return nil, stalling(ReasonInvalidSpec, field+".minRequests", "%v", err)
	}
	m, err := analysis.MeasureTraffic(ctx, q, "traffic", query, minimum, interval(spec), s.now.Time)
	if err != nil {
		return nil, measureError(field+".query", err)
	}
	r.keep(s, i, vars.Track, m)
	if m.Verdict == analysis.Pass {
		return nil, nil
	}
	return &m, nil
}

// measureMetric reads metric j on a track, judged against its thresholds (the baseline is only a reference and
// is never judged by them), and counts it in the run's tallies.
func (r *PromotionReconciler) measureMetric(ctx context.Context, s *scope, i, j int, q analysis.Querier, vars analysis.QueryVars, gate *analysis.Measurement) (analysis.Measurement, error) {
	metric := &s.p.Spec.Stages[i].Analysis.Metrics[j]
	field := fmt.Sprintf("spec.stages[%d].analysis.metrics[%d]", i, j)
	query, err := analysis.RenderQuery(metric.Query, vars)
	if err != nil {
		return analysis.Measurement{}, stalling(ReasonInvalidSpec, field+".query", "%v", err)
	}
	var m analysis.Measurement
	if gate != nil {
		m = analysis.Measurement{Metric: metric.Name, Query: query, Time: s.now.Time, Verdict: analysis.Inconclusive,
			Reason: gate.Reason, Message: "not measured: " + gate.Message}
	} else {
		check := analysis.Check{Metric: metric.Name, Query: query, MaxAge: interval(s.p.Spec.Stages[i].Analysis)}
		if vars.Track != trackBaseline {
			if check.Threshold, err = threshold(metric, field); err != nil {
				return m, err
			}
		}
		if m, err = analysis.Measure(ctx, q, check, s.now.Time); err != nil {
			return m, measureError(field+".query", err)
		}
	}
	r.keep(s, i, vars.Track, m)
	r.count(s, i, metric.Name, vars.Track, m.Verdict)
	return m, nil
}

// measureError turns a query Prometheus refuses into a stall naming the field; anything else is retried.
func measureError(field string, err error) error {
	if errors.Is(err, analysis.ErrBadQuery) {
		return stalling(ReasonInvalidSpec, field, "%v", err)
	}
	return err
}

func threshold(metric *ferryv1.MetricSpec, field string) (analysis.Threshold, error) {
	var t analysis.Threshold
	for _, b := range []struct {
		text *string
		into **float64
		name string
	}{{metric.Min, &t.Min, ".min"}, {metric.Max, &t.Max, ".max"}} {
		if b.text == nil {
			continue
		}
		v, err := strconv.ParseFloat(*b.text, 64)
		if err != nil {
			return t, stalling(ReasonInvalidSpec, field+b.name, "%v", err)
		}
		*b.into = &v
	}
	return t, nil
}

// keep records a measurement in status (bounded: the oldest go first), its query once per metric and track, and
// in the metrics on-call graphs.
func (r *PromotionReconciler) keep(s *scope, i int, track string, m analysis.Measurement) {
	a := s.stage(i).Analysis
	kept := ferryv1.Measurement{Metric: m.Metric, Track: track, Step: a.Step, Time: s.now, Verdict: string(m.Verdict),
		Reason: m.Reason}
	if m.Verdict != analysis.Pass { // a passing reading says all in its value; status stays small at scale
		kept.Message = text.Cut(m.Message, maxStoredMessage)
	}
	if m.Value != nil {
		kept.Value = strconv.FormatFloat(*m.Value, 'g', -1, 64)
	}
	a.Measurements = append(a.Measurements, kept)
	if n := len(a.Measurements) - maxMeasurements; n > 0 {
		a.Measurements = append([]ferryv1.Measurement(nil), a.Measurements[n:]...)
	}
	noteQuery(a, m.Metric, track, m.Query)
	r.metrics().ObserveMeasurement(s.metricsStage(i), m.Metric, track, string(m.Verdict), m.Value)
}

func noteQuery(a *ferryv1.AnalysisStatus, metric, track, query string) {
	query = text.Cut(query, maxStoredQuery)
	for k := range a.Queries {
		if a.Queries[k].Metric == metric && a.Queries[k].Track == track {
			a.Queries[k].Query = query
			return
		}
	}
	a.Queries = append(a.Queries, ferryv1.AnalysisQuery{Metric: metric, Track: track, Query: query})
}

// count adds a verdict to the run's tallies. Baseline readings are tallied apart: they never fail, but missing
// baseline data counts against the budget like any other.
func (r *PromotionReconciler) count(s *scope, i int, metric, track string, v analysis.Verdict) {
	a := s.stage(i).Analysis
	if v == analysis.Inconclusive && warmingUp(s, i) {
		return
	}
	key := metric
	if track == trackBaseline {
		key += baselineTallyMark
	}
	k := -1
	for n := range a.Tallies {
		if a.Tallies[n].Metric == key {
			k = n
		}
	}
	if k < 0 {
		a.Tallies = append(a.Tallies, ferryv1.MetricTally{Metric: key})
		k = len(a.Tallies) - 1
	}
	a.Taken++
	switch v {
	case analysis.Pass:
		a.Tallies[k].Passed++
	case analysis.Fail:
		a.Tallies[k].Failed++
	default:
		a.Tallies[k].Inconclusive++
		a.Missing++
	}
}

// warmingUp reports whether the run under way is in its first interval: a step's first reading is taken as soon
// as its pods are ready, before a fresh canary can have data, so a reading without data then is kept but counts
// neither against the missing-data budget nor as an outage. A reading with data counts as usual.
func warmingUp(s *scope, i int) bool {
	a := s.stage(i).Analysis
	return s.now.Sub(windowStart(a)) < interval(s.p.Spec.Stages[i].Analysis)
}

// noteOutage follows stretches of missing data: a condition and an event say why the stage waits, and the
// stretch's start is kept so the outage deadline can hand the stage to a person.
func (r *PromotionReconciler) noteOutage(s *scope, i int, allMissing bool) {
	st := s.stage(i)
	a := st.Analysis
	if !allMissing || warmingUp(s, i) {
		a.OutageSince = nil
		return
	}
	if a.OutageSince == nil {
		a.OutageSince = &s.now
		r.event(s.p, corev1.EventTypeWarning, ReasonAnalysisInconclusive, "stage %s: no usable data, holding (no promotion, no rollback): %s",
			st.Name, lastMissing(a))
	}
}

// lastMissing describes the newest inconclusive measurement.
func lastMissing(a *ferryv1.AnalysisStatus) string {
	for k := len(a.Measurements) - 1; k >= 0; k-- {
		if m := a.Measurements[k]; m.Verdict == string(analysis.Inconclusive) {
			return fmt.Sprintf("%s/%s %s: %s", m.Metric, m.Track, m.Reason, m.Message)
		}
	}
	return "no measurement yet"
}

// decide judges the run from its tallies, the baseline comparisons and the outage clock. Measured evidence comes
// first: a failure outranks missing data.
func decide(s *scope, i int, elapsedDone bool) (analysis.Decision, string) {
	st := s.stage(i)
	a := st.Analysis
	spec := s.p.Spec.Stages[i].Analysis
	tallies := map[string]analysis.Tally{}
	for _, m := range spec.Metrics { // every metric must earn its samples, measured or not yet
		tallies[m.Name] = analysis.Tally{}
	}
	for _, t := range a.Tallies {
		tallies[t.Metric] = analysis.Tally{Passed: int(t.Passed), Failed: int(t.Failed), Inconclusive: int(t.Inconclusive)}
	}
	for _, m := range spec.Metrics {
		if m.Critical && tallies[m.Name].Failed > 0 {
			return analysis.Failed, fmt.Sprintf("critical metric %s failed: %s", m.Name, lastFailure(a, m.Name))
		}
	}
	decision, reason := analysis.Decide(tallies, analysis.Policy{FailureLimit: int(spec.FailureLimit),
		MissingBudget: int(a.Budget), MinSamples: int(spec.MinSamples)}, elapsedDone)
	if decision == analysis.Failed {
		return decision, reason + ": " + lastFailures(a, spec)
	}
	if a.Run == ferryv1.RunCanary && spec.Baseline != nil {
		if d, why, decided := compareWithBaseline(s, i, decision == analysis.Passed); decided {
			return d, why
		}
		if decision == analysis.Passed && !comparisonsPass(a, spec) {
			decision, reason = analysis.Continue, "waiting for enough samples to compare with the baseline"
		}
	}
	if decision == analysis.Held {
		return decision, reason
	}
	if a.OutageSince != nil {
		if gone := s.now.Sub(a.OutageSince.Time); gone > outageDeadline(spec) {
			return analysis.Held, fmt.Sprintf("no usable data for %s (outage deadline %s): %s", gone.Round(time.Second), outageDeadline(spec), lastMissing(a))
		}
	}
	return decision, reason
}

// compareWithBaseline runs the judge on the metrics compared with the baseline: every measurement for critical
// metrics, at the end of the step for the others. A Fail fails the run; a Marginal the run has not been approved
// past waits for a person.
func compareWithBaseline(s *scope, i int, stepEnd bool) (analysis.Decision, string, bool) {
	a := s.stage(i).Analysis
	spec := s.p.Spec.Stages[i].Analysis
	for j := range spec.Metrics {
		m := &spec.Metrics[j]
		if m.MaxBaselineDeviationPercent == nil || !(stepEnd || m.Critical) {
			continue
		}
		res := judgeMetric(a, spec, m)
		setComparison(a, m.Name, res)
		switch {
		case res.Verdict == judge.Fail:
			return analysis.Failed, fmt.Sprintf("%s: canary worse than baseline: %s", m.Name, res.Reason), true
		case res.Verdict == judge.Marginal && a.ApprovedAt == nil:
			return analysis.Held, fmt.Sprintf("%s: marginal against the baseline: %s", m.Name, res.Reason), true
		}
	}
	return "", "", false
}

// comparisonsPass reports whether every metric compared with the baseline has a verdict that lets the step pass.
func comparisonsPass(a *ferryv1.AnalysisStatus, spec *ferryv1.AnalysisSpec) bool {
	for _, m := range spec.Metrics {
		if m.MaxBaselineDeviationPercent == nil {
			continue
		}
		ok := false
		for _, c := range a.Comparisons {
			if c.Metric == m.Name {
				ok = c.Verdict == string(judge.Pass) || (c.Verdict == string(judge.Marginal) && a.ApprovedAt != nil)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// judgeMetric compares a metric's canary readings with the baseline's, over the whole canary (since the last
// approval, if any): the baseline is as fresh as the canary at every step.
func judgeMetric(a *ferryv1.AnalysisStatus, spec *ferryv1.AnalysisSpec, m *ferryv1.MetricSpec) judge.Result {
	var since time.Time
	if a.ApprovedAt != nil {
		since = a.ApprovedAt.Time
	}
	samples := map[string][]float64{}
	for _, x := range a.Measurements {
		if x.Metric != m.Name || x.Step == nil || x.Value == "" || x.Verdict == string(analysis.Inconclusive) || x.Time.Time.Before(since) {
			continue
		}
		if v, err := strconv.ParseFloat(x.Value, 64); err == nil {
			samples[x.Track] = append(samples[x.Track], v)
		}
	}
	confidence := int32(95)
	if spec.Baseline.ConfidencePercent > 0 {
		confidence = spec.Baseline.ConfidencePercent
	}
	direction := judge.LowerIsBetter
	if m.Direction == ferryv1.HigherIsBetter {
		direction = judge.HigherIsBetter
	}
	return judge.Compare(samples[trackCanary], samples[trackBaseline], judge.Settings{
		Alpha: float64(100-confidence) / 100, Direction: direction,
		MaxDeviation: float64(*m.MaxBaselineDeviationPercent) / 100, MinSamples: max(int(spec.MinSamples), minJudgeSamples)})
}

func setComparison(a *ferryv1.AnalysisStatus, metric string, res judge.Result) {
	c := ferryv1.Comparison{Metric: metric, Verdict: string(res.Verdict), PValue: strconv.FormatFloat(res.PValue, 'g', 4, 64),
		CanaryMedian: strconv.FormatFloat(res.CanaryMedian, 'g', 6, 64), BaselineMedian: strconv.FormatFloat(res.BaselineMedian, 'g', 6, 64),
		CanarySamples: int32(res.CanaryCount), BaselineSamples: int32(res.BaselineCount), Reason: text.Cut(res.Reason, maxStoredMessage)}
	for k := range a.Comparisons {
		if a.Comparisons[k].Metric == metric {
			a.Comparisons[k] = c
			return
		}
	}
	a.Comparisons = append(a.Comparisons, c)
}

// lastFailure quotes the newest failed reading of a metric.
func lastFailure(a *ferryv1.AnalysisStatus, metric string) string {
	for k := len(a.Measurements) - 1; k >= 0; k-- {
		if m := a.Measurements[k]; m.Metric == metric && m.Verdict == string(analysis.Fail) {
			return fmt.Sprintf("%s on %s at %s", m.Message, m.Track, m.Time.Format(time.RFC3339))
		}
	}
	return "no failed reading kept"
}

func lastFailures(a *ferryv1.AnalysisStatus, spec *ferryv1.AnalysisSpec) string {
	for _, t := range a.Tallies {
		if t.Failed > spec.FailureLimit {
			return t.Metric + " " + lastFailure(a, t.Metric)
		}
	}
	return ""
}

// keptAfterPromotion is how many readings a passed analysis keeps once its digest is promoted: enough to show
// how it went, while a controller with thousands of stages does not carry every reading of every old run. A failed
// run keeps all of its readings for on-call.
const keptAfterPromotion = 24

func trimPassedRun(a *ferryv1.AnalysisStatus) {
	if a == nil || a.Phase != ferryv1.AnalysisPassed {
		return
	}
	if n := len(a.Measurements) - keptAfterPromotion; n > 0 {
		a.Measurements = append([]ferryv1.Measurement(nil), a.Measurements[n:]...)
	}
	a.Tallies = nil
}

// analysisHeld keeps a held stage where it is — no promotion, no rollback — until a person approves or aborts,
// or, with analysis.heldTimeout, until the wait is over and the run is aborted.
func (r *PromotionReconciler) analysisHeld(s *scope, i int) bool {
	st := s.stage(i)
	a := st.Analysis
	if spec := s.p.Spec.Stages[i].Analysis; spec != nil && spec.HeldTimeout != nil && a.HeldSince != nil {
		left := spec.HeldTimeout.Duration - s.now.Sub(a.HeldSince.Time)
		if left <= 0 {
			a.Phase, a.AbortedBy = ferryv1.AnalysisFailed, "ferry (analysis.heldTimeout)"
			a.Message = fmt.Sprintf("held for %s with no decision: %s", spec.HeldTimeout.Duration, a.Message)
			r.event(s.p, corev1.EventTypeWarning, ReasonAnalysisAborted, "stage %s: %s", st.Name, a.Message)
			return true
		}
		s.waitAtMost(left)
	}
	st.Message = fmt.Sprintf("Held for a person: %s. `ferry approve %s --stage %s` goes on, `ferry abort %s --stage %s` rolls back.",
		st.Analysis.Message, s.p.Name, st.Name, s.p.Name, st.Name)
	s.waitFor(ReasonAnalysisHeld, "stage %s: %s", st.Name, st.Analysis.Message)
	s.waitAtMost(r.approvalPoll())
	return false
}

// analysisFailed ends a failed canary or soak: the copies go, and the previous digest is committed back to Git,
// so Git and cluster agree; the failed digest is held off this stage until a newer one arrives. With
// rollback.onAnalysisFailure false the stage waits for a person instead, unless a person aborted it.
func (r *PromotionReconciler) analysisFailed(ctx context.Context, s *scope, i int) (bool, error) {
	st := s.stage(i)
	a := st.Analysis
	if err := r.removeCopies(ctx, s, i); err != nil {
		return false, err
	}
	policy := s.p.Spec.Stages[i].Rollback.OnAnalysisFailure
	if a.AbortedBy == "" && policy != nil && !*policy {
		a.Phase, a.HeldSince = ferryv1.AnalysisHeld, &s.now
		a.Message = "failed (" + a.Message + "); rollback.onAnalysisFailure is false"
		return true, nil
	}
	reason := "analysis failed: " + a.Message
	by := "ferry"
	if a.AbortedBy != "" {
		by = a.AbortedBy
	}
	previous := previousDigest(st)
	if previous == "" {
		r.failDigest(s, i, reason)
		return true, nil
	}
	r.finishDigest(s, i, ferryv1.OutcomeRolledBack, reason)
	r.startRollback(s, i, previous, ReasonAnalysisFailed, by)
	return true, nil
}

// previousDigest is what a failed in-flight digest rolls back to: the digest the stage ran before it.
func previousDigest(st *ferryv1.StageStatus) string {
	if st.Digest != "" && st.Digest != st.InFlightDigest {
		return st.Digest
	}
	for _, h := range st.History {
		if h.Outcome == ferryv1.OutcomePromoted && h.Digest != st.InFlightDigest {
			return h.Digest
		}
	}
	return ""
}

// soakAnalysed soaks a healthy digest while its analysis measures the whole stage: the watch window after the
// digest took every replica. It passes when the soak is over and the evidence is in.
func (r *PromotionReconciler) soakAnalysed(ctx context.Context, s *scope, i int) (bool, error) {
	st := s.stage(i)
	a := st.Analysis
	if a == nil || a.Digest != st.InFlightDigest || a.Run != ferryv1.RunSoak {
		r.startSoakRun(s, i)
		return true, nil
	}
	if done, moved, err := r.runEnded(ctx, s, i, func() (bool, error) { return r.promoted(s, i), nil }); done {
		return moved, err
	}
	verdict, moved, err := r.analyse(ctx, s, i)
	if err != nil || verdict != stepPassed {
		return moved, err
	}
	a.Phase, a.Message = ferryv1.AnalysisPassed, "soak analysis passed"
	return true, nil
}

// runEnded carries out a run that has a verdict: a failed one rolls back, a held one waits for a person, a
// passed one goes on with passed. It reports whether the run had a verdict.
func (r *PromotionReconciler) runEnded(ctx context.Context, s *scope, i int, passed func() (bool, error)) (bool, bool, error) {
	switch s.stage(i).Analysis.Phase {
	case ferryv1.AnalysisFailed:
		moved, err := r.analysisFailed(ctx, s, i)
		return true, moved, err
	case ferryv1.AnalysisHeld:
		return true, r.analysisHeld(s, i), nil
	case ferryv1.AnalysisPassed:
		moved, err := passed()
		return true, moved, err
	}
	return false, false, nil
}

// startSoakRun begins the soak's analysis; the canary's readings, if any, are kept for the record.
func (r *PromotionReconciler) startSoakRun(s *scope, i int) {
	st := s.stage(i)
	run := &ferryv1.AnalysisStatus{Digest: st.InFlightDigest, Phase: ferryv1.AnalysisRunning, Run: ferryv1.RunSoak,
		Budget: missingBudget(s.p.Spec.Stages[i].Analysis), StepRequestedAt: st.HealthySince, StepStartedAt: st.HealthySince}
	if old := st.Analysis; old != nil && old.Digest == st.InFlightDigest {
		run.Measurements, run.Queries, run.Comparisons = old.Measurements, old.Queries, old.Comparisons
		run.Approvals, run.ApprovedBy = old.Approvals, old.ApprovedBy
	}
	st.Analysis = run
}

// querier opens the stage's Prometheus with its credentials; clients are shared by Promotions with the same
// server and credentials.
func (r *PromotionReconciler) querier(s *scope, i int) (analysis.Querier, error) {
	spec := s.p.Spec.Stages[i].Analysis
	cfg := analysis.Config{Address: spec.Prometheus.Address, Timeout: queryTimeout(interval(spec))}
	if spec.Prometheus.SecretRef != nil {
		data := s.refs[fmt.Sprintf("spec.stages[%d].analysis.prometheus.secretRef", i)]
		cfg.BearerToken, cfg.Username, cfg.Password = string(data[keyToken]), string(data["username"]), string(data["password"])
	}
	open := r.Engines.Prometheus
	if open == nil {
		open = func(c analysis.Config) (analysis.Querier, error) { return analysis.NewPrometheus(c) }
	}
	key := configKey(cfg.Address, cfg.BearerToken, cfg.Username, cfg.Password, cfg.Timeout.String())
	q, err := r.shared().queriers.Get(key, func() (analysis.Querier, error) {
		q, err := open(cfg)
		if err != nil {
			return nil, err
		}
		return &shieldedQuerier{q: q, now: r.now, hold: unavailableHold(cfg.Timeout)}, nil
	})
	if err != nil {
		return nil, stalling(ReasonInvalidSpec, fmt.Sprintf("spec.stages[%d].analysis.prometheus", i), "%v", err)
	}
	return q, nil
}
