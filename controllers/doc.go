// Package controllers holds Ferry's reconcilers. The Promotion reconciler owns the order of the pipeline and the
// status; every side effect (registry, Git, pull requests, cluster sync) belongs to an engine under internal/
// that knows nothing of Promotions. Bad input stalls a Promotion with a condition naming the field; it never
// hot-loops and never changes anything outside the Promotion's status.
package controllers
