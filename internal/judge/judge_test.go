package judge

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// seq returns n values start, start+step, ...
func seq(start, step float64, n int) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = start + float64(i)*step
	}
	return xs
}

func repeat(x float64, n int) []float64 {
	return slices.Repeat([]float64{x}, n)
}

var defaults = Settings{Alpha: 0.05, MaxDeviation: 0.2}

func TestCompareVerdicts(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name             string
		canary, baseline []float64
		settings         Settings
		verdict          Verdict
		significant      bool    // PValue < Alpha
		deviation        float64 // expected RelativeDeviation, checked to 1e-12
		reason           []string
	}{{
		name:     "same distribution passes",
		canary:   []float64{12, 10, 15, 11, 14, 13},
		baseline: []float64{13, 11, 10, 15, 12, 14},
		settings: defaults, verdict: Pass, deviation: 0,
		reason: []string{"canary median 12.5 is equal to baseline 12.5 (p=", "n=6/6"},
	}, {
		name:     "clearly worse error rate fails",
		canary:   []float64{0.041, 0.039, 0.044, 0.040, 0.043, 0.042, 0.038, 0.045, 0.041, 0.040, 0.042, 0.041},
		baseline: []float64{0.020, 0.019, 0.021, 0.022, 0.018, 0.020, 0.021, 0.019, 0.020, 0.023, 0.020, 0.017},
		settings: defaults, verdict: Fail, significant: true, deviation: (0.041 - 0.020) / 0.020,
		reason: []string{"canary median 0.041 is 105% worse than baseline 0.02", "beyond the allowed 20%", "< α=0.05", "n=12/12"},
	}, {
		name:     "significantly worse but within tolerance passes",
		canary:   seq(112, 1, 12), // median 117.5
		baseline: seq(100, 1, 12), // median 105.5
		settings: defaults, verdict: Pass, significant: true, deviation: 12.0 / 105.5,
		reason: []string{"11% worse", "significantly", "but within the allowed 20%"},
	}, {
		name:     "worse beyond tolerance without evidence is marginal",
		canary:   []float64{1, 30, 2, 28, 25, 3, 26, 4}, // median 14.5
		baseline: []float64{1, 29, 2, 27, 3, 24, 4, 22}, // median 13
		settings: Settings{Alpha: 0.05, MaxDeviation: 0.1}, verdict: Marginal, deviation: 1.5 / 13,
		reason: []string{"12% worse", "beyond the allowed 10%", "evidence is too weak", "≥ α=0.05"},
	}, {
		name:     "too few samples to ever reach significance is marginal with advice",
		canary:   []float64{40, 50, 60},
		baseline: []float64{10, 20, 30},
		settings: Settings{Alpha: 0.05, MaxDeviation: 0.2, MinSamples: 3}, verdict: Marginal, deviation: 1.5,
		reason: []string{"150% worse", "3/3 samples can never reach p < α=0.05", "collect more samples"},
	}, {
		name:     "p equal to alpha is not significant",
		canary:   []float64{2},
		baseline: []float64{1}, // one arrangement out of two: p = 0.5 exactly
		settings: Settings{Alpha: 0.5, MaxDeviation: 0.2, MinSamples: 1}, verdict: Marginal, deviation: 1,
		reason: []string{"1/1 samples can never reach p < α=0.5 (p=0.5)"},
	}, {
		name:     "zero tolerance fails on any significant worsening",
		canary:   seq(101, 1, 10),
		baseline: seq(100, 1, 10),
		settings: Settings{Alpha: 0.5, MaxDeviation: 0}, verdict: Fail, significant: true, deviation: 1 / 104.5,
		reason: []string{"1.0% worse than baseline 104.5, beyond the allowed 0%"},
	}, {
		name:     "better canary passes",
		canary:   seq(1, 1, 8),
		baseline: seq(20, 1, 8),
		settings: defaults, verdict: Pass, deviation: (4.5 - 23.5) / 23.5,
		reason: []string{"81% better than"},
	}, {
		name:     "higher is better: lower throughput fails",
		canary:   seq(700, 2, 10),  // median 709
		baseline: seq(1000, 2, 10), // median 1009
		settings: Settings{Alpha: 0.05, MaxDeviation: 0.2, Direction: HigherIsBetter}, verdict: Fail, significant: true,
		deviation: 300.0 / 1009,
		reason:    []string{"canary median 709 is 30% worse than baseline 1009"},
	}, {
		name:     "higher is better: higher throughput passes",
		canary:   seq(1000, 2, 10),
		baseline: seq(700, 2, 10),
		settings: Settings{Alpha: 0.05, MaxDeviation: 0.2, Direction: HigherIsBetter}, verdict: Pass,
		deviation: -300.0 / 709,
		reason:    []string{"42% better than"},
	}, {
		name:     "higher is better: small drop within tolerance passes",
		canary:   seq(950, 2, 10),
		baseline: seq(1000, 2, 10),
		settings: Settings{Alpha: 0.05, MaxDeviation: 0.2, Direction: HigherIsBetter}, verdict: Pass, significant: true,
		deviation: 50.0 / 1009,
	}, {
		name:     "identical values on both sides pass with p=1",
		canary:   repeat(0.01, 12),
		baseline: repeat(0.01, 12),
		settings: defaults, verdict: Pass, deviation: 0,
		reason: []string{"all 12 canary and 12 baseline values are 0.01"},
	}, {
		name:     "no errors on either side passes",
		canary:   repeat(0, 40), // beyond the exact-test limit: the normal approximation path
		baseline: repeat(0, 40),
		settings: defaults, verdict: Pass, deviation: 0,
	}, {
		name:     "baseline median 0 and canary erroring fails with infinite deviation",
		canary:   []float64{2, 3, 1, 4, 2, 5, 3, 2, 1, 3},
		baseline: []float64{0, 0, 0, 0, 0, 0, 1, 0, 0, 0},
		settings: defaults, verdict: Fail, significant: true, deviation: math.Inf(1),
		reason: []string{"canary median 2.5 is worse than baseline 0", "beyond the allowed 20%"},
	}, {
		name:     "baseline median 0 and canary median 0 passes",
		canary:   []float64{0, 0, 0, 0, 0, 0, 0, 0, 1, 2},
		baseline: []float64{0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		settings: defaults, verdict: Pass, deviation: 0,
	}, {
		name:     "higher is better: baseline median 0 and canary above it passes",
		canary:   seq(1, 1, 6),
		baseline: repeat(0, 6),
		settings: Settings{Alpha: 0.05, MaxDeviation: 0.2, Direction: HigherIsBetter}, verdict: Pass, deviation: math.Inf(-1),
		reason: []string{"better than baseline 0"},
	}, {
		name:     "too few canary samples is inconclusive",
		canary:   seq(1, 1, 4),
		baseline: seq(1, 1, 12),
		settings: defaults, verdict: Inconclusive, deviation: (2.5 - 6.5) / 6.5,
		reason: []string{"canary has 4, baseline has 12, need at least 5 per side"},
	}, {
		name:     "too few baseline samples for an explicit minimum is inconclusive",
		canary:   seq(1, 1, 12),
		baseline: seq(100, 1, 11),
		settings: Settings{Alpha: 0.05, MaxDeviation: 0.2, MinSamples: 12}, verdict: Inconclusive, deviation: (6.5 - 105) / 105,
		reason: []string{"baseline has 11", "need at least 12"},
	}, {
		name:     "empty canary is inconclusive",
		baseline: seq(1, 1, 12),
		settings: defaults, verdict: Inconclusive,
		reason: []string{"canary has 0"},
	}, {
		name:     "NaN in canary is inconclusive",
		canary:   []float64{1, 2, nan, 4, 5, 6},
		baseline: seq(1, 1, 6),
		settings: defaults, verdict: Inconclusive,
		reason: []string{"canary sample 3 of 6 is NaN"},
	}, {
		name:     "+Inf in baseline is inconclusive",
		canary:   seq(1, 1, 6),
		baseline: []float64{1, 2, 3, 4, 5, inf},
		settings: defaults, verdict: Inconclusive,
		reason: []string{"baseline sample 6 of 6 is +Inf"},
	}, {
		name:     "-Inf in canary is inconclusive even with too few samples",
		canary:   []float64{-inf},
		baseline: seq(1, 1, 6),
		settings: defaults, verdict: Inconclusive,
		reason: []string{"canary sample 1 of 1 is -Inf"},
	}, {
		name:     "invalid settings are inconclusive",
		canary:   seq(100, 1, 12),
		baseline: seq(1, 1, 12),
		settings: Settings{MaxDeviation: 0.2}, verdict: Inconclusive,
		reason: []string{"alpha 0 must be in (0, 0.5]"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			canary, baseline := slices.Clone(tc.canary), slices.Clone(tc.baseline)
			r := Compare(canary, baseline, tc.settings)
			t.Logf("%+v", r)
			if r.Verdict != tc.verdict {
				t.Errorf("verdict = %s, want %s", r.Verdict, tc.verdict)
			}
			if got := r.PValue < tc.settings.Alpha; got != tc.significant {
				t.Errorf("PValue = %v: significant = %v, want %v", r.PValue, got, tc.significant)
			}
			if !sameDeviation(r.RelativeDeviation, tc.deviation) {
				t.Errorf("RelativeDeviation = %v, want %v", r.RelativeDeviation, tc.deviation)
			}
			if r.CanaryCount != len(tc.canary) || r.BaselineCount != len(tc.baseline) {
				t.Errorf("counts = %d/%d, want %d/%d", r.CanaryCount, r.BaselineCount, len(tc.canary), len(tc.baseline))
			}
			for _, want := range tc.reason {
				if !strings.Contains(r.Reason, want) {
					t.Errorf("Reason %q does not contain %q", r.Reason, want)
				}
			}
			if !sameBits(canary, tc.canary) || !sameBits(baseline, tc.baseline) {
				t.Errorf("Compare modified its input")
			}
		})
	}
}

// sameBits is slices.Equal that also holds for NaN.
func sameBits(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
}

func sameDeviation(got, want float64) bool {
	if math.IsInf(want, 0) {
		return got == want
	}
	return math.Abs(got-want) <= 1e-12
}

// Inconclusive must not leak a computed p-value, and Pass with identical samples reports p=1.
func TestComparePValueWhenNotComputed(t *testing.T) {
	for name, r := range map[string]Result{
		"few":      Compare(seq(100, 1, 3), seq(1, 1, 3), defaults),
		"nan":      Compare([]float64{math.NaN(), 2, 3, 4, 5}, seq(1, 1, 5), defaults),
		"invalid":  Compare(seq(100, 1, 12), seq(1, 1, 12), Settings{Alpha: 1}),
		"all same": Compare(repeat(3, 6), repeat(3, 6), defaults),
	} {
		if r.PValue != 1 {
			t.Errorf("%s: PValue = %v, want 1", name, r.PValue)
		}
	}
}

func TestCompareMedians(t *testing.T) {
	r := Compare([]float64{5, 1, 4, 2, 3}, []float64{8, 2, 6, 4}, defaults.withMin(4))
	if r.CanaryMedian != 3 || r.BaselineMedian != 5 {
		t.Errorf("medians = %v/%v, want 3/5", r.CanaryMedian, r.BaselineMedian)
	}
	if got := median([]float64{math.MaxFloat64, math.MaxFloat64}); got != math.MaxFloat64 {
		t.Errorf("median of huge values = %v, want MaxFloat64", got)
	}
	if got := median([]float64{5e-324, 5e-324}); got != 5e-324 {
		t.Errorf("median of smallest subnormals = %v, want 5e-324", got)
	}
	if got := median([]float64{-math.MaxFloat64, math.MaxFloat64}); got != 0 {
		t.Errorf("median of ±MaxFloat64 = %v, want 0", got)
	}
}

func (s Settings) withMin(n int) Settings {
	s.MinSamples = n
	return s
}

// The default of five per side applies to zero and negative MinSamples alike.
func TestCompareDefaultMinSamples(t *testing.T) {
	for _, min := range []int{0, -3} {
		s := defaults.withMin(min)
		if r := Compare(seq(100, 1, 4), seq(1, 1, 4), s); r.Verdict != Inconclusive {
			t.Errorf("MinSamples %d, 4 per side: verdict %s, want Inconclusive", min, r.Verdict)
		}
		if r := Compare(seq(100, 1, 5), seq(1, 1, 5), s); r.Verdict != Fail {
			t.Errorf("MinSamples %d, 5 per side: verdict %s, want Fail", min, r.Verdict)
		}
	}
}

func TestValidate(t *testing.T) {
	valid := []Settings{
		{Alpha: 0.05, MaxDeviation: 0.2},
		{Alpha: 0.5, MaxDeviation: 0, Direction: HigherIsBetter},
		{Alpha: 1e-9, MaxDeviation: 10, Direction: LowerIsBetter, MinSamples: -1},
	}
	for _, s := range valid {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: unexpected error %v", s, err)
		}
	}
	invalid := []struct {
		s    Settings
		want []string
	}{
		{Settings{Alpha: 0, MaxDeviation: 0.2}, []string{"alpha 0 "}},
		{Settings{Alpha: -0.05, MaxDeviation: 0.2}, []string{"alpha -0.05 "}},
		{Settings{Alpha: 0.51, MaxDeviation: 0.2}, []string{"alpha 0.51 "}},
		{Settings{Alpha: math.NaN(), MaxDeviation: 0.2}, []string{"alpha NaN "}},
		{Settings{Alpha: 0.05, MaxDeviation: -0.1}, []string{"maxDeviation -0.1 "}},
		{Settings{Alpha: 0.05, MaxDeviation: math.NaN()}, []string{"maxDeviation NaN "}},
		{Settings{Alpha: 0.05, MaxDeviation: math.Inf(1)}, []string{"maxDeviation +Inf "}},
		{Settings{Alpha: 0.05, MaxDeviation: 0.2, Direction: "Up"}, []string{`direction "Up"`}},
		{Settings{Alpha: 2, MaxDeviation: -1, Direction: "lowerisbetter"}, []string{"alpha 2 ", "maxDeviation -1 ", `direction "lowerisbetter"`}},
	}
	for _, tc := range invalid {
		err := tc.s.Validate()
		if err == nil {
			t.Errorf("%+v: no error", tc.s)
			continue
		}
		for _, want := range tc.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%+v: error %q does not name %q", tc.s, err, want)
			}
		}
	}
}

// go-moremath's exact p-value with ties is a sum of floating-point terms and can exceed 1 (by 3e-15 for
// this input, found by a random search); Compare keeps PValue a probability.
func TestPValueIsAProbability(t *testing.T) {
	canary := []float64{4, 1, 4, 0, 2, 4, 2, 4, 3, 1, 0, 3, 4, 4, 4, -1, 3, -1, 4, -1, 3}
	r := Compare(canary, []float64{4}, defaults.withMin(1))
	if r.PValue != 1 {
		t.Errorf("PValue = %v, want 1", r.PValue)
	}
}
