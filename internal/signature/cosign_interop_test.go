package signature

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	st "github.com/ferrycd/ferry/internal/signature/signaturetest"
)

// Interop with the real cosign CLI (built by hack/cosign.sh from hack/tools/cosign), in both directions: what
// cosign writes, Ferry accepts; what Ferry's test signer writes, cosign accepts. Everything stays on loopback:
// key signing without transparency log, and verification that ignores the log.

// cosignCLI is the real cosign CLI with a key pair (st.Cosign), plus helpers for attestations.
type cosignCLI struct{ *st.Cosign }

func newCosign(t *testing.T) *cosignCLI { return &cosignCLI{st.NewCosign(t)} }

func (c *cosignCLI) writePredicate(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(c.Dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Common flags: key signing with no transparency log and no signing config (nothing fetched), plain HTTP to the
// loopback registry.
var (
	cosignSignFlags   = []string{"--key", "cosign.key", "--tlog-upload=false", "--use-signing-config=false", "--allow-http-registry", "--yes"}
	cosignVerifyFlags = []string{"--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-http-registry"}
)

var cosignPredicates = []struct {
	cosignType, predicateType, file, content string
}{
	{"slsaprovenance1", PredicateSLSAProvenanceV1, "provenance.json",
		`{"buildDefinition":{"buildType":"https://example.test/build","externalParameters":{}},"runDetails":{"builder":{"id":"https://example.test/builder"}}}`},
	{"spdxjson", PredicateSPDX, "sbom.spdx.json",
		`{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"app","documentNamespace":"https://example.test/spdx/app","creationInfo":{"created":"2026-01-01T00:00:00Z","creators":["Tool: test"]}}`},
	{"cyclonedx", PredicateCycloneDX, "sbom.cdx.json",
		`{"bomFormat":"CycloneDX","specVersion":"1.5","version":1}`},
}

func TestCosignSignedVerifiesWithFerry(t *testing.T) {
	c := newCosign(t)
	for _, layout := range []struct {
		name   string
		flags  []string
		source string // where Ferry must have found them
	}{
		{"legacy-tags", []string{"--new-bundle-format=false"}, "tag sha256-"},
		{"bundle-referrers", []string{"--new-bundle-format=true"}, "referrer sha256:"},
	} {
		for _, mode := range registryModes {
			t.Run(layout.name+"/"+mode.name, func(t *testing.T) {
				reg := st.NewRegistry(t, mode.referrers)
				d := reg.PushImage(t, "app")
				c.Run(t, append(append(append([]string{"sign"}, cosignSignFlags...), layout.flags...), d.String())...)
				p := Policy{Keys: [][]byte{c.PublicKey(t)}}
				for _, pr := range cosignPredicates {
					pred := c.writePredicate(t, pr.file, pr.content)
					args := append([]string{"attest", "--type", pr.cosignType, "--predicate", pred}, cosignSignFlags...)
					c.Run(t, append(append(args, layout.flags...), d.String())...)
					p.RequiredAttestations = append(p.RequiredAttestations, pr.cosignType)
				}
				res := verifyOK(t, d, p)
				if len(res.Signers) != 1 || len(res.Attestations) < len(cosignPredicates) {
					t.Fatalf("result = %+v", res)
				}
				for _, a := range append([]Attestation{{Source: res.Signers[0].Source}}, res.Attestations...) {
					if !strings.HasPrefix(a.Source, layout.source) {
						t.Errorf("found at %q, want %q…", a.Source, layout.source)
					}
				}

				// The same signatures do not vouch for another image, nor for another key.
				verifyFails(t, d.String(), Policy{Keys: [][]byte{st.NewKeySigner(t).PublicKeyPEM}}, KindUntrusted, "key mismatch")
			})
		}
	}
}

func TestCosignLegacySignatureInReferrers(t *testing.T) {
	c := newCosign(t)
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	c.Run(t, append(append([]string{"sign"}, cosignSignFlags...), "--new-bundle-format=false", "--registry-referrers-mode=oci-1-1", d.String())...)
	res := verifyOK(t, d, Policy{Keys: [][]byte{c.PublicKey(t)}})
	if !strings.HasPrefix(res.Signers[0].Source, "referrer ") {
		t.Fatalf("signature found at %q, want an OCI 1.1 referrer", res.Signers[0].Source)
	}
}

func TestFerrySignedVerifiesWithCosign(t *testing.T) {
	c := newCosign(t)
	k := st.NewKeySigner(t)
	if err := os.WriteFile(filepath.Join(c.Dir, "cosign.pub"), k.PublicKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			reg := st.NewRegistry(t, mode.referrers)

			legacy := reg.PushImage(t, "legacy")
			st.PushLegacy(t, legacy, "sig", k.LegacySignature(t, st.SimpleSigningPayload(legacy)))
			st.PushLegacy(t, legacy, "att", k.LegacyAttestation(t, st.Statement(legacy, PredicateSLSAProvenanceV1)))
			cosignVerify(t, c, legacy, "--new-bundle-format=false")

			bundled := reg.PushImage(t, "bundled")
			st.PushBundle(t, bundled, k.Bundle(t, st.Statement(bundled, predicateCosignSign)))
			st.PushBundle(t, bundled, k.Bundle(t, st.Statement(bundled, PredicateSLSAProvenanceV1)))
			cosignVerify(t, c, bundled, "--new-bundle-format=true")

			// And cosign refuses what Ferry refuses: a signature over another digest.
			forged := reg.PushImage(t, "forged")
			st.PushLegacy(t, forged, "sig", k.LegacySignature(t, st.SimpleSigningPayload(legacy)))
			if out, err := c.Try(append(append([]string{"verify"}, cosignVerifyFlags...), "--new-bundle-format=false", forged.String())...); err == nil {
				t.Fatalf("cosign verified a signature over another digest:\n%s", out)
			}
		})
	}
}

// cosignVerify checks the image signature and its SLSA provenance attestation with cosign.
func cosignVerify(t *testing.T, c *cosignCLI, d name.Digest, layoutFlag string) {
	t.Helper()
	c.Run(t, append(append([]string{"verify"}, cosignVerifyFlags...), layoutFlag, d.String())...)
	c.Run(t, append(append([]string{"verify-attestation", "--type", "slsaprovenance1"}, cosignVerifyFlags...), layoutFlag, d.String())...)
}

// TestFerryKeylessVerifiesWithCosign checks that the keyless bundles and legacy signatures of the test Sigstore
// are what cosign accepts under the same trusted root, so the keyless tests above exercise real-world formats.
func TestFerryKeylessVerifiesWithCosign(t *testing.T) {
	c := newCosign(t)
	ks := st.NewKeyless(t)
	rootFile := c.writePredicate(t, "trusted_root.json", string(ks.TrustedRootJSON))
	reg := st.NewRegistry(t, true)
	flags := []string{"--trusted-root", rootFile, "--certificate-identity", st.Subject,
		"--certificate-oidc-issuer", st.Issuer, "--insecure-ignore-sct", "--allow-http-registry"}

	bundled := reg.PushImage(t, "bundled")
	st.PushBundle(t, bundled, ks.Bundle(t, st.Subject, st.Issuer, st.Statement(bundled, predicateCosignSign)))
	c.Run(t, append(append([]string{"verify"}, flags...), "--new-bundle-format=true", bundled.String())...)

	legacy := reg.PushImage(t, "legacy")
	st.PushLegacy(t, legacy, "sig", ks.LegacySignature(t, st.Subject, st.Issuer, st.SimpleSigningPayload(legacy)))
	c.Run(t, append(append([]string{"verify"}, flags...), "--new-bundle-format=false", legacy.String())...)

	// The same signatures under another identity are refused by cosign too.
	other := append([]string{"verify", "--trusted-root", rootFile, "--certificate-identity", "someone@example.test",
		"--certificate-oidc-issuer", st.Issuer, "--insecure-ignore-sct", "--allow-http-registry"}, bundled.String())
	if out, err := c.Try(other...); err == nil {
		t.Fatalf("cosign accepted another identity:\n%s", out)
	}
}

// TestCosignOnDistribution runs both directions against the CNCF distribution registry, which has no referrers
// API: bundles reach Ferry and cosign through the sha256-<hex> tag fallback.
func TestCosignOnDistribution(t *testing.T) {
	c := newCosign(t)
	reg := st.StartDistribution(t)
	pred := cosignPredicates[0]
	predFile := c.writePredicate(t, pred.file, pred.content)
	for _, layout := range []string{"--new-bundle-format=false", "--new-bundle-format=true"} {
		t.Run(layout, func(t *testing.T) {
			d := reg.PushImage(t, "cosign-signed"+strings.TrimPrefix(layout, "--new-bundle-format="))
			c.Run(t, append(append([]string{"sign"}, cosignSignFlags...), layout, d.String())...)
			c.Run(t, append(append([]string{"attest", "--type", pred.cosignType, "--predicate", predFile}, cosignSignFlags...), layout, d.String())...)
			verifyOK(t, d, Policy{Keys: [][]byte{c.PublicKey(t)}, RequiredAttestations: []string{pred.predicateType}})
		})
	}

	k := st.NewKeySigner(t)
	keyFile := c.writePredicate(t, "ferry.pub", string(k.PublicKeyPEM))
	d := reg.PushImage(t, "ferry-signed")
	st.PushBundle(t, d, k.Bundle(t, st.Statement(d, predicateCosignSign)))
	c.Run(t, "verify", "--key", keyFile, "--insecure-ignore-tlog=true", "--allow-http-registry", "--new-bundle-format=true", d.String())
}
