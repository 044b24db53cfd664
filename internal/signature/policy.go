package signature

import (
	"fmt"
	"strings"
)

// Policy says which signers Ferry accepts for an image digest. Its fields are plain data so that it can be built
// from a Promotion spec, from CLI flags or from a test without any sigstore types.
type Policy struct {
	// Keys are cosign public keys in PEM form (PKIX "PUBLIC KEY"); a signature made with any of them is accepted.
	Keys [][]byte
	// Identities are the keyless signers accepted: certificates chaining to TrustedRoot whose OIDC issuer and
	// subject match one of them.
	Identities []Identity
	// TrustedRoot is a sigstore trusted_root.json (Fulcio CAs, Rekor logs, CT logs, TSAs). It is only read, never
	// fetched or refreshed. Required for keyless identities.
	TrustedRoot []byte
	// RequiredAttestations are in-toto predicate types (full URIs, or cosign's short names such as
	// "slsaprovenance1", "spdxjson", "cyclonedx") that must each be attested for the digest by an accepted signer.
	RequiredAttestations []string
	// Threshold is how many distinct accepted signers must have signed the digest; 0 means 1.
	Threshold int
}

// Identity is one accepted keyless signer. Issuer (or IssuerRegexp) and Subject (or SubjectRegexp) are both
// required. Regular expressions must match the whole value: they are anchored, so "ci@example.com" cannot be
// satisfied by "ci@example.com.attacker.test".
type Identity struct {
	Issuer        string
	IssuerRegexp  string
	Subject       string
	SubjectRegexp string
}

func (i Identity) String() string {
	issuer, subject := i.Issuer, i.Subject
	if i.IssuerRegexp != "" {
		issuer = "~" + i.IssuerRegexp
	}
	if i.SubjectRegexp != "" {
		subject = "~" + i.SubjectRegexp
	}
	return fmt.Sprintf("issuer %s subject %s", issuer, subject)
}

// Well-known predicate types of the attestations Ferry can require.
const (
	PredicateSLSAProvenanceV1 = "https://slsa.dev/provenance/v1"
	PredicateSPDX             = "https://spdx.dev/Document"
	PredicateCycloneDX        = "https://cyclonedx.org/bom"
	// predicateCosignSign marks a sigstore bundle that is a plain image signature (cosign sign --new-bundle-format)
	// rather than an attestation.
	predicateCosignSign = "https://sigstore.dev/cosign/sign/v1"
)

// shortPredicateTypes maps cosign's --type names to the predicate types cosign writes for them.
var shortPredicateTypes = map[string]string{
	"slsaprovenance":   "https://slsa.dev/provenance/v0.2",
	"slsaprovenance02": "https://slsa.dev/provenance/v0.2",
	"slsaprovenance1":  PredicateSLSAProvenanceV1,
	"spdx":             PredicateSPDX,
	"spdxjson":         PredicateSPDX,
	"cyclonedx":        PredicateCycloneDX,
	"vuln":             "https://cosign.sigstore.dev/attestation/vuln/v1",
	"openvex":          "https://openvex.dev/ns",
	"custom":           "https://cosign.sigstore.dev/attestation/v1",
}

// PredicateType turns a cosign short name ("slsaprovenance1") into its predicate type URI; URIs pass unchanged.
func PredicateType(name string) (string, error) {
	name = strings.TrimSpace(name)
	if full, ok := shortPredicateTypes[strings.ToLower(name)]; ok {
		return full, nil
	}
	if !strings.Contains(name, "://") {
		return "", fmt.Errorf("predicate type %q is neither a URI nor a known short name (slsaprovenance1, spdxjson, cyclonedx, …)", name)
	}
	return name, nil
}
