// Package analysis measures the Prometheus metrics that gate a canary and turns the measurements into a decision.
//
// Every measurement is Pass, Fail or Inconclusive, and only measured evidence may Fail: a number that was read
// from Prometheus, is fresh, and lies outside its threshold. Everything else that keeps a number from being
// judged is Inconclusive, with a stable reason:
//
//   - PrometheusUnavailable: Prometheus could not be asked or did not answer (connection refused or reset, a
//     timeout, HTTP 5xx or 429, a response too large to read). An outage says nothing about the canary.
//   - NoData: the query returned an empty vector, e.g. no series for the canary's track yet. Absence of data is
//     not a zero.
//   - NotANumber: the value was NaN or ±Inf, e.g. 0/0 when the canary served no requests.
//   - StaleSample: the newest raw sample behind the value is older than the check allows, or its age could not
//     be established. Prometheus keeps serving a series for up to its lookback delta (5m by default) after its
//     source stopped when samples carry explicit timestamps (federation, exporters with timestamps), so a dead
//     canary would otherwise look healthy.
//   - LowTraffic: the canary served too little traffic for its error rates to mean anything.
//
// Inconclusive measurements are counted, not ignored: Decide holds an analysis run for a person once they
// exceed the run's budget, so an outage never silently stretches or passes an analysis. A query that Prometheus
// rejects as malformed is neither: Measure returns it as an error (ErrBadQuery), a fault in the spec.
//
// How freshness is established is described on Prometheus.Query.
package analysis
