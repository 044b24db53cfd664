// Package signature decides whether an image digest is signed and attested by the signers a policy accepts.
// It discovers cosign signatures and attestations in both layouts (legacy `sha256-<hex>.sig`/`.att` tags and
// OCI 1.1 referrers carrying sigstore bundles, with the referrers tag fallback) and verifies them offline with
// sigstore-go against the keys and trusted root it is given. It must never fetch trust material, reach a
// transparency log, or write to a registry; registry access goes through the caller's remote options. What one
// verification reads is bounded (limits.go): a digest with more referrers, layers or bytes of signature material
// than that fails with KindTooLarge rather than being judged on part of it.
package signature
