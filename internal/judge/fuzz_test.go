package judge

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
)

// maxFuzzValues bounds the samples so each exact test with ties stays in the milliseconds.
const maxFuzzValues = 40

// fuzzSamples turns fuzz bytes into samples. With raw, every 8 bytes are the bits of a float64 (so NaN,
// ±Inf, subnormals and huge values occur); otherwise every byte is a small value in steps of 0.25, so
// ties, zeros and negative values are common. The first split values are the canary, the rest the
// baseline.
func fuzzSamples(data []byte, raw bool, split uint8) (canary, baseline []float64) {
	var values []float64
	if raw {
		for ; len(data) >= 8 && len(values) < maxFuzzValues; data = data[8:] {
			values = append(values, math.Float64frombits(binary.LittleEndian.Uint64(data)))
		}
	} else {
		for _, b := range data[:min(len(data), maxFuzzValues)] {
			values = append(values, float64(int8(b))/4)
		}
	}
	k := int(split) % (len(values) + 1)
	return values[:k], values[k:]
}

func negate(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = -x
	}
	return out
}

func flip(d Direction) Direction {
	if d == HigherIsBetter {
		return LowerIsBetter
	}
	return HigherIsBetter
}

func FuzzCompare(f *testing.F) {
	// Arguments: data, raw, split, alpha (x0.6/255), maxDev (/50), minSamples, higher.
	// A clearly worse canary at α≈0.05 and 40% tolerance.
	f.Add([]byte{4, 8, 12, 16, 20, 24, 1, 2, 3, 4, 5, 6}, false, uint8(6), uint8(21), uint8(20), int8(0), false)
	// All zero, zero tolerance, higher is better.
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false, uint8(5), uint8(21), uint8(0), int8(0), true)
	// Heavy ties at α=0.3 with three samples per side.
	f.Add([]byte{1, 1, 2, 2, 3, 0, 0, 1, 1, 2}, false, uint8(5), uint8(127), uint8(0), int8(3), false)
	// A NaN canary (bits 0x7ff8000000000000) against 1.0.
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f}, true, uint8(1), uint8(21), uint8(20), int8(1), false)
	// MaxFloat64 against the smallest subnormal.
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xef, 0x7f, 1, 0, 0, 0, 0, 0, 0, 0}, true, uint8(1), uint8(21), uint8(20), int8(1), true)
	f.Fuzz(func(t *testing.T, data []byte, raw bool, split, alpha, maxDev uint8, minSamples int8, higher bool) {
		canary, baseline := fuzzSamples(data, raw, split)
		s := Settings{
			Alpha:        float64(alpha) / 255 * 0.6, // includes the invalid 0 and (0.5, 0.6]
			MaxDeviation: float64(maxDev) / 50,
			MinSamples:   int(minSamples % 8), // -7..7: negative means the default
			Direction:    LowerIsBetter,
		}
		if higher {
			s.Direction = HigherIsBetter
		}
		canaryCopy, baselineCopy := slices.Clone(canary), slices.Clone(baseline)
		r := Compare(canary, baseline, s)
		if !sameBits(canary, canaryCopy) || !sameBits(baseline, baselineCopy) {
			t.Fatal("Compare modified its input")
		}
		checkRule(t, canary, baseline, s, r)

		// Reordering a side must not change anything but the position a Reason may quote: the judge sees a
		// sample, not a sequence.
		slices.Reverse(canaryCopy)
		slices.Reverse(baselineCopy)
		r2 := Compare(canaryCopy, baselineCopy, s)
		if r2.Reason = r.Reason; r2 != r {
			t.Fatalf("reversing the samples changed the result:\n%+v\n%+v", r, r2)
		}

		// Negating every value and the direction is the same question asked upside down.
		m := s
		m.Direction = flip(s.Direction)
		mr := Compare(negate(canary), negate(baseline), m)
		// The U statistic is the same; only the tie pattern is reversed, which changes rounding, not p.
		if math.Abs(mr.PValue-r.PValue) > 1e-9 || mr.RelativeDeviation != r.RelativeDeviation ||
			mr.CanaryMedian != -r.CanaryMedian || mr.BaselineMedian != -r.BaselineMedian {
			t.Fatalf("mirror image differs: %+v vs %+v", mr, r)
		}
		if mr.Verdict != r.Verdict && math.Abs(r.PValue-s.Alpha) > 1e-9 {
			t.Fatalf("mirror image verdict %s, want %s: %+v vs %+v", mr.Verdict, r.Verdict, mr, r)
		}
	})
}

// checkRule checks r against the package's decision rule, computed independently from the inputs.
func checkRule(t *testing.T, canary, baseline []float64, s Settings, r Result) {
	t.Helper()
	if r.CanaryCount != len(canary) || r.BaselineCount != len(baseline) {
		t.Fatalf("counts %d/%d for %d/%d samples", r.CanaryCount, r.BaselineCount, len(canary), len(baseline))
	}
	if !(r.PValue >= 0 && r.PValue <= 1) || math.IsNaN(r.RelativeDeviation) {
		t.Fatalf("PValue %v or RelativeDeviation %v out of range", r.PValue, r.RelativeDeviation)
	}
	if r.Reason == "" || strings.Contains(r.Reason, "\n") {
		t.Fatalf("Reason %q is not one line", r.Reason)
	}
	minSamples := s.MinSamples
	if minSamples <= 0 {
		minSamples = DefaultMinSamples
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	mustAbstain := s.Validate() != nil ||
		!all(canary, finite) || !all(baseline, finite) ||
		len(canary) < minSamples || len(baseline) < minSamples
	if mustAbstain != (r.Verdict == Inconclusive) {
		t.Fatalf("verdict %s, but inconclusive conditions are %v: %+v", r.Verdict, mustAbstain, r)
	}
	beyond := r.RelativeDeviation > s.MaxDeviation
	significant := r.PValue < s.Alpha
	switch r.Verdict {
	case Inconclusive:
		if r.PValue != 1 {
			t.Fatalf("Inconclusive with computed PValue %v", r.PValue)
		}
	case Fail:
		if !beyond || !significant {
			t.Fatalf("Fail without p < α and deviation > max: %+v", r)
		}
	case Marginal:
		if !beyond || significant {
			t.Fatalf("Marginal without p >= α and deviation > max: %+v", r)
		}
	case Pass:
		if beyond {
			t.Fatalf("Pass with deviation beyond max: %+v", r)
		}
	default:
		t.Fatalf("unknown verdict %q", r.Verdict)
	}
}

func all(xs []float64, ok func(float64) bool) bool {
	return !slices.ContainsFunc(xs, func(x float64) bool { return !ok(x) })
}
