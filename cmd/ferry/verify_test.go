package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/signature"
	st "github.com/ferrycd/ferry/internal/signature/signaturetest"
)

// writeFile writes content into the test's temporary folder and returns the path.
func writeFile(t *testing.T, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerifyCommandWithKey(t *testing.T) {
	reg := st.NewRegistry(t, false)
	d := reg.PushImage(t, "team/app")
	k := st.NewKeySigner(t)
	st.PushLegacy(t, d, "sig", k.LegacySignature(t, st.SimpleSigningPayload(d)))
	st.PushLegacy(t, d, "att", k.LegacyAttestation(t, st.Statement(d, signature.PredicateSLSAProvenanceV1)))
	key := writeFile(t, "cosign.pub", k.PublicKeyPEM)

	out, err := runFerry(t, "verify", d.String(), "--key", key, "--require-attestation", "slsaprovenance1")
	if err != nil {
		t.Fatalf("ferry verify: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "key "+k.Fingerprint()) || !strings.Contains(lines[0], signature.PredicateSLSAProvenanceV1) {
		t.Fatalf("output = %q, want one line naming the key and the attestation", out)
	}
}

func TestVerifyCommandKeyless(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "team/app")
	ks := st.NewKeyless(t)
	st.PushBundle(t, d, ks.Bundle(t, st.Subject, st.Issuer, st.Statement(d, st.PredicateCosignSign)))
	root := writeFile(t, "trusted_root.json", ks.TrustedRootJSON)

	out, err := runFerry(t, "verify", d.String(), "--trusted-root", root,
		"--certificate-oidc-issuer", st.Issuer, "--certificate-identity-regexp", `.*@example\.test`)
	if err != nil {
		t.Fatalf("ferry verify: %v\n%s", err, out)
	}
	if !strings.Contains(out, st.Subject) {
		t.Fatalf("output %q does not name the signer %s", out, st.Subject)
	}

	_, err = runFerry(t, "verify", d.String(), "--trusted-root", root,
		"--certificate-oidc-issuer", st.Issuer, "--certificate-identity", "someone@example.test")
	if err == nil || signature.KindOf(err) != signature.KindUntrusted || !strings.Contains(err.Error(), "\n  - signature 1 (referrer sha256:") {
		t.Fatalf("ferry verify with another identity = %v, want an Untrusted error listing the referrer", err)
	}
}

func TestVerifyCommandRejects(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "team/app")
	signer, other := st.NewKeySigner(t), st.NewKeySigner(t)
	st.PushLegacy(t, d, "sig", signer.LegacySignature(t, st.SimpleSigningPayload(d)))
	unsigned := reg.PushImage(t, "team/unsigned")
	otherKey := writeFile(t, "other.pub", other.PublicKeyPEM)
	goodKey := writeFile(t, "cosign.pub", signer.PublicKeyPEM)
	ks := st.NewKeyless(t)
	root := writeFile(t, "trusted_root.json", ks.TrustedRootJSON)

	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"wrong key", []string{d.String(), "--key", otherKey}, []string{"Untrusted", "\n  - signature 1 (tag sha256-", "key mismatch"}},
		{"unsigned", []string{unsigned.String(), "--key", goodKey}, []string{"Unsigned", "no signature found"}},
		{"missing attestation", []string{d.String(), "--key", goodKey, "--require-attestation", "cyclonedx"}, []string{"MissingAttestation", signature.PredicateCycloneDX}},
		{"tag", []string{reg.Host + "/team/app:latest", "--key", goodKey}, []string{"digest is required"}},
		{"no signer", []string{d.String()}, []string{"no signer given", "--key"}},
		{"missing key file", []string{d.String(), "--key", filepath.Join(t.TempDir(), "absent.pub")}, []string{"--key", "no such file"}},
		{"not a key", []string{d.String(), "--key", root}, []string{"policy key 1"}},
		{"identity without issuer", []string{d.String(), "--certificate-identity", st.Subject, "--trusted-root", root}, []string{"--certificate-oidc-issuer"}},
		{"identity without root", []string{d.String(), "--certificate-identity", st.Subject, "--certificate-oidc-issuer", st.Issuer}, []string{"--trusted-root"}},
		{"bad trusted root", []string{d.String(), "--certificate-identity", st.Subject, "--certificate-oidc-issuer", st.Issuer, "--trusted-root", goodKey}, []string{"trusted root"}},
		{"threshold above keys", []string{d.String(), "--key", goodKey, "--threshold", "2"}, []string{"threshold 2"}},
		{"unknown attestation type", []string{d.String(), "--key", goodKey, "--require-attestation", "sbom"}, []string{`"sbom"`}},
		{"image not found", []string{reg.Host + "/team/app@sha256:" + strings.Repeat("0", 64), "--key", goodKey}, []string{"NotFound"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := runFerry(t, append([]string{"verify"}, c.args...)...)
			if err == nil {
				t.Fatalf("ferry verify %v passed:\n%s", c.args, out)
			}
			if out != "" && strings.Contains(out, "verified") {
				t.Errorf("failed verification printed a success line: %q", out)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestCopyVerifiesSourceAndDestination(t *testing.T) {
	src, dst := st.NewRegistry(t, true), st.NewRegistry(t, false)
	d := src.PushImage(t, "team/app")
	k, ks := st.NewKeySigner(t), st.NewKeyless(t)
	st.PushLegacy(t, d, "sig", k.LegacySignature(t, st.SimpleSigningPayload(d)))
	st.PushBundle(t, d, ks.Bundle(t, st.Subject, st.Issuer, st.Statement(d, signature.PredicateSPDX)))
	key := writeFile(t, "cosign.pub", k.PublicKeyPEM)
	root := writeFile(t, "trusted_root.json", ks.TrustedRootJSON)

	out, err := runFerry(t, "copy", d.String(), dst.Host+"/prod/app", "--key", key, "--trusted-root", root,
		"--certificate-oidc-issuer", st.Issuer, "--certificate-identity", st.Subject, "--require-attestation", "spdxjson")
	if err != nil {
		t.Fatalf("ferry copy --key: %v\n%s", err, out)
	}
	dstRef := dst.Host + "/prod/app@" + d.DigestStr()
	if !strings.Contains(out, "source verified "+d.String()) || !strings.Contains(out, "destination verified "+dstRef) {
		t.Fatalf("output does not report both verifications:\n%s", out)
	}
}

func TestCopyRefusesUnverifiedSource(t *testing.T) {
	src, dst := st.NewRegistry(t, true), st.NewRegistry(t, true)
	d := src.PushImage(t, "team/app")
	signer, other := st.NewKeySigner(t), st.NewKeySigner(t)
	st.PushLegacy(t, d, "sig", signer.LegacySignature(t, st.SimpleSigningPayload(d)))
	otherKey := writeFile(t, "other.pub", other.PublicKeyPEM)

	for name, args := range map[string][]string{
		"wrong key":      {"--key", otherKey},
		"partial policy": {"--require-attestation", "slsaprovenance1"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := runFerry(t, append([]string{"copy", d.String(), dst.Host + "/prod/app"}, args...)...)
			if err == nil || !strings.Contains(err.Error(), "nothing copied") {
				t.Fatalf("ferry copy = %v, want a refusal before copying\n%s", err, out)
			}
			_, err = runFerry(t, "verify", dst.Host+"/prod/app@"+d.DigestStr(), "--key", otherKey)
			if signature.KindOf(err) != signature.KindNotFound {
				t.Fatalf("destination after a refused copy: %v, want NotFound", err)
			}
		})
	}
}
