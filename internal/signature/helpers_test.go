package signature

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	sigsig "github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	"google.golang.org/protobuf/encoding/protojson"
)

// testRegistry is a real OCI registry (go-containerregistry's) on loopback, with or without the referrers API.
type testRegistry struct {
	host string
}

func newTestRegistry(t *testing.T, referrers bool) *testRegistry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.WithReferrersSupport(referrers), registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &testRegistry{host: strings.TrimPrefix(srv.URL, "http://")}
}

// pushImage writes a small random image and returns its digest reference.
func (r *testRegistry) pushImage(t *testing.T, repo string) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(r.host + "/" + repo + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return tag.Context().Digest(h.String())
}

// layer is one layer of a legacy signature manifest.
type layer struct {
	mediaType   string
	content     []byte
	annotations map[string]string
}

// pushLegacy appends layers to the legacy sha256-<hex>.<suffix> tag of d, as cosign does.
func pushLegacy(t *testing.T, d name.Digest, suffix string, layers ...layer) {
	t.Helper()
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + "." + suffix)
	var base v1.Image = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	if existing, err := remote.Image(tag); err == nil {
		base = existing
	}
	for _, l := range layers {
		var err error
		base, err = mutate.Append(base, mutate.Addendum{
			Layer:       static.NewLayer(l.content, types.MediaType(l.mediaType)),
			Annotations: l.annotations,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Write(tag, base); err != nil {
		t.Fatal(err)
	}
}

// pushReferrer writes an OCI 1.1 artifact whose subject is d, with one layer.
func pushReferrer(t *testing.T, d name.Digest, artifactType, mediaType string, content []byte, ann map[string]string) v1.Hash {
	t.Helper()
	subject, err := remote.Head(d)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
		Layer:       static.NewLayer(content, types.MediaType(mediaType)),
		Annotations: ann,
	})
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(img, types.MediaType(artifactType))
	withSubject := mutate.Subject(img, *subject).(v1.Image)
	h, err := withSubject.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(d.Context().Digest(h.String()), withSubject); err != nil {
		t.Fatal(err)
	}
	return h
}

func simpleSigningPayload(d name.Digest) []byte {
	return fmt.Appendf(nil, `{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`,
		d.Context().String(), d.DigestStr())
}

func statementJSON(d name.Digest, predicateType string) []byte {
	hexDigest := strings.TrimPrefix(d.DigestStr(), "sha256:")
	return fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":%q,"digest":{"sha256":%q}}],"predicateType":%q,"predicate":{"buildDefinition":{"buildType":"https://example.test/build"}}}`,
		d.Context().String(), hexDigest, predicateType)
}

// keySigner is a cosign-style key pair.
type keySigner struct {
	sv     *sigsig.ECDSASignerVerifier
	pub    crypto.PublicKey
	pubPEM []byte
}

func newKeySigner(t *testing.T) *keySigner {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := sigsig.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &keySigner{sv: sv, pub: priv.Public(), pubPEM: pemKey}
}

func (k *keySigner) fingerprint() string {
	return keyFingerprint(k.pub)
}

func (k *keySigner) sign(t *testing.T, payload []byte) []byte {
	t.Helper()
	sig, err := k.sv.SignMessage(strings.NewReader(string(payload)))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// legacySignature is the .sig layer cosign writes for a key-signed payload.
func (k *keySigner) legacySignature(t *testing.T, payload []byte) layer {
	return layer{mediaType: mediaTypeSimpleSigning, content: payload, annotations: map[string]string{
		annotationSignature: base64.StdEncoding.EncodeToString(k.sign(t, payload)),
	}}
}

func (k *keySigner) envelope(t *testing.T, stmt []byte) *dsse.Envelope {
	t.Helper()
	signer, err := dsse.NewEnvelopeSigner(&sigdsse.SignerAdapter{SignatureSigner: k.sv, Pub: k.pub})
	if err != nil {
		t.Fatal(err)
	}
	env, err := signer.SignPayload(context.Background(), inTotoPayloadType, stmt)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// legacyAttestation is the .att layer cosign writes for a key-signed statement.
func (k *keySigner) legacyAttestation(t *testing.T, stmt []byte) layer {
	raw, err := json.Marshal(k.envelope(t, stmt))
	if err != nil {
		t.Fatal(err)
	}
	return layer{mediaType: mediaTypeDSSE, content: raw, annotations: map[string]string{annotationSignature: ""}}
}

// bundle is a v0.3 sigstore bundle with a DSSE envelope signed by the key, as cosign --new-bundle-format writes.
func (k *keySigner) bundle(t *testing.T, stmt []byte) []byte {
	t.Helper()
	env := k.envelope(t, stmt)
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	b := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: k.fingerprint()}},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: stmt, PayloadType: inTotoPayloadType, Signatures: []*protodsse.Signature{{Sig: sig}},
		}},
	}
	return marshalBundle(t, b)
}

func marshalBundle(t *testing.T, b *protobundle.Bundle) []byte {
	t.Helper()
	raw, err := protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

const bundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// pushBundle writes a bundle as an OCI 1.1 referrer of d, the way cosign v3 does.
func pushBundle(t *testing.T, d name.Digest, bundleJSON []byte) v1.Hash {
	return pushReferrer(t, d, bundleMediaType, bundleMediaType, bundleJSON, nil)
}

// keyless is an offline Sigstore (Fulcio CA, Rekor log, TSA) from sigstore-go's test CA.
type keyless struct {
	vs       *ca.VirtualSigstore
	rootJSON []byte
}

const (
	testIssuer  = "https://issuer.example.test"
	testSubject = "ci@example.test"
)

func newKeyless(t *testing.T) *keyless {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	// The virtual Rekor log's ID is the hex of its key hash; a trusted root stores the raw bytes.
	logs := map[string]*root.TransparencyLog{}
	for id, l := range vs.RekorLogs() {
		raw, err := hex.DecodeString(id)
		if err != nil {
			t.Fatal(err)
		}
		l.ID = raw
		logs[id] = l
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, vs.FulcioCertificateAuthorities(), nil, vs.TimestampingAuthorities(), logs)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return &keyless{vs: vs, rootJSON: raw}
}

func (k *keyless) policy(ids ...Identity) Policy {
	if len(ids) == 0 {
		ids = []Identity{{Issuer: testIssuer, Subject: testSubject}}
	}
	return Policy{Identities: ids, TrustedRoot: k.rootJSON}
}

// bundle signs stmt as subject/issuer and returns a v0.3 bundle with certificate, Rekor entry (with inclusion
// proof) and RFC 3161 timestamp.
func (k *keyless) bundle(t *testing.T, subject, issuer string, stmt []byte) []byte {
	t.Helper()
	ent, err := k.vs.AttestAtTime(subject, issuer, stmt, nowPlus5m(), true)
	if err != nil {
		t.Fatal(err)
	}
	vc, _ := ent.VerificationContent()
	sc, _ := ent.SignatureContent()
	env := sc.EnvelopeContent().RawEnvelope()
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := ent.TlogEntries()
	tss, _ := ent.Timestamps()
	b := &protobundle.Bundle{
		MediaType: bundleMediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:     &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: vc.Certificate().Raw}},
			TlogEntries: nil,
			TimestampVerificationData: &protobundle.TimestampVerificationData{
				Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: tss[0]}},
			},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: stmt, PayloadType: env.PayloadType, Signatures: []*protodsse.Signature{{Sig: sig}},
		}},
	}
	for _, e := range entries {
		b.VerificationMaterial.TlogEntries = append(b.VerificationMaterial.TlogEntries, k.completeEntry(t, e.TransparencyLogEntry()))
	}
	return marshalBundle(t, b)
}

// completeEntry adds what the test CA's entries leave out but real Rekor entries carry: the kind and version of
// the body, and the log's signed inclusion promise.
func (k *keyless) completeEntry(t *testing.T, tle *protorekor.TransparencyLogEntry) *protorekor.TransparencyLogEntry {
	t.Helper()
	var body struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
	}
	if err := json.Unmarshal(tle.GetCanonicalizedBody(), &body); err != nil {
		t.Fatal(err)
	}
	set, err := k.vs.RekorSignPayload(tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(tle.GetCanonicalizedBody()),
		IntegratedTime: tle.GetIntegratedTime(),
		LogIndex:       tle.GetLogIndex(),
		LogID:          hex.EncodeToString(tle.GetLogId().GetKeyId()),
	})
	if err != nil {
		t.Fatal(err)
	}
	tle.KindVersion = &protorekor.KindVersion{Kind: body.Kind, Version: body.APIVersion}
	tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
	return tle
}

// legacySignature signs a simple-signing payload as subject/issuer and returns the .sig layer cosign writes:
// certificate, chain and Rekor bundle in annotations.
func (k *keyless) legacySignature(t *testing.T, subject, issuer string, payload []byte) layer {
	t.Helper()
	ent, err := k.vs.SignAtTime(subject, issuer, payload, nowPlus5m())
	if err != nil {
		t.Fatal(err)
	}
	vc, _ := ent.VerificationContent()
	sc, _ := ent.SignatureContent()
	entries, _ := ent.TlogEntries()
	tle := k.completeEntry(t, entries[0].TransparencyLogEntry())
	rb := map[string]any{
		"SignedEntryTimestamp": tle.GetInclusionPromise().GetSignedEntryTimestamp(),
		"Payload": map[string]any{
			"body":           base64.StdEncoding.EncodeToString(tle.GetCanonicalizedBody()),
			"integratedTime": tle.GetIntegratedTime(),
			"logIndex":       tle.GetLogIndex(),
			"logID":          hex.EncodeToString(tle.GetLogId().GetKeyId()),
		},
	}
	rbJSON, err := json.Marshal(rb)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM, _ := cryptoutils.MarshalCertificateToPEM(vc.Certificate())
	var chainPEM []byte
	for _, c := range k.vs.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority).Intermediates {
		p, _ := cryptoutils.MarshalCertificateToPEM(c)
		chainPEM = append(chainPEM, p...)
	}
	return layer{mediaType: mediaTypeSimpleSigning, content: payload, annotations: map[string]string{
		annotationSignature:   base64.StdEncoding.EncodeToString(sc.Signature()),
		annotationCertificate: string(leafPEM),
		annotationChain:       string(chainPEM),
		annotationBundle:      string(rbJSON),
	}}
}

// verifyOK runs Verify and fails the test with the full error when it does not pass.
func verifyOK(t *testing.T, d name.Digest, p Policy) *Result {
	t.Helper()
	res, err := Verify(context.Background(), d.String(), p, nil)
	if err != nil {
		t.Fatalf("Verify(%s): %v", d, err)
	}
	return res
}

// verifyFails runs Verify and checks the error kind and that its text mentions each of want.
func verifyFails(t *testing.T, d string, p Policy, kind Kind, want ...string) *Error {
	t.Helper()
	_, err := Verify(context.Background(), d, p, nil)
	if err == nil {
		t.Fatalf("Verify(%s) passed, want a %s error", d, kind)
	}
	if got := KindOf(err); got != kind {
		t.Fatalf("Verify(%s) error kind = %q, want %q; error: %v", d, got, kind, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Verify(%s) error %q does not mention %q", d, err, w)
		}
	}
	var e *Error
	errors.As(err, &e)
	return e
}

// nowPlus5m is when the virtual Rekor log integrates entries: inside the leaf certificate's ten-minute validity.
func nowPlus5m() time.Time { return time.Now().Add(5 * time.Minute) }
