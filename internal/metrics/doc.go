// Package metrics owns Ferry's Prometheus metrics: their names, labels and buckets, registered on
// controller-runtime's registry so the manager's /metrics endpoint serves them. The reconciler records through the
// typed Recorder, never with label strings of its own. It must not decide anything: it only counts and observes
// what callers report, and keeps one series per stage for digests so that a scrape shows only what runs now.
package metrics
