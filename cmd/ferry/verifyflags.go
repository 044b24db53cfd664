package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/internal/registry"
	"github.com/ferrycd/ferry/internal/signature"
)

// verifyFlags are the signature-policy flags shared by `ferry verify` and `ferry copy`. Their names follow
// cosign's so that a policy moves between the two tools unchanged.
type verifyFlags struct {
	keys            []string // PEM public key files
	identities      []string // exact certificate subjects (SAN)
	identityRegexps []string // certificate subject regular expressions
	issuer          string   // exact OIDC issuer
	issuerRegexp    string   // OIDC issuer regular expression
	trustedRoot     string   // trusted_root.json file
	attestations    []string // required predicate types
	threshold       int
}

func (f *verifyFlags) bind(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringArrayVar(&f.keys, "key", nil, "cosign public key file (PEM) whose signatures are accepted (repeatable)")
	fs.StringArrayVar(&f.identities, "certificate-identity", nil, "accepted keyless signer: certificate subject, e.g. an email or workflow URL (repeatable)")
	fs.StringArrayVar(&f.identityRegexps, "certificate-identity-regexp", nil, "accepted keyless signer: regular expression matching the whole certificate subject (repeatable)")
	fs.StringVar(&f.issuer, "certificate-oidc-issuer", "", "OIDC issuer of the accepted keyless signers, e.g. https://token.actions.githubusercontent.com")
	fs.StringVar(&f.issuerRegexp, "certificate-oidc-issuer-regexp", "", "regular expression matching the whole OIDC issuer of the accepted keyless signers")
	fs.StringVar(&f.trustedRoot, "trusted-root", "", "sigstore trusted_root.json for keyless verification (read only, never fetched)")
	fs.StringArrayVar(&f.attestations, "require-attestation", nil, "predicate type that must be attested by an accepted signer: a URI or slsaprovenance1, spdxjson, cyclonedx (repeatable)")
	fs.IntVar(&f.threshold, "threshold", 1, "how many distinct accepted signers must have signed the digest")
}

// enabled reports whether any verification flag was given. Any flag counts, not only signers, so that a partial
// policy (say --require-attestation alone) is refused by policy() rather than silently skipped.
func (f *verifyFlags) enabled() bool {
	return f.hasSigner() || f.issuer != "" || f.issuerRegexp != "" || f.trustedRoot != "" ||
		len(f.attestations) > 0 || f.threshold != 1
}

func (f *verifyFlags) hasSigner() bool {
	return len(f.keys) > 0 || len(f.identities) > 0 || len(f.identityRegexps) > 0
}

// verifyIfAsked verifies ref when verification flags were given, and returns nil, nil when none were.
func (f *verifyFlags) verifyIfAsked(ctx context.Context, ref string, ro registry.Options) (*signature.Result, error) {
	if !f.enabled() {
		return nil, nil
	}
	p, err := f.policy()
	if err != nil {
		return nil, err
	}
	return verifyImage(ctx, ref, p, ro)
}

// policy reads the files the flags name and builds a validated signature policy.
func (f *verifyFlags) policy() (signature.Policy, error) {
	p := signature.Policy{RequiredAttestations: f.attestations, Threshold: f.threshold}
	if !f.hasSigner() {
		return p, fmt.Errorf("no signer given: use --key, or --certificate-identity with --certificate-oidc-issuer and --trusted-root")
	}
	for _, file := range f.keys {
		pem, err := os.ReadFile(file)
		if err != nil {
			return p, fmt.Errorf("--key: %w", err)
		}
		p.Keys = append(p.Keys, pem)
	}
	keyless := len(f.identities) > 0 || len(f.identityRegexps) > 0
	switch {
	case keyless && f.issuer == "" && f.issuerRegexp == "":
		return p, fmt.Errorf("--certificate-identity needs --certificate-oidc-issuer (or --certificate-oidc-issuer-regexp)")
	case keyless && f.trustedRoot == "":
		return p, fmt.Errorf("--certificate-identity needs --trusted-root: trust material is never fetched")
	case !keyless && (f.issuer != "" || f.issuerRegexp != "" || f.trustedRoot != ""):
		return p, fmt.Errorf("--certificate-oidc-issuer and --trusted-root need --certificate-identity or --certificate-identity-regexp")
	}
	for _, s := range f.identities {
		p.Identities = append(p.Identities, signature.Identity{Issuer: f.issuer, IssuerRegexp: f.issuerRegexp, Subject: s})
	}
	for _, re := range f.identityRegexps {
		p.Identities = append(p.Identities, signature.Identity{Issuer: f.issuer, IssuerRegexp: f.issuerRegexp, SubjectRegexp: re})
	}
	if f.trustedRoot != "" {
		raw, err := os.ReadFile(f.trustedRoot)
		if err != nil {
			return p, fmt.Errorf("--trusted-root: %w", err)
		}
		p.TrustedRoot = raw
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	return p, nil
}
