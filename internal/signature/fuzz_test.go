package signature

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	st "github.com/ferrycd/ferry/internal/signature/signaturetest"
)

var fuzzDigest = func() name.Digest {
	d, err := name.NewDigest("127.0.0.1:5000/app@sha256:" + strings.Repeat("ab", 32))
	if err != nil {
		panic(err)
	}
	return d
}()

func FuzzSimpleSigningPayload(f *testing.F) {
	f.Add(st.SimpleSigningPayload(fuzzDigest))
	f.Add([]byte(`{"critical":{"image":{"docker-manifest-digest":"sha256:00"},"type":"atomic container signature"}}`))
	f.Add([]byte(`{"critical":{"type":"cosign container image signature"}} trailing`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		h, err := signedImageDigest(payload)
		if err != nil {
			return
		}
		// A payload is accepted only with a well-formed digest of a known algorithm.
		if h.Algorithm == "" || h.Hex == "" || !strings.Contains(string(payload), h.Hex) {
			t.Fatalf("accepted payload %q with digest %v", payload, h)
		}
	})
}

func FuzzDSSEStatement(f *testing.F) {
	k := st.NewKeySigner(f)
	att := k.LegacyAttestation(f, st.Statement(fuzzDigest, PredicateSLSAProvenanceV1))
	f.Add(att.Content)
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"AA=="}]}`))
	f.Add([]byte(`{"payloadType":"text/plain","payload":"","signatures":[]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := parseEnvelope(raw)
		if err != nil {
			return
		}
		st, err := decodeStatement(env.Payload)
		if err != nil {
			t.Fatalf("parseEnvelope accepted an envelope whose statement does not decode: %v", err)
		}
		if st.PredicateType == "" || len(st.Subject) == 0 || len(env.Signatures) != 1 {
			t.Fatalf("accepted incomplete envelope %q", raw)
		}
		_ = st.coversDigest(fuzzDigestHash())
		_ = st.subjectDigests()
	})
}

func FuzzStatement(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString(st.Statement(fuzzDigest, PredicateSPDX)))
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"x","subject":[{"digest":{}}]}`)))
	f.Add("!!!")
	f.Fuzz(func(t *testing.T, b64 string) {
		st, err := decodeStatement(b64)
		if err != nil {
			return
		}
		if st.coversDigest(fuzzDigestHash()) && !strings.Contains(strings.ToLower(st.subjectDigests()), fuzzDigestHash().Hex) {
			t.Fatalf("statement covers the digest but does not list it: %s", st.subjectDigests())
		}
	})
}

func FuzzParseDigestReference(f *testing.F) {
	for _, s := range []string{
		fuzzDigest.String(), "localhost:5000/a/b@sha256:" + strings.Repeat("0", 64), "app:v1", "app:v1@sha256:" + strings.Repeat("0", 64),
		"@sha256:", "ghcr.io/x@sha512:" + strings.Repeat("0", 128), "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigestReference(s)
		if err != nil {
			if KindOf(err) != KindMalformed {
				t.Fatalf("ParseDigestReference(%q) error of kind %q, want Malformed", s, KindOf(err))
			}
			return
		}
		if !strings.HasPrefix(d.DigestStr(), "sha256:") || len(d.DigestStr()) != len("sha256:")+64 {
			t.Fatalf("ParseDigestReference(%q) accepted digest %q", s, d.DigestStr())
		}
	})
}

func FuzzBundle(f *testing.F) {
	k := st.NewKeySigner(f)
	f.Add(k.Bundle(f, st.Statement(fuzzDigest, predicateCosignSign)))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		entity, stmt, digest, err := parseBundle(raw)
		if err != nil {
			return
		}
		if entity == nil || (stmt == nil) == (digest == nil) {
			t.Fatalf("parseBundle(%q) = entity %v, statement %v, digest %v", raw, entity, stmt, digest)
		}
	})
}

func FuzzLegacyAnnotations(f *testing.F) {
	f.Add("MEUCIQ==", "", "", "")
	f.Add("", "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n", "", `{"Payload":{"body":"e30=","logID":"zz"}}`)
	f.Add("AA==", "", "not pem", `{"SignedEntryTimestamp":"AA==","Payload":{"body":"e30=","integratedTime":1,"logIndex":1,"logID":"00"}}`)
	f.Fuzz(func(t *testing.T, sig, cert, chain, rekor string) {
		ann := map[string]string{annotationSignature: sig, annotationCertificate: cert, annotationChain: chain, annotationBundle: rekor}
		e, err := newLegacySignature(st.SimpleSigningPayload(fuzzDigest), ann)
		if err != nil {
			return
		}
		if vc, _ := e.VerificationContent(); vc == nil {
			t.Fatal("accepted signature has no verification content")
		}
	})
}

func fuzzDigestHash() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
}
