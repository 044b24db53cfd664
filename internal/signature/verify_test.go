package signature

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// Both registry flavours: with the referrers API, and without it (referrers found through the sha256-<hex> tag).
var registryModes = []struct {
	name      string
	referrers bool
}{{"referrers-api", true}, {"tag-fallback", false}}

func TestKeySignedLegacyTag(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			reg := newTestRegistry(t, mode.referrers)
			d := reg.pushImage(t, "app")
			k := newKeySigner(t)
			pushLegacy(t, d, "sig", k.legacySignature(t, simpleSigningPayload(d)))

			res := verifyOK(t, d, Policy{Keys: [][]byte{k.pubPEM}})
			if len(res.Signers) != 1 || res.Signers[0].KeyFingerprint != k.fingerprint() {
				t.Fatalf("signers = %+v, want key %s", res.Signers, k.fingerprint())
			}
			if !strings.Contains(res.Signers[0].Source, ".sig") {
				t.Errorf("signer source %q does not name the .sig tag", res.Signers[0].Source)
			}
			if !strings.Contains(res.Summary(), "key "+k.fingerprint()) {
				t.Errorf("summary %q does not name the key", res.Summary())
			}
		})
	}
}

func TestKeySignedBundleReferrer(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			reg := newTestRegistry(t, mode.referrers)
			d := reg.pushImage(t, "app")
			k := newKeySigner(t)
			ref := pushBundle(t, d, k.bundle(t, statementJSON(d, predicateCosignSign)))

			res := verifyOK(t, d, Policy{Keys: [][]byte{k.pubPEM}})
			if len(res.Signers) != 1 || res.Signers[0].Source != "referrer "+ref.String() {
				t.Fatalf("signers = %+v, want one from referrer %s", res.Signers, ref)
			}
			if len(res.Attestations) != 0 {
				t.Errorf("a cosign sign bundle was counted as an attestation: %+v", res.Attestations)
			}
		})
	}
}

func TestKeylessBundleAndLegacy(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			reg := newTestRegistry(t, mode.referrers)
			ks := newKeyless(t)

			bundled := reg.pushImage(t, "bundled")
			pushBundle(t, bundled, ks.bundle(t, testSubject, testIssuer, statementJSON(bundled, predicateCosignSign)))
			res := verifyOK(t, bundled, ks.policy())
			if s := res.Signers[0]; s.Subject != testSubject || s.Issuer != testIssuer {
				t.Fatalf("signer = %+v, want %s from %s", s, testSubject, testIssuer)
			}

			legacy := reg.pushImage(t, "legacy")
			pushLegacy(t, legacy, "sig", ks.legacySignature(t, testSubject, testIssuer, simpleSigningPayload(legacy)))
			res = verifyOK(t, legacy, ks.policy())
			if s := res.Signers[0]; s.Subject != testSubject || s.Issuer != testIssuer {
				t.Fatalf("signer = %+v, want %s from %s", s, testSubject, testIssuer)
			}
		})
	}
}

func TestKeylessIdentityRegexpIsAnchored(t *testing.T) {
	reg := newTestRegistry(t, true)
	ks := newKeyless(t)
	d := reg.pushImage(t, "app")
	pushBundle(t, d, ks.bundle(t, testSubject, testIssuer, statementJSON(d, predicateCosignSign)))

	verifyOK(t, d, ks.policy(Identity{IssuerRegexp: `https://issuer\.example\.test`, SubjectRegexp: `.*@example\.test`}))
	verifyFails(t, d.String(), ks.policy(Identity{Issuer: testIssuer, SubjectRegexp: `ci@example`}),
		KindUntrusted, "certificate identity mismatch", testSubject)
}

func TestKeylessIdentityMismatch(t *testing.T) {
	reg := newTestRegistry(t, false)
	ks := newKeyless(t)
	d := reg.pushImage(t, "app")
	pushBundle(t, d, ks.bundle(t, testSubject, testIssuer, statementJSON(d, predicateCosignSign)))
	pushLegacy(t, d, "sig", ks.legacySignature(t, testSubject, testIssuer, simpleSigningPayload(d)))

	for name, id := range map[string]Identity{
		"subject": {Issuer: testIssuer, Subject: "someone-else@example.test"},
		"issuer":  {Issuer: "https://other-issuer.example.test", Subject: testSubject},
	} {
		t.Run(name, func(t *testing.T) {
			e := verifyFails(t, d.String(), ks.policy(id), KindUntrusted, "certificate identity mismatch")
			if len(e.Reasons) != 2 {
				t.Fatalf("reasons = %q, want one per signature (legacy and referrer)", e.Reasons)
			}
			if !strings.HasPrefix(e.Reasons[0], "signature 1 (tag sha256-") || !strings.HasPrefix(e.Reasons[1], "signature 2 (referrer sha256:") {
				t.Errorf("reasons do not name each candidate: %q", e.Reasons)
			}
		})
	}
}

func TestKeylessUntrustedRoot(t *testing.T) {
	reg := newTestRegistry(t, true)
	signer, other := newKeyless(t), newKeyless(t)
	d := reg.pushImage(t, "app")
	pushBundle(t, d, signer.bundle(t, testSubject, testIssuer, statementJSON(d, predicateCosignSign)))
	verifyFails(t, d.String(), other.policy(), KindUntrusted, "certificate not trusted")
}

func TestUnsigned(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			reg := newTestRegistry(t, mode.referrers)
			d := reg.pushImage(t, "app")
			verifyFails(t, d.String(), Policy{Keys: [][]byte{newKeySigner(t).pubPEM}}, KindUnsigned, "no signature found")
		})
	}
}

func TestWrongKey(t *testing.T) {
	reg := newTestRegistry(t, true)
	d := reg.pushImage(t, "app")
	signer, accepted := newKeySigner(t), newKeySigner(t)
	pushLegacy(t, d, "sig", signer.legacySignature(t, simpleSigningPayload(d)))
	ref := pushBundle(t, d, signer.bundle(t, statementJSON(d, predicateCosignSign)))

	e := verifyFails(t, d.String(), Policy{Keys: [][]byte{accepted.pubPEM}}, KindUntrusted, "key mismatch")
	want := fmt.Sprintf("signature 2 (referrer %s): key mismatch", ref)
	if len(e.Reasons) != 2 || !strings.HasPrefix(e.Reasons[1], want) {
		t.Fatalf("reasons = %q, want the second to start with %q", e.Reasons, want)
	}
}

func TestKeyedSignatureButKeylessPolicy(t *testing.T) {
	reg := newTestRegistry(t, true)
	d := reg.pushImage(t, "app")
	pushBundle(t, d, newKeySigner(t).bundle(t, statementJSON(d, predicateCosignSign)))
	verifyFails(t, d.String(), newKeyless(t).policy(), KindUntrusted, "signed with a key, but the policy accepts no keys")
}

func TestSignatureOverAnotherDigest(t *testing.T) {
	reg := newTestRegistry(t, false)
	d := reg.pushImage(t, "app")
	other := reg.pushImage(t, "other")
	k := newKeySigner(t)
	// Both layouts carry a valid signature by the accepted key, but over the other image's digest.
	pushLegacy(t, d, "sig", k.legacySignature(t, simpleSigningPayload(other)))
	pushBundle(t, d, k.bundle(t, statementJSON(other, predicateCosignSign)))

	e := verifyFails(t, d.String(), Policy{Keys: [][]byte{k.pubPEM}}, KindDigestMismatch, other.DigestStr())
	if len(e.Reasons) != 2 {
		t.Fatalf("reasons = %q, want two", e.Reasons)
	}
}

func TestTamperedPayload(t *testing.T) {
	reg := newTestRegistry(t, true)
	d := reg.pushImage(t, "app")
	k := newKeySigner(t)
	l := k.legacySignature(t, simpleSigningPayload(d))
	l.content = []byte(strings.Replace(string(l.content), `"optional":null`, `"optional":{"tampered":"yes"}`, 1))
	pushLegacy(t, d, "sig", l)
	verifyFails(t, d.String(), Policy{Keys: [][]byte{k.pubPEM}}, KindUntrusted, "key mismatch", "altered content")
}

func TestMalformedSignatureLayerDoesNotHideAGoodOne(t *testing.T) {
	reg := newTestRegistry(t, true)
	d := reg.pushImage(t, "app")
	k := newKeySigner(t)
	bad := k.legacySignature(t, simpleSigningPayload(d))
	bad.annotations[annotationSignature] = "not base64!"
	pushLegacy(t, d, "sig", bad)
	e := verifyFails(t, d.String(), Policy{Keys: [][]byte{k.pubPEM}}, KindUntrusted, "malformed", annotationSignature)
	if len(e.Reasons) != 1 {
		t.Fatalf("reasons = %q", e.Reasons)
	}
	pushLegacy(t, d, "sig", k.legacySignature(t, simpleSigningPayload(d)))
	verifyOK(t, d, Policy{Keys: [][]byte{k.pubPEM}})
}

func TestThresholdCountsDistinctSigners(t *testing.T) {
	reg := newTestRegistry(t, true)
	d := reg.pushImage(t, "app")
	a, b := newKeySigner(t), newKeySigner(t)
	p := Policy{Keys: [][]byte{a.pubPEM, b.pubPEM}, Threshold: 2}

	// The same key signing twice, in both layouts, is still one signer.
	pushLegacy(t, d, "sig", a.legacySignature(t, simpleSigningPayload(d)))
	pushBundle(t, d, a.bundle(t, statementJSON(d, predicateCosignSign)))
	verifyFails(t, d.String(), p, KindUntrusted, "1 of 2 required distinct signers")

	pushLegacy(t, d, "sig", b.legacySignature(t, simpleSigningPayload(d)))
	res := verifyOK(t, d, p)
	got := map[string]bool{}
	for _, s := range res.Signers {
		got[s.KeyFingerprint] = true
	}
	if len(res.Signers) != 2 || !got[a.fingerprint()] || !got[b.fingerprint()] {
		t.Fatalf("signers = %+v, want both keys", res.Signers)
	}
}

func TestThresholdMixesKeysAndIdentities(t *testing.T) {
	reg := newTestRegistry(t, false)
	d := reg.pushImage(t, "app")
	k, ks := newKeySigner(t), newKeyless(t)
	pushLegacy(t, d, "sig", k.legacySignature(t, simpleSigningPayload(d)))
	pushBundle(t, d, ks.bundle(t, testSubject, testIssuer, statementJSON(d, predicateCosignSign)))
	p := ks.policy()
	p.Keys, p.Threshold = [][]byte{k.pubPEM}, 2
	if res := verifyOK(t, d, p); len(res.Signers) != 2 {
		t.Fatalf("signers = %+v, want the key and the identity", res.Signers)
	}
}

func TestRequiredAttestations(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			reg := newTestRegistry(t, mode.referrers)
			d := reg.pushImage(t, "app")
			k, ks := newKeySigner(t), newKeyless(t)
			pushLegacy(t, d, "sig", k.legacySignature(t, simpleSigningPayload(d)))
			// SLSA provenance in the legacy .att tag, SPDX as a key-signed bundle, CycloneDX as a keyless bundle.
			pushLegacy(t, d, "att", k.legacyAttestation(t, statementJSON(d, PredicateSLSAProvenanceV1)))
			pushBundle(t, d, k.bundle(t, statementJSON(d, PredicateSPDX)))
			pushBundle(t, d, ks.bundle(t, testSubject, testIssuer, statementJSON(d, PredicateCycloneDX)))

			p := ks.policy()
			p.Keys = [][]byte{k.pubPEM}
			p.RequiredAttestations = []string{"slsaprovenance1", "spdxjson", PredicateCycloneDX}
			res := verifyOK(t, d, p)
			found := map[string]Signer{}
			for _, a := range res.Attestations {
				found[a.PredicateType] = a.Signer
			}
			if found[PredicateSLSAProvenanceV1].KeyFingerprint != k.fingerprint() ||
				found[PredicateSPDX].KeyFingerprint != k.fingerprint() ||
				found[PredicateCycloneDX].Subject != testSubject {
				t.Fatalf("attestations = %+v", res.Attestations)
			}
			if !strings.Contains(res.Summary(), PredicateCycloneDX) {
				t.Errorf("summary %q does not list the attestations", res.Summary())
			}
		})
	}
}

func TestMissingAttestation(t *testing.T) {
	reg := newTestRegistry(t, true)
	d := reg.pushImage(t, "app")
	k := newKeySigner(t)
	pushLegacy(t, d, "sig", k.legacySignature(t, simpleSigningPayload(d)))
	pushLegacy(t, d, "att", k.legacyAttestation(t, statementJSON(d, PredicateSPDX)))
	p := Policy{Keys: [][]byte{k.pubPEM}, RequiredAttestations: []string{PredicateSLSAProvenanceV1}}
	verifyFails(t, d.String(), p, KindMissingAttestation, "no attestation of type "+PredicateSLSAProvenanceV1+" found")
}

func TestAttestationForAnotherSubject(t *testing.T) {
	reg := newTestRegistry(t, false)
	d := reg.pushImage(t, "app")
	other := reg.pushImage(t, "other")
	k := newKeySigner(t)
	pushLegacy(t, d, "sig", k.legacySignature(t, simpleSigningPayload(d)))
	pushLegacy(t, d, "att", k.legacyAttestation(t, statementJSON(other, PredicateSLSAProvenanceV1)))
	pushBundle(t, d, k.bundle(t, statementJSON(other, PredicateSLSAProvenanceV1)))
	p := Policy{Keys: [][]byte{k.pubPEM}, RequiredAttestations: []string{PredicateSLSAProvenanceV1}}
	e := verifyFails(t, d.String(), p, KindMissingAttestation, "statement subject is "+other.DigestStr())
	if len(e.Reasons) != 2 || !strings.HasPrefix(e.Reasons[0], "attestation 1 (tag sha256-") {
		t.Fatalf("reasons = %q", e.Reasons)
	}
}

func TestAttestationByUntrustedSigner(t *testing.T) {
	reg := newTestRegistry(t, true)
	d := reg.pushImage(t, "app")
	k, stranger := newKeySigner(t), newKeySigner(t)
	pushLegacy(t, d, "sig", k.legacySignature(t, simpleSigningPayload(d)))
	pushBundle(t, d, stranger.bundle(t, statementJSON(d, PredicateSLSAProvenanceV1)))
	p := Policy{Keys: [][]byte{k.pubPEM}, RequiredAttestations: []string{PredicateSLSAProvenanceV1}}
	verifyFails(t, d.String(), p, KindMissingAttestation, "attestation 1 (referrer sha256:", "key mismatch")
}

func TestImageNotFound(t *testing.T) {
	reg := newTestRegistry(t, true)
	reg.pushImage(t, "app")
	missing := reg.host + "/app@sha256:" + strings.Repeat("ab", 32)
	verifyFails(t, missing, Policy{Keys: [][]byte{newKeySigner(t).pubPEM}}, KindNotFound, "not found")
	verifyFails(t, reg.host+"/nothing@sha256:"+strings.Repeat("cd", 32), Policy{Keys: [][]byte{newKeySigner(t).pubPEM}}, KindNotFound)
}

func TestMalformedInput(t *testing.T) {
	key := newKeySigner(t).pubPEM
	ks := newKeyless(t)
	good := "127.0.0.1:5000/app@sha256:" + strings.Repeat("ab", 32)
	cases := []struct {
		name string
		ref  string
		p    Policy
		want string
	}{
		{"tag instead of digest", "127.0.0.1:5000/app:v1", Policy{Keys: [][]byte{key}}, "digest is required"},
		{"tag and digest", "127.0.0.1:5000/app:v1@sha256:" + strings.Repeat("ab", 32), Policy{Keys: [][]byte{key}}, "both a tag and a digest"},
		{"short digest", "127.0.0.1:5000/app@sha256:abc", Policy{Keys: [][]byte{key}}, "image reference"},
		{"empty reference", "", Policy{Keys: [][]byte{key}}, "empty"},
		{"no signer", good, Policy{}, "accepts no signer"},
		{"key not PEM", good, Policy{Keys: [][]byte{[]byte("ssh-ed25519 AAAA")}}, "policy key 1"},
		{"key is a private key", good, Policy{Keys: [][]byte{[]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")}}, "policy key 1"},
		{"identity without root", good, Policy{Identities: []Identity{{Issuer: testIssuer, Subject: testSubject}}}, "need a trusted root"},
		{"root without identity", good, Policy{Keys: [][]byte{key}, TrustedRoot: ks.rootJSON}, "no keyless identity"},
		{"root not JSON", good, Policy{Identities: []Identity{{Issuer: testIssuer, Subject: testSubject}}, TrustedRoot: []byte("{nope")}, "trusted root"},
		{"identity without subject", good, Policy{Identities: []Identity{{Issuer: testIssuer}}, TrustedRoot: ks.rootJSON}, "subject"},
		{"identity with bad regexp", good, Policy{Identities: []Identity{{Issuer: testIssuer, SubjectRegexp: "("}}, TrustedRoot: ks.rootJSON}, "policy identity 1"},
		{"negative threshold", good, Policy{Keys: [][]byte{key}, Threshold: -1}, "negative"},
		{"threshold above keys", good, Policy{Keys: [][]byte{key}, Threshold: 2}, "exceeds"},
		{"unknown predicate", good, Policy{Keys: [][]byte{key}, RequiredAttestations: []string{"provenance"}}, "provenance"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			verifyFails(t, c.ref, c.p, KindMalformed, c.want)
		})
	}
}

func TestRegistryFailureHasNoKind(t *testing.T) {
	reg := newTestRegistry(t, true)
	d := reg.pushImage(t, "app")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Verify(ctx, d.String(), Policy{Keys: [][]byte{newKeySigner(t).pubPEM}}, nil)
	if err == nil || KindOf(err) != "" {
		t.Fatalf("Verify with a cancelled context = %v (kind %q), want a retryable error of no kind", err, KindOf(err))
	}
}

func TestParseDigestReference(t *testing.T) {
	d, err := ParseDigestReference("localhost:5000/team/app@sha256:" + strings.Repeat("0f", 32))
	if err != nil {
		t.Fatal(err)
	}
	if d.RegistryStr() != "localhost:5000" || d.RepositoryStr() != "team/app" {
		t.Fatalf("parsed %s as registry %q repository %q", d, d.RegistryStr(), d.RepositoryStr())
	}
	_ = base64.StdEncoding
	_ = name.Digest{}
}
