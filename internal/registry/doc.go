// Package registry owns Ferry's conversations with OCI registries: resolving tags to digests, choosing a candidate
// tag by policy, and copying an image or index by digest between repositories together with every artifact attached
// to it (legacy cosign tags and OCI 1.1 referrers). It builds transports from plain credentials and trust bundles.
// It must not know about Promotions or Kubernetes clients, must never log or return credentials, and must never
// report a copy done before the destination serves the source digest. Everything it reads from a registry is
// bounded (tags, attachments, manifest bytes: see limits.go); more is refused with ErrLimitExceeded, never cut short.
package registry
