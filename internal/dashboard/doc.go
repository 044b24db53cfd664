// Package dashboard serves Ferry's local web UI: the Promotions, each stage's history and analysis, provenance
// by digest, and the rollback, approve, abort and clear-hold requests, kept live by a watch pushed as
// Server-Sent Events. It acts only through the client it is given — the user's own kubeconfig — so the user's
// RBAC applies as is; it adds no authentication of its own, and so listens on loopback only, refuses foreign
// Host and Origin headers and POSTs without its CSRF token. It never reads or renders Secrets.
package dashboard
