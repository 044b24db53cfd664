package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Verdict is the outcome of one measurement.
type Verdict string

const (
	Pass         Verdict = "Pass"
	Fail         Verdict = "Fail"
	Inconclusive Verdict = "Inconclusive"
)

// Why a measurement is inconclusive: stable CamelCase reasons, used in conditions, events and metric labels.
const (
	ReasonUnavailable = "PrometheusUnavailable"
	ReasonNoData      = "NoData"
	ReasonNotANumber  = "NotANumber"
	ReasonStale       = "StaleSample"
	ReasonLowTraffic  = "LowTraffic"
)

// Why a measurement failed.
const (
	ReasonAboveMax = "AboveMax"
	ReasonBelowMin = "BelowMin"
)

// Threshold bounds a metric's value; a nil bound is not checked. Both bounds are inclusive.
type Threshold struct {
	Min, Max *float64
}

// Check is one metric of an analysis, its query already rendered.
type Check struct {
	Metric    string // name for status
	Query     string // PromQL, already templated
	Threshold Threshold
	// MaxAge: a sample whose newest raw data is older than this (relative to now) is stale; 0 = not checked.
	MaxAge time.Duration
}

// Measurement is the judged result of one check at one time.
type Measurement struct {
	Metric     string
	Query      string
	Value      *float64  // nil when there was no number (including NaN and ±Inf)
	Time       time.Time // when measured
	SampleTime time.Time // newest raw sample behind the value (zero if unknown)
	Verdict    Verdict
	// Reason: for Inconclusive one of the Reason* constants; for Fail ReasonAboveMax or ReasonBelowMin.
	Reason  string
	Message string // a sentence for people
}

// Measure runs one check and judges it. Only a fresh number outside the threshold fails; errors, empty results,
// NaN/±Inf and stale samples are Inconclusive. A query Prometheus rejects (ErrBadQuery) is returned as an error,
// since it is a fault in the spec, and so is the end of ctx: a caller giving up is not a fact about Prometheus.
func Measure(ctx context.Context, q Querier, c Check, now time.Time) (Measurement, error) {
	m := Measurement{Metric: c.Metric, Query: c.Query, Time: now}
	s, err := q.Query(ctx, c.Query, now)
	if err != nil {
		if errors.Is(err, ErrBadQuery) {
			return Measurement{}, err
		}
		if ctx.Err() != nil {
			return Measurement{}, fmt.Errorf("measuring %s: %w", c.Metric, ctx.Err())
		}
		return queryFailed(m, err), nil
	}
	m.SampleTime = s.Newest
	if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
		return inconclusive(m, ReasonNotANumber, fmt.Sprintf("the query returned %s, not a number", formatValue(s.Value))), nil
	}
	v := s.Value
	m.Value = &v
	if reason, stale := staleness(s.Newest, c.MaxAge, now); stale {
		return inconclusive(m, ReasonStale, reason), nil
	}
	return judge(m, v, c.Threshold), nil
}

// MeasureTraffic measures the traffic behind a canary's other metrics: like Measure with a minimum, except that a
// value below min is Inconclusive (ReasonLowTraffic), never Fail, since too little traffic proves nothing.
func MeasureTraffic(ctx context.Context, q Querier, metric, query string, min float64, maxAge time.Duration, now time.Time) (Measurement, error) {
	m, err := Measure(ctx, q, Check{Metric: metric, Query: query, Threshold: Threshold{Min: &min}, MaxAge: maxAge}, now)
	if err != nil || m.Verdict != Fail {
		return m, err
	}
	return inconclusive(m, ReasonLowTraffic, fmt.Sprintf("traffic %s is below min %s", formatValue(*m.Value), formatValue(min))), nil
}

// queryFailed turns a query error into an Inconclusive measurement.
func queryFailed(m Measurement, err error) Measurement {
	switch {
	case errors.Is(err, ErrNoData):
		return inconclusive(m, ReasonNoData, "the query returned no series")
	case errors.Is(err, ErrUnavailable):
		return inconclusive(m, ReasonUnavailable, "Prometheus unreachable: "+detail(err))
	default:
		return inconclusive(m, ReasonUnavailable, "Prometheus query failed: "+detail(err))
	}
}

// staleness reports whether a sample whose newest raw data is at newest is too old to judge at now.
func staleness(newest time.Time, maxAge time.Duration, now time.Time) (string, bool) {
	if maxAge <= 0 {
		return "", false
	}
	if newest.IsZero() {
		// Freshness was asked for and cannot be shown, so the value cannot be trusted either.
		return fmt.Sprintf("age of the newest sample unknown (max %s)", maxAge), true
	}
	age := now.Sub(newest)
	if age <= maxAge {
		return "", false
	}
	return fmt.Sprintf("newest sample %s old (max %s)", age.Round(time.Second), maxAge), true
}

// judge compares a fresh number with its threshold.
func judge(m Measurement, v float64, t Threshold) Measurement {
	switch {
	case t.Max != nil && v > *t.Max:
		a, b := formatPair(v, *t.Max)
		return verdict(m, Fail, ReasonAboveMax, fmt.Sprintf("%s is above max %s", a, b))
	case t.Min != nil && v < *t.Min:
		a, b := formatPair(v, *t.Min)
		return verdict(m, Fail, ReasonBelowMin, fmt.Sprintf("%s is below min %s", a, b))
	}
	return verdict(m, Pass, "", passMessage(v, t))
}

func passMessage(v float64, t Threshold) string {
	switch {
	case t.Min != nil && t.Max != nil:
		return fmt.Sprintf("%s is within [%s, %s]", formatValue(v), formatValue(*t.Min), formatValue(*t.Max))
	case t.Max != nil:
		return fmt.Sprintf("%s is at most max %s", formatValue(v), formatValue(*t.Max))
	case t.Min != nil:
		return fmt.Sprintf("%s is at least min %s", formatValue(v), formatValue(*t.Min))
	}
	return fmt.Sprintf("%s (no threshold)", formatValue(v))
}

func inconclusive(m Measurement, reason, msg string) Measurement {
	return verdict(m, Inconclusive, reason, msg)
}

func verdict(m Measurement, v Verdict, reason, msg string) Measurement {
	m.Verdict, m.Reason, m.Message = v, reason, msg
	return m
}

// formatValue prints a number briefly for people: six significant digits.
func formatValue(v float64) string {
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// formatPair prints a value and the bound it crossed, exactly when six digits would show them equal: "0.01 is
// above max 0.01" would be a riddle.
func formatPair(v, bound float64) (string, string) {
	a, b := formatValue(v), formatValue(bound)
	if a == b {
		return strconv.FormatFloat(v, 'g', -1, 64), strconv.FormatFloat(bound, 'g', -1, 64)
	}
	return a, b
}
