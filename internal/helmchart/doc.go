// Package helmchart holds only the tests of Ferry's Helm chart (charts/ferry): it lints and renders the chart with
// the Helm SDK, applies what it renders to a real API server with a server-side dry run, and checks that its RBAC,
// CRD, alerts and dashboard are config/'s. It ships no code; the chart itself is the product, and
// `make helm-sync` copies config/'s files into it.
package helmchart
