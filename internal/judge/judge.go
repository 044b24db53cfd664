package judge

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/aclements/go-moremath/mathx"
	"github.com/aclements/go-moremath/stats"
)

// Direction says which way a metric gets worse.
type Direction string

const (
	// LowerIsBetter is for metrics such as error rate and latency: a higher canary is worse.
	LowerIsBetter Direction = "LowerIsBetter"
	// HigherIsBetter is for metrics such as throughput and success ratio: a lower canary is worse.
	HigherIsBetter Direction = "HigherIsBetter"
)

// Verdict is the judge's decision. See the package documentation for the rule.
type Verdict string

const (
	// Pass means the canary is not worse than the baseline beyond the allowed deviation.
	Pass Verdict = "Pass"
	// Marginal means the canary looks worse beyond the allowed deviation but the evidence is not
	// significant: a person decides.
	Marginal Verdict = "Marginal"
	// Fail means the canary is worse beyond the allowed deviation and the evidence is significant.
	Fail Verdict = "Fail"
	// Inconclusive means the judge could not judge (too few samples, non-finite values or invalid
	// settings). It is never a pass or a fail.
	Inconclusive Verdict = "Inconclusive"
)

// DefaultMinSamples is the per-side sample count used when Settings.MinSamples is not positive. With 5 per
// side a complete separation gives p = 1/252 ≈ 0.004, so a clear regression can fail at α=0.05 despite
// some overlap or ties; with 3 per side no canary could ever fail.
const DefaultMinSamples = 5

// Settings configures a comparison.
type Settings struct {
	// Alpha is the significance level, e.g. 0.05 for 95% confidence. It must be in (0, 0.5]: above 0.5 a
	// one-sided test would call a canary that looks better "significantly worse".
	Alpha float64
	// Direction says which way the metric gets worse. Empty means LowerIsBetter.
	Direction Direction
	// MaxDeviation is the relative deviation of the canary's median from the baseline's, in the worse
	// direction, that the user tolerates, e.g. 0.2 for 20%. It must be finite and non-negative.
	MaxDeviation float64
	// MinSamples is the number of samples needed on each side before the judge decides anything. Fewer
	// gives Inconclusive. Zero or negative means DefaultMinSamples.
	MinSamples int
}

// Result is the outcome of Compare.
type Result struct {
	Verdict Verdict
	// PValue is the one-sided Mann-Whitney p-value for "the canary is worse". It is 1 when not computed.
	PValue float64
	// CanaryMedian and BaselineMedian are the sample medians (0 when not computed).
	CanaryMedian, BaselineMedian float64
	// RelativeDeviation is (CanaryMedian - BaselineMedian) / |BaselineMedian|, signed so that positive
	// means the canary is worse. With a baseline median of 0 it is 0 if the canary's median is 0 too,
	// +Inf if the canary is worse and -Inf if it is better.
	RelativeDeviation float64
	// CanaryCount and BaselineCount are the sample sizes given to Compare.
	CanaryCount, BaselineCount int
	// Reason is one sentence explaining the verdict.
	Reason string
}

// Validate reports every invalid setting, naming it. Compare returns Inconclusive for invalid settings,
// so callers should validate when the configuration is accepted, not when a canary is judged.
func (s Settings) Validate() error {
	var problems []string
	if !(s.Alpha > 0 && s.Alpha <= 0.5) { // written so that NaN is rejected too
		problems = append(problems, fmt.Sprintf("alpha %v must be in (0, 0.5], e.g. 0.05 for 95%% confidence", s.Alpha))
	}
	switch s.Direction {
	case "", LowerIsBetter, HigherIsBetter:
	default:
		problems = append(problems, fmt.Sprintf("direction %q must be %q or %q (empty means %q)",
			s.Direction, LowerIsBetter, HigherIsBetter, LowerIsBetter))
	}
	if !(s.MaxDeviation >= 0) || math.IsInf(s.MaxDeviation, 1) {
		problems = append(problems,
			fmt.Sprintf("maxDeviation %v must be a finite fraction >= 0, e.g. 0.2 for 20%%", s.MaxDeviation))
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New("invalid judge settings: " + strings.Join(problems, "; "))
}

// withDefaults fills the settings whose zero value means "default".
func (s Settings) withDefaults() Settings {
	if s.Direction == "" {
		s.Direction = LowerIsBetter
	}
	if s.MinSamples <= 0 {
		s.MinSamples = DefaultMinSamples
	}
	return s
}

// Compare judges the canary's samples against the baseline's with the rule in the package documentation.
// It does not modify its arguments and does not panic: anything it cannot judge is Inconclusive.
func Compare(canary, baseline []float64, s Settings) Result {
	r := Result{Verdict: Inconclusive, PValue: 1, CanaryCount: len(canary), BaselineCount: len(baseline)}
	if err := s.Validate(); err != nil {
		r.Reason = err.Error()
		return r
	}
	s = s.withDefaults()
	// A NaN or Inf usually means a broken query (0/0 error rate with no traffic); ranking it would hide that.
	// NaN must also never reach go-moremath: its tie-ranking loop never advances past a NaN and grows memory
	// until the process dies.
	if msg := nonFinite("canary", canary); msg != "" {
		r.Reason = msg + ": the metric query must return finite numbers"
		return r
	}
	if msg := nonFinite("baseline", baseline); msg != "" {
		r.Reason = msg + ": the metric query must return finite numbers"
		return r
	}
	if len(canary) > 0 && len(baseline) > 0 {
		// Reported even when Inconclusive below, to show where the canary is heading.
		r.CanaryMedian, r.BaselineMedian = median(canary), median(baseline)
		r.RelativeDeviation = relativeDeviation(r.CanaryMedian, r.BaselineMedian, s.Direction)
	}
	if len(canary) < s.MinSamples || len(baseline) < s.MinSamples {
		r.Reason = fmt.Sprintf("not enough samples to judge: canary has %d, baseline has %d, need at least %d per side",
			len(canary), len(baseline), s.MinSamples)
		return r
	}

	p, err := worsePValue(canary, baseline, s.Direction)
	switch {
	case errors.Is(err, stats.ErrSamplesEqual):
		// Every value on both sides is the same: nothing to rank, so no evidence of a difference.
		r.PValue, r.Verdict = 1, Pass
		r.Reason = fmt.Sprintf("all %d canary and %d baseline values are %s: no difference",
			len(canary), len(baseline), num(canary[0]))
		return r
	case err != nil:
		r.Reason = "the Mann-Whitney test failed: " + err.Error()
		return r
	}
	r.PValue = p
	r.Verdict = decide(p, r.RelativeDeviation, s)
	r.Reason = explain(r, s)
	return r
}

// decide applies rules 2-4 of the package documentation.
func decide(p, deviation float64, s Settings) Verdict {
	switch {
	case deviation > s.MaxDeviation && p < s.Alpha:
		return Fail
	case deviation > s.MaxDeviation:
		return Marginal
	default:
		return Pass
	}
}

// worsePValue returns the one-sided p-value for the alternative "the canary tends to be worse".
//
// Both directions ask for LocationLess, with the side the alternative expects to be lower first.
// go-moremath's exact LocationGreater computes P(U >= u) as 1 - CDF(u-1); with ties U moves in steps of ½,
// so that also counts P(U = u-½) and overstates p. LocationLess is CDF(u), which is exact.
func worsePValue(canary, baseline []float64, d Direction) (float64, error) {
	lower, higher := baseline, canary // LowerIsBetter: worse means the canary tends to be higher
	if d == HigherIsBetter {
		lower, higher = canary, baseline
	}
	res, err := stats.MannWhitneyUTest(lower, higher, stats.LocationLess)
	if err != nil {
		return 1, err
	}
	// The exact distribution with ties is a sum of floating-point terms and can exceed 1 by ~1e-14.
	return min(max(res.P, 0), 1), nil
}

// nonFinite describes the first NaN or ±Inf in xs, or returns "" if there is none.
func nonFinite(side string, xs []float64) string {
	for i, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Sprintf("%s sample %d of %d is %v", side, i+1, len(xs), x)
		}
	}
	return ""
}

// median returns the median of a non-empty sample without reordering it.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return midpoint(s[mid-1], s[mid])
}

// midpoint returns the value halfway between a and b. (a+b)/2 is exact for subnormals and symmetric under
// negation (so mirrored samples give mirrored medians); only when the sum overflows is halving first needed.
func midpoint(a, b float64) float64 {
	if sum := a + b; !math.IsInf(sum, 0) {
		return sum / 2
	}
	return a/2 + b/2
}

// relativeDeviation is (canary - baseline) / |baseline|, signed so that positive means worse. See the
// package documentation for why a zero baseline gives 0 or ±Inf.
func relativeDeviation(canary, baseline float64, d Direction) float64 {
	worse := canary - baseline
	if d == HigherIsBetter {
		worse = -worse
	}
	if baseline == 0 {
		switch {
		case worse > 0:
			return math.Inf(1)
		case worse < 0:
			return math.Inf(-1)
		}
		return 0
	}
	return worse / math.Abs(baseline)
}

// minPValue is the smallest one-sided p-value samples of these sizes can produce: complete separation
// without ties, one arrangement out of C(n1+n2, n1).
func minPValue(n1, n2 int) float64 {
	return 1 / mathx.Choose(n1+n2, n1)
}

// explain writes the Reason for a verdict reached by decide.
func explain(r Result, s Settings) string {
	n := fmt.Sprintf("n=%d/%d", r.CanaryCount, r.BaselineCount)
	what := fmt.Sprintf("canary median %s is %s baseline %s",
		num(r.CanaryMedian), deviation(r.RelativeDeviation), num(r.BaselineMedian))
	allowed := fmt.Sprintf("the allowed %s", percent(s.MaxDeviation))
	switch r.Verdict {
	case Fail:
		return fmt.Sprintf("%s, beyond %s (p=%.3g < α=%g, %s)", what, allowed, r.PValue, s.Alpha, n)
	case Marginal:
		if minPValue(r.CanaryCount, r.BaselineCount) >= s.Alpha {
			return fmt.Sprintf("%s, beyond %s, but %d/%d samples can never reach p < α=%g (p=%.3g): "+
				"collect more samples or decide by hand", what, allowed, r.CanaryCount, r.BaselineCount, s.Alpha, r.PValue)
		}
		return fmt.Sprintf("%s, beyond %s, but the evidence is too weak to fail it (p=%.3g ≥ α=%g, %s): "+
			"a person should decide or collect more samples", what, allowed, r.PValue, s.Alpha, n)
	}
	switch {
	case r.RelativeDeviation <= 0:
		return fmt.Sprintf("%s (p=%.3g, %s)", what, r.PValue, n)
	case r.PValue < s.Alpha:
		return fmt.Sprintf("%s, significantly (p=%.3g < α=%g, %s) but within %s", what, r.PValue, s.Alpha, n, allowed)
	}
	return fmt.Sprintf("%s, within %s (p=%.3g, %s)", what, allowed, r.PValue, n)
}

// deviation phrases a relative deviation (positive = worse) for a Reason.
func deviation(dev float64) string {
	switch {
	case math.IsInf(dev, 1):
		return "worse than"
	case math.IsInf(dev, -1):
		return "better than"
	case dev > 0:
		return percent(dev) + " worse than"
	case dev < 0:
		return percent(-dev) + " better than"
	}
	return "equal to"
}

// percent formats a fraction as a percentage, with a decimal only where it matters.
func percent(f float64) string {
	if p := 100 * f; p != 0 && p < 10 {
		return fmt.Sprintf("%.1f%%", p)
	}
	return fmt.Sprintf("%.0f%%", 100*f)
}

// num formats a metric value compactly.
func num(x float64) string {
	return fmt.Sprintf("%.4g", x)
}
