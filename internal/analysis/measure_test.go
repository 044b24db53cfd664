package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// fakeQuerier answers queries from a table.
type fakeQuerier map[string]fakeResult

type fakeResult struct {
	s   Sample
	err error
}

func (f fakeQuerier) Query(_ context.Context, query string, _ time.Time) (Sample, error) {
	r, ok := f[query]
	if !ok {
		return Sample{}, fmt.Errorf("%w: unexpected query %q", ErrBadQuery, query)
	}
	return r.s, r.err
}

func ptr(v float64) *float64 { return &v }

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func freshSample(v float64) fakeResult {
	return fakeResult{s: Sample{Value: v, Newest: t0.Add(-2 * time.Second), Series: 1}}
}

func TestMeasure(t *testing.T) {
	refused := &queryError{ErrUnavailable, errors.New("dial tcp 127.0.0.1:9: connect: connection refused")}
	q := fakeQuerier{
		"ok":         freshSample(0.004),
		"at-max":     freshSample(0.01),
		"above":      freshSample(0.052),
		"barely":     freshSample(0.0100001),
		"below":      freshSample(0.5),
		"nan":        freshSample(math.NaN()),
		"inf":        freshSample(math.Inf(1)),
		"-inf":       freshSample(math.Inf(-1)),
		"nodata":     {err: ErrNoData},
		"down":       {err: refused},
		"forbidden":  {err: errors.New("prometheus: client error: 403")},
		"stale":      {s: Sample{Value: 0.004, Newest: t0.Add(-190 * time.Second), Series: 1}},
		"stale-high": {s: Sample{Value: 0.9, Newest: t0.Add(-190 * time.Second), Series: 1}},
		"future":     {s: Sample{Value: 0.004, Newest: t0.Add(time.Minute), Series: 1}},
		"unknown":    {s: Sample{Value: 0.004, Series: 1}},
	}
	atMost := Threshold{Max: ptr(0.01)}
	tests := []struct {
		query     string
		threshold Threshold
		maxAge    time.Duration
		verdict   Verdict
		reason    string
		message   string
		hasValue  bool
	}{
		{"ok", atMost, 30 * time.Second, Pass, "", "0.004 is at most max 0.01", true},
		{"at-max", atMost, 0, Pass, "", "0.01 is at most max 0.01", true},
		{"above", atMost, 30 * time.Second, Fail, ReasonAboveMax, "0.052 is above max 0.01", true},
		{"barely", atMost, 0, Fail, ReasonAboveMax, "0.0100001 is above max 0.01", true},
		{"below", Threshold{Min: ptr(0.9), Max: ptr(1)}, 0, Fail, ReasonBelowMin, "0.5 is below min 0.9", true},
		{"below", Threshold{Min: ptr(0.1), Max: ptr(1)}, 0, Pass, "", "0.5 is within [0.1, 1]", true},
		{"below", Threshold{}, 0, Pass, "", "0.5 (no threshold)", true},
		{"nan", atMost, 0, Inconclusive, ReasonNotANumber, "the query returned NaN, not a number", false},
		{"inf", atMost, 0, Inconclusive, ReasonNotANumber, "the query returned +Inf, not a number", false},
		{"-inf", Threshold{Min: ptr(0)}, 0, Inconclusive, ReasonNotANumber, "the query returned -Inf, not a number", false},
		{"nodata", atMost, 0, Inconclusive, ReasonNoData, "the query returned no series", false},
		{"down", atMost, 0, Inconclusive, ReasonUnavailable, "Prometheus unreachable: dial tcp 127.0.0.1:9: connect: connection refused", false},
		{"forbidden", atMost, 0, Inconclusive, ReasonUnavailable, "Prometheus query failed: prometheus: client error: 403", false},
		{"stale", atMost, 30 * time.Second, Inconclusive, ReasonStale, "newest sample 3m10s old (max 30s)", true},
		// Stale evidence never fails, however bad it looks.
		{"stale-high", atMost, 30 * time.Second, Inconclusive, ReasonStale, "newest sample 3m10s old (max 30s)", true},
		{"stale-high", atMost, 0, Fail, ReasonAboveMax, "0.9 is above max 0.01", true},
		{"future", atMost, 30 * time.Second, Pass, "", "0.004 is at most max 0.01", true},
		{"unknown", atMost, 30 * time.Second, Inconclusive, ReasonStale, "age of the newest sample unknown (max 30s)", true},
		{"unknown", atMost, 0, Pass, "", "0.004 is at most max 0.01", true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			c := Check{Metric: "error-rate", Query: tt.query, Threshold: tt.threshold, MaxAge: tt.maxAge}
			m, err := Measure(context.Background(), q, c, t0)
			if err != nil {
				t.Fatal(err)
			}
			if m.Verdict != tt.verdict || m.Reason != tt.reason || m.Message != tt.message {
				t.Errorf("got %s/%s %q, want %s/%s %q", m.Verdict, m.Reason, m.Message, tt.verdict, tt.reason, tt.message)
			}
			if (m.Value != nil) != tt.hasValue {
				t.Errorf("Value = %v, want present=%v", m.Value, tt.hasValue)
			}
			if m.Metric != "error-rate" || m.Query != tt.query || !m.Time.Equal(t0) || !m.SampleTime.Equal(q[tt.query].s.Newest) {
				t.Errorf("identity fields wrong: %+v", m)
			}
		})
	}
}

func TestMeasureBadQueryIsAnError(t *testing.T) {
	bad := &queryError{ErrBadQuery, errors.New("parse error: unexpected end of input")}
	q := fakeQuerier{"rate(": {err: bad}}
	m, err := Measure(context.Background(), q, Check{Metric: "m", Query: "rate("}, t0)
	if !errors.Is(err, ErrBadQuery) || m.Verdict != "" {
		t.Fatalf("got %+v, %v; want no measurement and ErrBadQuery", m, err)
	}
}

func TestMeasureCallerGivingUpIsNotAMeasurement(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q := fakeQuerier{"up": {err: &queryError{ErrUnavailable, context.Canceled}}}
	if m, err := Measure(ctx, q, Check{Metric: "m", Query: "up"}, t0); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %+v, %v; want context.Canceled", m, err)
	}
}

func TestMeasureTraffic(t *testing.T) {
	q := fakeQuerier{
		"low":    freshSample(0.2),
		"enough": freshSample(50),
		"zero":   freshSample(0),
		"nan":    freshSample(math.NaN()),
		"none":   {err: ErrNoData},
		"stale":  {s: Sample{Value: 50, Newest: t0.Add(-time.Hour), Series: 1}},
	}
	tests := []struct {
		query   string
		verdict Verdict
		reason  string
		message string
	}{
		{"low", Inconclusive, ReasonLowTraffic, "traffic 0.2 is below min 1"},
		{"zero", Inconclusive, ReasonLowTraffic, "traffic 0 is below min 1"},
		{"enough", Pass, "", "50 is at least min 1"},
		{"nan", Inconclusive, ReasonNotANumber, "the query returned NaN, not a number"},
		{"none", Inconclusive, ReasonNoData, "the query returned no series"},
		{"stale", Inconclusive, ReasonStale, "newest sample 1h0m0s old (max 1m0s)"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			m, err := MeasureTraffic(context.Background(), q, "traffic", tt.query, 1, time.Minute, t0)
			if err != nil {
				t.Fatal(err)
			}
			if m.Verdict != tt.verdict || m.Reason != tt.reason || m.Message != tt.message {
				t.Errorf("got %s/%s %q, want %s/%s %q", m.Verdict, m.Reason, m.Message, tt.verdict, tt.reason, tt.message)
			}
		})
	}
}

// FuzzMeasureOnlyEvidenceFails: whatever a querier answers, a measurement fails only on a fresh finite number
// outside its threshold, and every Inconclusive one carries a known reason.
func FuzzMeasureOnlyEvidenceFails(f *testing.F) {
	f.Add(0.5, int64(-10), uint8(0), 0.1, 1.0, int64(30))
	f.Add(math.NaN(), int64(0), uint8(0), 0.1, 1.0, int64(0))
	f.Add(2.0, int64(-100), uint8(0), 0.1, 1.0, int64(30))
	f.Add(2.0, int64(-1), uint8(2), 0.1, 1.0, int64(30))
	f.Fuzz(func(t *testing.T, v float64, ageSec int64, errKind uint8, min, max float64, maxAgeSec int64) {
		errs := []error{nil, ErrNoData, &queryError{ErrUnavailable, errors.New("x")}, errors.New("other")}
		err := errs[int(errKind)%len(errs)]
		s := Sample{Value: v, Newest: t0.Add(time.Duration(ageSec%1e6) * time.Second), Series: 1}
		c := Check{Metric: "m", Query: "q", Threshold: Threshold{Min: &min, Max: &max}, MaxAge: time.Duration(maxAgeSec%1e6) * time.Second}
		m, mErr := Measure(context.Background(), fakeQuerier{"q": {s: s, err: err}}, c, t0)
		if mErr != nil {
			t.Fatalf("unexpected error %v", mErr)
		}
		finite := !math.IsNaN(v) && !math.IsInf(v, 0)
		staleOK := c.MaxAge <= 0 || t0.Sub(s.Newest) <= c.MaxAge
		outside := v < min || v > max
		switch m.Verdict {
		case Fail:
			if err != nil || !finite || !staleOK || !outside {
				t.Fatalf("Fail without evidence: %+v (err %v)", m, err)
			}
		case Pass:
			if err != nil || !finite || !staleOK || outside {
				t.Fatalf("Pass without evidence: %+v (err %v)", m, err)
			}
		case Inconclusive:
			if !strings.Contains(" PrometheusUnavailable NoData NotANumber StaleSample ", " "+m.Reason+" ") {
				t.Fatalf("unknown reason %q", m.Reason)
			}
			if err == nil && finite && staleOK {
				t.Fatalf("Inconclusive with fresh evidence: %+v", m)
			}
		default:
			t.Fatalf("no verdict: %+v", m)
		}
	})
}
