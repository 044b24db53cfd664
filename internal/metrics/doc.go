// Package metrics owns Ferry's Prometheus metrics: their names, labels and buckets. The manager registers them
// once on controller-runtime's registry (New(ctrlmetrics.Registry)) so its /metrics endpoint serves them; the
// reconciler records through the typed Recorder, never with label strings of its own. It must not decide
// anything: it counts and observes what callers report, and keeps one digest series per stage.
package metrics
