package judge

import (
	"math"
	"math/rand/v2"
	"testing"
)

// These tests check the statistics, not the code paths: with a fixed seed they run Compare on many
// simulated canaries and check how often it fails one. The seeds make them deterministic; the bounds are
// a few standard errors wide (for 1000 runs at rate 0.05 the standard error is 0.007) so that a correct
// judge passes for any seed, not just these.

const runs = 1000

// metric simulates one side of a canary analysis: n per-interval values.
type metric func(r *rand.Rand, n int) []float64

// errorRate simulates the per-interval error rate of ~2000 requests per interval that fail independently
// with probability rate: the request count is Poisson(2000) (normal approximation) and the error count
// Poisson(rate * requests).
func errorRate(rate float64) metric {
	return func(r *rand.Rand, n int) []float64 {
		xs := make([]float64, n)
		for i := range xs {
			requests := math.Round(2000 + math.Sqrt(2000)*r.NormFloat64())
			xs[i] = float64(poisson(r, rate*requests)) / requests
		}
		return xs
	}
}

// poisson draws from Poisson(lambda) by Knuth's multiplication method, fine for the small lambdas here.
func poisson(r *rand.Rand, lambda float64) int {
	limit, k, p := math.Exp(-lambda), 0, r.Float64()
	for p > limit {
		k++
		p *= r.Float64()
	}
	return k
}

// latency simulates per-interval latencies: lognormal around median with log-spread sigma.
func latency(median, sigma float64) metric {
	return func(r *rand.Rand, n int) []float64 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = median * math.Exp(sigma*r.NormFloat64())
		}
		return xs
	}
}

// throughput simulates requests per second: normal around mean with 5% spread (higher is better).
func throughput(mean float64) metric {
	return func(r *rand.Rand, n int) []float64 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = mean * (1 + 0.05*r.NormFloat64())
		}
		return xs
	}
}

type rates struct {
	fail         float64 // share of runs with Verdict Fail
	significant  float64 // share of runs with PValue < Alpha
	worseAndSig  float64 // share of runs with PValue < Alpha and a worse canary median: Fail at zero tolerance
	medianBeyond float64 // share of runs whose RelativeDeviation exceeds MaxDeviation
}

// simulate runs Compare runs times on fresh samples of 12-20 intervals per side (sizes drawn
// independently, as a canary and baseline may lose different intervals).
func simulate(seed uint64, canary, baseline metric, s Settings) rates {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	var got rates
	for range runs {
		res := Compare(canary(r, 12+r.IntN(9)), baseline(r, 12+r.IntN(9)), s)
		got.fail += b2f(res.Verdict == Fail)
		got.significant += b2f(res.PValue < s.Alpha)
		got.worseAndSig += b2f(res.PValue < s.Alpha && res.RelativeDeviation > 0)
		got.medianBeyond += b2f(res.RelativeDeviation > s.MaxDeviation)
	}
	got.fail /= runs
	got.significant /= runs
	got.worseAndSig /= runs
	got.medianBeyond /= runs
	return got
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// With canary and baseline from the same distribution the judge must rarely fail the canary: the
// Fail rate is at most Alpha (plus sampling noise), and so is the share of runs that would fail with zero
// tolerance. The p-value must also be calibrated: it falls below Alpha in about an Alpha share of runs,
// neither more (false alarms) nor much less (a test that cannot see anything, or a two-sided p).
func TestFalsePositiveRate(t *testing.T) {
	cases := []struct {
		name   string
		metric metric
		dir    Direction
	}{
		{"error rate 1%", errorRate(0.01), LowerIsBetter},
		{"lognormal latency", latency(0.250, 0.3), LowerIsBetter},
		{"throughput", throughput(1000), HigherIsBetter},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := Settings{Alpha: 0.05, MaxDeviation: 0.2, Direction: tc.dir}
			got := simulate(uint64(100+i), tc.metric, tc.metric, s)
			t.Logf("Fail rate %.3f (at zero tolerance %.3f), p < α rate %.3f over %d runs",
				got.fail, got.worseAndSig, got.significant, runs)
			if got.fail > 0.07 || got.worseAndSig > 0.07 {
				t.Errorf("Fail rate %.3f (at zero tolerance %.3f) > 0.07 with equal distributions", got.fail, got.worseAndSig)
			}
			if got.significant > 0.07 || got.significant < 0.03 {
				t.Errorf("p < α in %.3f of runs with equal distributions, want about α=0.05 (0.03-0.07)", got.significant)
			}
		})
	}
}

// A real regression must be caught: a doubled error rate, 1.5x latency or 30% less throughput fails in
// at least 90% of runs with a 20% tolerance, and an improved canary never fails. A regression the user
// tolerates must pass even when it is significant.
func TestDetectionRate(t *testing.T) {
	cases := []struct {
		name             string
		canary, baseline metric
		dir              Direction
		min, max         float64 // bounds on the Fail rate
		minSignificant   float64 // lower bound on the p < α rate
	}{
		{"error rate 1% to 2%", errorRate(0.02), errorRate(0.01), LowerIsBetter, 0.9, 1, 0.9},
		{"latency 1.5x", latency(0.375, 0.3), latency(0.250, 0.3), LowerIsBetter, 0.9, 1, 0.9},
		{"throughput -30%", throughput(700), throughput(1000), HigherIsBetter, 0.9, 1, 0.9},
		{"error rate 1% to 0.5%", errorRate(0.005), errorRate(0.01), LowerIsBetter, 0, 0, 0},
		{"throughput +30%", throughput(1300), throughput(1000), HigherIsBetter, 0, 0, 0},
		{"latency 1.1x, within tolerance", latency(0.275, 0.05), latency(0.250, 0.05), LowerIsBetter, 0, 0.01, 0.9},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := Settings{Alpha: 0.05, MaxDeviation: 0.2, Direction: tc.dir}
			got := simulate(uint64(200+i), tc.canary, tc.baseline, s)
			t.Logf("Fail rate %.3f, p < α rate %.3f, median beyond tolerance %.3f over %d runs",
				got.fail, got.significant, got.medianBeyond, runs)
			if got.fail < tc.min || got.fail > tc.max {
				t.Errorf("Fail rate %.3f, want in [%v, %v]", got.fail, tc.min, tc.max)
			}
			if got.significant < tc.minSignificant {
				t.Errorf("p < α rate %.3f, want >= %v", got.significant, tc.minSignificant)
			}
		})
	}
}

// The headline scenario from the brief with exactly 12 intervals per side: 1% vs 2% errors of ~2000
// requests per interval.
func TestDetectionRateTwelveIntervals(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	s := Settings{Alpha: 0.05, MaxDeviation: 0.2}
	fail := 0
	for range runs {
		if Compare(errorRate(0.02)(r, 12), errorRate(0.01)(r, 12), s).Verdict == Fail {
			fail++
		}
	}
	rate := float64(fail) / runs
	t.Logf("Fail rate %.3f over %d runs of 12 intervals per side", rate, runs)
	if rate < 0.9 {
		t.Errorf("Fail rate %.3f < 0.9 for a doubled error rate", rate)
	}
}
