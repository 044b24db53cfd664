package signature

import (
	"crypto"
	"crypto/elliptic"
	"encoding/base64"
	"github.com/google/go-containerregistry/pkg/name"
	"sync"

	"context"
	"fmt"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"strings"
	"testing"

	st "github.com/ferrycd/ferry/internal/signature/signaturetest"
)

// Both registry flavours: with the referrers API, and without it (referrers found through the sha256-<hex> tag).
var registryModes = []struct {
	name      string
	referrers bool
}{{"referrers-api", true}, {"tag-fallback", false}}

func TestKeySignedLegacyTag(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			reg := st.NewRegistry(t, mode.referrers)
			d := reg.PushImage(t, "app")
			k := st.NewKeySigner(t)
			st.PushLegacy(t, d, "sig", k.LegacySignature(t, st.SimpleSigningPayload(d)))

			res := verifyOK(t, d, Policy{Keys: [][]byte{k.PublicKeyPEM}})
			if len(res.Signers) != 1 || res.Signers[0].KeyFingerprint != k.Fingerprint() {
				t.Fatalf("signers = %+v, want key %s", res.Signers, k.Fingerprint())
			}
			if !strings.Contains(res.Signers[0].Source, ".sig") {
				t.Errorf("signer source %q does not name the .sig tag", res.Signers[0].Source)
			}
			if !strings.Contains(res.Summary(), "key "+k.Fingerprint()) {
				t.Errorf("summary %q does not name the key", res.Summary())
			}
		})
	}
}

func TestKeySignedBundleReferrer(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			reg := st.NewRegistry(t, mode.referrers)
			d := reg.PushImage(t, "app")
			k := st.NewKeySigner(t)
			ref := st.PushBundle(t, d, k.Bundle(t, st.Statement(d, predicateCosignSign)))

			res := verifyOK(t, d, Policy{Keys: [][]byte{k.PublicKeyPEM}})
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
			reg := st.NewRegistry(t, mode.referrers)
			ks := st.NewKeyless(t)

			bundled := reg.PushImage(t, "bundled")
			st.PushBundle(t, bundled, ks.Bundle(t, st.Subject, st.Issuer, st.Statement(bundled, predicateCosignSign)))
			res := verifyOK(t, bundled, keylessPolicy(ks))
			if s := res.Signers[0]; s.Subject != st.Subject || s.Issuer != st.Issuer {
				t.Fatalf("signer = %+v, want %s from %s", s, st.Subject, st.Issuer)
			}

			legacy := reg.PushImage(t, "legacy")
			st.PushLegacy(t, legacy, "sig", ks.LegacySignature(t, st.Subject, st.Issuer, st.SimpleSigningPayload(legacy)))
			res = verifyOK(t, legacy, keylessPolicy(ks))
			if s := res.Signers[0]; s.Subject != st.Subject || s.Issuer != st.Issuer {
				t.Fatalf("signer = %+v, want %s from %s", s, st.Subject, st.Issuer)
			}
		})
	}
}

func TestKeylessIdentityRegexpIsAnchored(t *testing.T) {
	reg := st.NewRegistry(t, true)
	ks := st.NewKeyless(t)
	d := reg.PushImage(t, "app")
	st.PushBundle(t, d, ks.Bundle(t, st.Subject, st.Issuer, st.Statement(d, predicateCosignSign)))

	verifyOK(t, d, keylessPolicy(ks, Identity{IssuerRegexp: `https://issuer\.example\.test`, SubjectRegexp: `.*@example\.test`}))
	verifyFails(t, d.String(), keylessPolicy(ks, Identity{Issuer: st.Issuer, SubjectRegexp: `ci@example`}),
		KindUntrusted, "certificate identity mismatch", st.Subject)
}

func TestKeylessIdentityMismatch(t *testing.T) {
	reg := st.NewRegistry(t, false)
	ks := st.NewKeyless(t)
	d := reg.PushImage(t, "app")
	st.PushBundle(t, d, ks.Bundle(t, st.Subject, st.Issuer, st.Statement(d, predicateCosignSign)))
	st.PushLegacy(t, d, "sig", ks.LegacySignature(t, st.Subject, st.Issuer, st.SimpleSigningPayload(d)))

	for name, id := range map[string]Identity{
		"subject": {Issuer: st.Issuer, Subject: "someone-else@example.test"},
		"issuer":  {Issuer: "https://other-issuer.example.test", Subject: st.Subject},
	} {
		t.Run(name, func(t *testing.T) {
			e := verifyFails(t, d.String(), keylessPolicy(ks, id), KindUntrusted, "certificate identity mismatch")
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
	reg := st.NewRegistry(t, true)
	signer, other := st.NewKeyless(t), st.NewKeyless(t)
	d := reg.PushImage(t, "app")
	st.PushBundle(t, d, signer.Bundle(t, st.Subject, st.Issuer, st.Statement(d, predicateCosignSign)))
	verifyFails(t, d.String(), keylessPolicy(other), KindUntrusted, "certificate not trusted")
}

func TestUnsigned(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			reg := st.NewRegistry(t, mode.referrers)
			d := reg.PushImage(t, "app")
			verifyFails(t, d.String(), Policy{Keys: [][]byte{st.NewKeySigner(t).PublicKeyPEM}}, KindUnsigned, "no signature found")
		})
	}
}

func TestWrongKey(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	signer, accepted := st.NewKeySigner(t), st.NewKeySigner(t)
	st.PushLegacy(t, d, "sig", signer.LegacySignature(t, st.SimpleSigningPayload(d)))
	ref := st.PushBundle(t, d, signer.Bundle(t, st.Statement(d, predicateCosignSign)))

	e := verifyFails(t, d.String(), Policy{Keys: [][]byte{accepted.PublicKeyPEM}}, KindUntrusted, "key mismatch")
	want := fmt.Sprintf("signature 2 (referrer %s): key mismatch", ref)
	if len(e.Reasons) != 2 || !strings.HasPrefix(e.Reasons[1], want) {
		t.Fatalf("reasons = %q, want the second to start with %q", e.Reasons, want)
	}
}

func TestKeyedSignatureButKeylessPolicy(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	st.PushBundle(t, d, st.NewKeySigner(t).Bundle(t, st.Statement(d, predicateCosignSign)))
	verifyFails(t, d.String(), keylessPolicy(st.NewKeyless(t)), KindUntrusted, "signed with a key, but the policy accepts no keys")
}

func TestSignatureOverAnotherDigest(t *testing.T) {
	reg := st.NewRegistry(t, false)
	d := reg.PushImage(t, "app")
	other := reg.PushImage(t, "other")
	k := st.NewKeySigner(t)
	// Both layouts carry a valid signature by the accepted key, but over the other image's digest.
	st.PushLegacy(t, d, "sig", k.LegacySignature(t, st.SimpleSigningPayload(other)))
	st.PushBundle(t, d, k.Bundle(t, st.Statement(other, predicateCosignSign)))

	e := verifyFails(t, d.String(), Policy{Keys: [][]byte{k.PublicKeyPEM}}, KindDigestMismatch, other.DigestStr())
	if len(e.Reasons) != 2 {
		t.Fatalf("reasons = %q, want two", e.Reasons)
	}
}

func TestTamperedPayload(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	k := st.NewKeySigner(t)
	l := k.LegacySignature(t, st.SimpleSigningPayload(d))
	l.Content = []byte(strings.Replace(string(l.Content), `"optional":null`, `"optional":{"tampered":"yes"}`, 1))
	st.PushLegacy(t, d, "sig", l)
	verifyFails(t, d.String(), Policy{Keys: [][]byte{k.PublicKeyPEM}}, KindUntrusted, "key mismatch", "altered content")
}

func TestMalformedSignatureLayerDoesNotHideAGoodOne(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	k := st.NewKeySigner(t)
	bad := k.LegacySignature(t, st.SimpleSigningPayload(d))
	bad.Annotations[annotationSignature] = "not base64!"
	st.PushLegacy(t, d, "sig", bad)
	e := verifyFails(t, d.String(), Policy{Keys: [][]byte{k.PublicKeyPEM}}, KindUntrusted, "malformed", annotationSignature)
	if len(e.Reasons) != 1 {
		t.Fatalf("reasons = %q", e.Reasons)
	}
	st.PushLegacy(t, d, "sig", k.LegacySignature(t, st.SimpleSigningPayload(d)))
	verifyOK(t, d, Policy{Keys: [][]byte{k.PublicKeyPEM}})
}

func TestThresholdCountsDistinctSigners(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	a, b := st.NewKeySigner(t), st.NewKeySigner(t)
	p := Policy{Keys: [][]byte{a.PublicKeyPEM, b.PublicKeyPEM}, Threshold: 2}

	// The same key signing twice, in both layouts, is still one signer.
	st.PushLegacy(t, d, "sig", a.LegacySignature(t, st.SimpleSigningPayload(d)))
	st.PushBundle(t, d, a.Bundle(t, st.Statement(d, predicateCosignSign)))
	verifyFails(t, d.String(), p, KindUntrusted, "1 of 2 required distinct signers")

	st.PushLegacy(t, d, "sig", b.LegacySignature(t, st.SimpleSigningPayload(d)))
	res := verifyOK(t, d, p)
	got := map[string]bool{}
	for _, s := range res.Signers {
		got[s.KeyFingerprint] = true
	}
	if len(res.Signers) != 2 || !got[a.Fingerprint()] || !got[b.Fingerprint()] {
		t.Fatalf("signers = %+v, want both keys", res.Signers)
	}
}

func TestThresholdMixesKeysAndIdentities(t *testing.T) {
	reg := st.NewRegistry(t, false)
	d := reg.PushImage(t, "app")
	k, ks := st.NewKeySigner(t), st.NewKeyless(t)
	st.PushLegacy(t, d, "sig", k.LegacySignature(t, st.SimpleSigningPayload(d)))
	st.PushBundle(t, d, ks.Bundle(t, st.Subject, st.Issuer, st.Statement(d, predicateCosignSign)))
	p := keylessPolicy(ks)
	p.Keys, p.Threshold = [][]byte{k.PublicKeyPEM}, 2
	if res := verifyOK(t, d, p); len(res.Signers) != 2 {
		t.Fatalf("signers = %+v, want the key and the identity", res.Signers)
	}
}

func TestRequiredAttestations(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			reg := st.NewRegistry(t, mode.referrers)
			d := reg.PushImage(t, "app")
			k, ks := st.NewKeySigner(t), st.NewKeyless(t)
			st.PushLegacy(t, d, "sig", k.LegacySignature(t, st.SimpleSigningPayload(d)))
			// SLSA provenance in the legacy .att tag, SPDX as a key-signed bundle, CycloneDX as a keyless bundle.
			st.PushLegacy(t, d, "att", k.LegacyAttestation(t, st.Statement(d, PredicateSLSAProvenanceV1)))
			st.PushBundle(t, d, k.Bundle(t, st.Statement(d, PredicateSPDX)))
			st.PushBundle(t, d, ks.Bundle(t, st.Subject, st.Issuer, st.Statement(d, PredicateCycloneDX)))

			p := keylessPolicy(ks)
			p.Keys = [][]byte{k.PublicKeyPEM}
			p.RequiredAttestations = []string{"slsaprovenance1", "spdxjson", PredicateCycloneDX}
			res := verifyOK(t, d, p)
			found := map[string]Signer{}
			for _, a := range res.Attestations {
				found[a.PredicateType] = a.Signer
			}
			if found[PredicateSLSAProvenanceV1].KeyFingerprint != k.Fingerprint() ||
				found[PredicateSPDX].KeyFingerprint != k.Fingerprint() ||
				found[PredicateCycloneDX].Subject != st.Subject {
				t.Fatalf("attestations = %+v", res.Attestations)
			}
			if !strings.Contains(res.Summary(), PredicateCycloneDX) {
				t.Errorf("summary %q does not list the attestations", res.Summary())
			}
		})
	}
}

func TestMissingAttestation(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	k := st.NewKeySigner(t)
	st.PushLegacy(t, d, "sig", k.LegacySignature(t, st.SimpleSigningPayload(d)))
	st.PushLegacy(t, d, "att", k.LegacyAttestation(t, st.Statement(d, PredicateSPDX)))
	p := Policy{Keys: [][]byte{k.PublicKeyPEM}, RequiredAttestations: []string{PredicateSLSAProvenanceV1}}
	verifyFails(t, d.String(), p, KindMissingAttestation, "no attestation of type "+PredicateSLSAProvenanceV1+" found",
		"accepted attestations found: "+PredicateSPDX)
}

func TestAttestationForAnotherSubject(t *testing.T) {
	reg := st.NewRegistry(t, false)
	d := reg.PushImage(t, "app")
	other := reg.PushImage(t, "other")
	k := st.NewKeySigner(t)
	st.PushLegacy(t, d, "sig", k.LegacySignature(t, st.SimpleSigningPayload(d)))
	st.PushLegacy(t, d, "att", k.LegacyAttestation(t, st.Statement(other, PredicateSLSAProvenanceV1)))
	st.PushBundle(t, d, k.Bundle(t, st.Statement(other, PredicateSLSAProvenanceV1)))
	p := Policy{Keys: [][]byte{k.PublicKeyPEM}, RequiredAttestations: []string{PredicateSLSAProvenanceV1}}
	e := verifyFails(t, d.String(), p, KindMissingAttestation, "statement subject is "+other.DigestStr())
	if len(e.Reasons) != 2 || !strings.HasPrefix(e.Reasons[0], "attestation 1 (tag sha256-") {
		t.Fatalf("reasons = %q", e.Reasons)
	}
}

func TestAttestationByUntrustedSigner(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	k, stranger := st.NewKeySigner(t), st.NewKeySigner(t)
	st.PushLegacy(t, d, "sig", k.LegacySignature(t, st.SimpleSigningPayload(d)))
	st.PushBundle(t, d, stranger.Bundle(t, st.Statement(d, PredicateSLSAProvenanceV1)))
	p := Policy{Keys: [][]byte{k.PublicKeyPEM}, RequiredAttestations: []string{PredicateSLSAProvenanceV1}}
	verifyFails(t, d.String(), p, KindMissingAttestation, "attestation 1 (referrer sha256:", "key mismatch")
}

func TestImageNotFound(t *testing.T) {
	reg := st.NewRegistry(t, true)
	reg.PushImage(t, "app")
	missing := reg.Host + "/app@sha256:" + strings.Repeat("ab", 32)
	verifyFails(t, missing, Policy{Keys: [][]byte{st.NewKeySigner(t).PublicKeyPEM}}, KindNotFound, "not found")
	verifyFails(t, reg.Host+"/nothing@sha256:"+strings.Repeat("cd", 32), Policy{Keys: [][]byte{st.NewKeySigner(t).PublicKeyPEM}}, KindNotFound)
}

func TestMalformedInput(t *testing.T) {
	key := st.NewKeySigner(t).PublicKeyPEM
	ks := st.NewKeyless(t)
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
		{"identity without root", good, Policy{Identities: []Identity{{Issuer: st.Issuer, Subject: st.Subject}}}, "need a trusted root"},
		{"root without identity", good, Policy{Keys: [][]byte{key}, TrustedRoot: ks.TrustedRootJSON}, "no keyless identity"},
		{"root not JSON", good, Policy{Identities: []Identity{{Issuer: st.Issuer, Subject: st.Subject}}, TrustedRoot: []byte("{nope")}, "trusted root"},
		{"identity without subject", good, Policy{Identities: []Identity{{Issuer: st.Issuer}}, TrustedRoot: ks.TrustedRootJSON}, "subject"},
		{"identity with bad regexp", good, Policy{Identities: []Identity{{Issuer: st.Issuer, SubjectRegexp: "("}}, TrustedRoot: ks.TrustedRootJSON}, "policy identity 1"},
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
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Verify(ctx, d.String(), Policy{Keys: [][]byte{st.NewKeySigner(t).PublicKeyPEM}}, nil)
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
}

func TestTamperedBundleStatement(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	other := reg.PushImage(t, "other")
	k := st.NewKeySigner(t)
	// Sign a statement about another image, then swap in one about this image: the DSSE signature no longer holds.
	signed := k.Bundle(t, st.Statement(other, predicateCosignSign))
	forged := strings.Replace(string(signed),
		base64.StdEncoding.EncodeToString(st.Statement(other, predicateCosignSign)),
		base64.StdEncoding.EncodeToString(st.Statement(d, predicateCosignSign)), 1)
	if forged == string(signed) {
		t.Fatal("test setup: statement not found in the bundle")
	}
	st.PushBundle(t, d, []byte(forged))
	verifyFails(t, d.String(), keyPolicy(k), KindUntrusted, "key mismatch")
}

func TestLegacyTagThatIsNotAnImage(t *testing.T) {
	reg := st.NewRegistry(t, false)
	d := reg.PushImage(t, "app")
	idx, err := random.Index(64, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1)+".sig"), idx); err != nil {
		t.Fatal(err)
	}
	verifyFails(t, d.String(), keyPolicy(st.NewKeySigner(t)), KindUntrusted, "malformed", "not an image manifest")
}

func TestMalformedAttestationIsReported(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	k := st.NewKeySigner(t)
	st.PushLegacy(t, d, "sig", k.LegacySignature(t, st.SimpleSigningPayload(d)))
	st.PushLegacy(t, d, "att", st.Layer{MediaType: st.MediaTypeDSSE, Content: []byte(`{"payloadType":"text/plain"}`)})
	p := keyPolicy(k)
	p.RequiredAttestations = []string{PredicateSLSAProvenanceV1}
	e := verifyFails(t, d.String(), p, KindMissingAttestation, "attestation 1 (tag sha256-", "malformed", "text/plain")
	if len(e.Reasons) != 2 {
		t.Fatalf("reasons = %q, want the missing type and the malformed layer", e.Reasons)
	}
}

func TestP384KeyWithEitherHash(t *testing.T) {
	reg := st.NewRegistry(t, true)
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
		t.Run(h.String(), func(t *testing.T) {
			d := reg.PushImage(t, "app-"+strings.ToLower(strings.ReplaceAll(h.String(), "-", "")))
			k := st.NewECDSAKeySigner(t, elliptic.P384(), h)
			st.PushLegacy(t, d, "sig", k.LegacySignature(t, st.SimpleSigningPayload(d)))
			st.PushBundle(t, d, k.Bundle(t, st.Statement(d, PredicateSLSAProvenanceV1)))
			p := keyPolicy(k)
			p.RequiredAttestations = []string{PredicateSLSAProvenanceV1}
			if res := verifyOK(t, d, p); res.Signers[0].KeyFingerprint != k.Fingerprint() {
				t.Fatalf("signer = %+v", res.Signers[0])
			}
		})
	}
}

func TestVerifierIsReusableConcurrently(t *testing.T) {
	reg := st.NewRegistry(t, true)
	k := st.NewKeySigner(t)
	v, err := NewVerifier(keyPolicy(k))
	if err != nil {
		t.Fatal(err)
	}
	var signed, unsigned []name.Digest
	for i := range 4 {
		d := reg.PushImage(t, fmt.Sprintf("app%d", i))
		if i%2 == 0 {
			st.PushBundle(t, d, k.Bundle(t, st.Statement(d, predicateCosignSign)))
			signed = append(signed, d)
		} else {
			unsigned = append(unsigned, d)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 2 {
		for _, d := range signed {
			wg.Go(func() {
				if _, err := v.Verify(context.Background(), d, nil); err != nil {
					errs <- fmt.Errorf("%s: %w", d, err)
				}
			})
		}
		for _, d := range unsigned {
			wg.Go(func() {
				if _, err := v.Verify(context.Background(), d, nil); KindOf(err) != KindUnsigned {
					errs <- fmt.Errorf("%s: got %v, want Unsigned", d, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestKeylessRootWithCTLogRequiresSCT(t *testing.T) {
	reg := st.NewRegistry(t, true)
	ks := st.NewKeyless(t)
	d := reg.PushImage(t, "app")
	st.PushBundle(t, d, ks.Bundle(t, st.Subject, st.Issuer, st.Statement(d, predicateCosignSign)))
	p := keylessPolicy(ks)
	verifyOK(t, d, p)
	p.TrustedRoot = ks.TrustedRootWithCTLog(t)
	verifyFails(t, d.String(), p, KindUntrusted, "certificate not trusted", "signed certificate timestamp")
}
