// Package signaturetest signs images the way cosign does, for tests: key pairs and an offline keyless Sigstore
// (sigstore-go's virtual CA, Rekor log and TSA), writing signatures and attestations in both layouts (legacy
// sha256-<hex>.sig/.att tags and OCI 1.1 referrer bundles) to a real registry on loopback. Test code only.
package signaturetest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
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

// Registry is a real OCI registry (go-containerregistry's) on loopback, with or without the referrers API.
type Registry struct {
	Host string
	srv  *httptest.Server
}

func NewRegistry(t testing.TB, referrers bool) *Registry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.WithReferrersSupport(referrers), registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://"), srv: srv}
}

// Close stops the registry, as an outage would: connections to Host are refused from then on.
func (r *Registry) Close() { r.srv.Close() }

// PushImage writes a small random image and returns its digest reference.
func (r *Registry) PushImage(t testing.TB, repo string) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(r.Host + "/" + repo + ":latest")
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

// Layer is one layer of a legacy signature manifest.
type Layer struct {
	MediaType   string
	Content     []byte
	Annotations map[string]string
}

// PushLegacy appends layers to the legacy sha256-<hex>.<suffix> tag of d, as cosign does.
func PushLegacy(t testing.TB, d name.Digest, suffix string, layers ...Layer) {
	t.Helper()
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + "." + suffix)
	var base v1.Image = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	if existing, err := remote.Image(tag); err == nil {
		base = existing
	}
	for _, l := range layers {
		var err error
		base, err = mutate.Append(base, mutate.Addendum{
			Layer:       static.NewLayer(l.Content, types.MediaType(l.MediaType)),
			Annotations: l.Annotations,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Write(tag, base); err != nil {
		t.Fatal(err)
	}
}

// PushReferrer writes an OCI 1.1 artifact whose subject is d, with one layer.
func PushReferrer(t testing.TB, d name.Digest, artifactType, mediaType string, content []byte, ann map[string]string) v1.Hash {
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

// SimpleSigningPayload is the payload cosign signs for d in the legacy layout.
func SimpleSigningPayload(d name.Digest) []byte {
	return fmt.Appendf(nil, `{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`,
		d.Context().String(), d.DigestStr())
}

// Statement is an in-toto v1 statement about d with a small predicate of the given type.
func Statement(d name.Digest, predicateType string) []byte {
	hexDigest := strings.TrimPrefix(d.DigestStr(), "sha256:")
	return fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":%q,"digest":{"sha256":%q}}],"predicateType":%q,"predicate":{"buildDefinition":{"buildType":"https://example.test/build"}}}`,
		d.Context().String(), hexDigest, predicateType)
}

// KeySigner is a cosign-style key pair.
type KeySigner struct {
	sv           *sigsig.ECDSASignerVerifier
	pub          crypto.PublicKey
	PublicKeyPEM []byte
}

// NewKeySigner makes an ECDSA P-256 key pair signing with SHA-256, as cosign generate-key-pair does.
func NewKeySigner(t testing.TB) *KeySigner {
	return NewECDSAKeySigner(t, elliptic.P256(), crypto.SHA256)
}

// NewECDSAKeySigner makes a key pair on another curve, signing with the given hash.
func NewECDSAKeySigner(t testing.TB, curve elliptic.Curve, hash crypto.Hash) *KeySigner {
	t.Helper()
	priv, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := sigsig.LoadECDSASignerVerifier(priv, hash)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &KeySigner{sv: sv, pub: priv.Public(), PublicKeyPEM: pemKey}
}

// Fingerprint is how verification results name the key: sha256 of its PKIX DER encoding.
func (k *KeySigner) Fingerprint() string {
	der, err := x509.MarshalPKIXPublicKey(k.pub)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Sign signs payload with SHA-256, as cosign sign --key does.
func (k *KeySigner) Sign(t testing.TB, payload []byte) []byte {
	t.Helper()
	sig, err := k.sv.SignMessage(strings.NewReader(string(payload)))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// LegacySignature is the .sig layer cosign writes for a key-signed payload.
func (k *KeySigner) LegacySignature(t testing.TB, payload []byte) Layer {
	return Layer{MediaType: MediaTypeSimpleSigning, Content: payload, Annotations: map[string]string{
		AnnotationSignature: base64.StdEncoding.EncodeToString(k.Sign(t, payload)),
	}}
}

// Envelope signs an in-toto statement into a DSSE envelope.
func (k *KeySigner) Envelope(t testing.TB, stmt []byte) *dsse.Envelope {
	t.Helper()
	signer, err := dsse.NewEnvelopeSigner(&sigdsse.SignerAdapter{SignatureSigner: k.sv, Pub: k.pub})
	if err != nil {
		t.Fatal(err)
	}
	env, err := signer.SignPayload(context.Background(), InTotoPayloadType, stmt)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// LegacyAttestation is the .att layer cosign writes for a key-signed statement.
func (k *KeySigner) LegacyAttestation(t testing.TB, stmt []byte) Layer {
	raw, err := json.Marshal(k.Envelope(t, stmt))
	if err != nil {
		t.Fatal(err)
	}
	return Layer{MediaType: MediaTypeDSSE, Content: raw, Annotations: map[string]string{AnnotationSignature: ""}}
}

// Bundle is a v0.3 sigstore bundle with a DSSE envelope signed by the key, as cosign --new-bundle-format writes.
func (k *KeySigner) Bundle(t testing.TB, stmt []byte) []byte {
	t.Helper()
	env := k.Envelope(t, stmt)
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	b := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: k.Fingerprint()}},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: stmt, PayloadType: InTotoPayloadType, Signatures: []*protodsse.Signature{{Sig: sig}},
		}},
	}
	return marshalBundle(t, b)
}

func marshalBundle(t testing.TB, b *protobundle.Bundle) []byte {
	t.Helper()
	raw, err := protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

const BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// PushBundle writes a bundle as an OCI 1.1 referrer of d, the way cosign v3 does.
func PushBundle(t testing.TB, d name.Digest, bundleJSON []byte) v1.Hash {
	return PushReferrer(t, d, BundleMediaType, BundleMediaType, bundleJSON, nil)
}

// Keyless is an offline Sigstore (Fulcio CA, Rekor log, TSA) from sigstore-go's test CA.
type Keyless struct {
	vs              *ca.VirtualSigstore
	TrustedRootJSON []byte
}

// The keyless identity tests sign as by default.
const (
	Issuer  = "https://issuer.example.test"
	Subject = "ci@example.test"
)

// Media types, annotations and predicate types of cosign's two layouts.
const (
	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	MediaTypeDSSE          = "application/vnd.dsse.envelope.v1+json"
	InTotoPayloadType      = "application/vnd.in-toto+json"
	AnnotationSignature    = "dev.cosignproject.cosign/signature"
	AnnotationCertificate  = "dev.sigstore.cosign/certificate"
	AnnotationChain        = "dev.sigstore.cosign/chain"
	AnnotationBundle       = "dev.sigstore.cosign/bundle"
	PredicateCosignSign    = "https://sigstore.dev/cosign/sign/v1"
)

// NewKeyless starts an offline Sigstore and writes its trusted root (without CT logs: its certificates carry
// no SCTs).
func NewKeyless(t testing.TB) *Keyless {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	k := &Keyless{vs: vs}
	k.TrustedRootJSON = k.trustedRoot(t, nil)
	return k
}

// TrustedRootWithCTLog is the trusted root plus the virtual CT log, as the public Sigstore root lists one: a
// verifier must then demand SCTs, which the test certificates do not carry.
func (k *Keyless) TrustedRootWithCTLog(t testing.TB) []byte {
	return k.trustedRoot(t, rawLogIDs(t, k.vs.CTLogs()))
}

func (k *Keyless) trustedRoot(t testing.TB, ctLogs map[string]*root.TransparencyLog) []byte {
	t.Helper()
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, k.vs.FulcioCertificateAuthorities(), ctLogs,
		k.vs.TimestampingAuthorities(), rawLogIDs(t, k.vs.RekorLogs()))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// rawLogIDs fixes the virtual logs' IDs: they hold the hex of the key hash, a trusted root stores the raw bytes.
func rawLogIDs(t testing.TB, logs map[string]*root.TransparencyLog) map[string]*root.TransparencyLog {
	t.Helper()
	out := map[string]*root.TransparencyLog{}
	for id, l := range logs {
		raw, err := hex.DecodeString(id)
		if err != nil {
			t.Fatal(err)
		}
		l.ID = raw
		out[id] = l
	}
	return out
}

// Bundle signs stmt as subject/issuer and returns a v0.3 bundle with certificate, Rekor entry (with inclusion
// proof) and RFC 3161 timestamp.
func (k *Keyless) Bundle(t testing.TB, subject, issuer string, stmt []byte) []byte {
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
		MediaType: BundleMediaType,
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
func (k *Keyless) completeEntry(t testing.TB, tle *protorekor.TransparencyLogEntry) *protorekor.TransparencyLogEntry {
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

// LegacySignature signs a simple-signing payload as subject/issuer and returns the .sig layer cosign writes:
// certificate, chain and Rekor bundle in annotations.
func (k *Keyless) LegacySignature(t testing.TB, subject, issuer string, payload []byte) Layer {
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
	return Layer{MediaType: MediaTypeSimpleSigning, Content: payload, Annotations: map[string]string{
		AnnotationSignature:   base64.StdEncoding.EncodeToString(sc.Signature()),
		AnnotationCertificate: string(leafPEM),
		AnnotationChain:       string(chainPEM),
		AnnotationBundle:      string(rbJSON),
	}}
}

// nowPlus5m is when the virtual Rekor log integrates entries: inside the leaf certificate's ten-minute validity.
func nowPlus5m() time.Time { return time.Now().Add(5 * time.Minute) }

// StatementWith is an in-toto v1 statement about d with predicate (a JSON value) of predicateType.
func StatementWith(d name.Digest, predicateType, predicate string) []byte {
	hexDigest := strings.TrimPrefix(d.DigestStr(), "sha256:")
	return fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":%q,"digest":{"sha256":%q}}],"predicateType":%q,"predicate":%s}`,
		d.Context().String(), hexDigest, predicateType, predicate)
}
