package signature

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// Annotations cosign puts on each layer of a legacy signature or attestation manifest.
const (
	annotationSignature   = "dev.cosignproject.cosign/signature"
	annotationCertificate = "dev.sigstore.cosign/certificate"
	annotationChain       = "dev.sigstore.cosign/chain"
	annotationBundle      = "dev.sigstore.cosign/bundle"
	annotationTimestamp   = "dev.sigstore.cosign/rfc3161timestamp"
)

// legacyEntity presents a cosign legacy-layout signature (payload in a layer, everything else in annotations) as a
// sigstore-go SignedEntity, so that both layouts go through the same verifier.
type legacyEntity struct {
	content    verify.SignatureContent
	material   verify.VerificationContent
	tlog       []*tlog.Entry
	timestamps [][]byte
}

var _ verify.SignedEntity = (*legacyEntity)(nil)

func (e *legacyEntity) HasInclusionPromise() bool {
	for _, t := range e.tlog {
		if t.HasInclusionPromise() {
			return true
		}
	}
	return false
}

func (e *legacyEntity) HasInclusionProof() bool {
	for _, t := range e.tlog {
		if t.HasInclusionProof() {
			return true
		}
	}
	return false
}

func (e *legacyEntity) SignatureContent() (verify.SignatureContent, error) { return e.content, nil }
func (e *legacyEntity) Timestamps() ([][]byte, error)                      { return e.timestamps, nil }
func (e *legacyEntity) TlogEntries() ([]*tlog.Entry, error)                { return e.tlog, nil }
func (e *legacyEntity) VerificationContent() (verify.VerificationContent, error) {
	return e.material, nil
}

// Version reports the oldest bundle version: legacy signatures predate bundles, and sigstore-go's compatibility
// handling for old bundles (such as ECDSA keys with cosign's SHA-256 default) applies to them as well.
func (e *legacyEntity) Version() (string, error) { return "v0.1", nil }

// newLegacySignature builds the entity of a simple-signing layer: payload is the layer's content.
func newLegacySignature(payload []byte, ann map[string]string) (*legacyEntity, error) {
	sig, err := base64.StdEncoding.DecodeString(ann[annotationSignature])
	if err != nil {
		return nil, fmt.Errorf("annotation %s is not base64: %w", annotationSignature, err)
	}
	if len(sig) == 0 {
		return nil, fmt.Errorf("annotation %s is missing", annotationSignature)
	}
	sum := sha256.Sum256(payload)
	e := &legacyEntity{content: bundle.NewMessageSignature(sum[:], "SHA2_256", sig)}
	return e, e.fillFromAnnotations(ann)
}

// newLegacyAttestation builds the entity of a DSSE layer (cosign attest, legacy layout).
func newLegacyAttestation(raw []byte, ann map[string]string) (*legacyEntity, *statement, error) {
	env, err := parseEnvelope(raw)
	if err != nil {
		return nil, nil, err
	}
	st, _ := decodeStatement(env.Payload) // parseEnvelope already checked it
	de := &dsse.Envelope{PayloadType: env.PayloadType, Payload: env.Payload}
	for _, s := range env.Signatures {
		de.Signatures = append(de.Signatures, dsse.Signature{KeyID: s.KeyID, Sig: s.Sig})
	}
	e := &legacyEntity{content: &bundle.Envelope{Envelope: de}}
	return e, st, e.fillFromAnnotations(ann)
}

// fillFromAnnotations reads the optional certificate, chain, Rekor bundle and RFC 3161 timestamp.
func (e *legacyEntity) fillFromAnnotations(ann map[string]string) error {
	e.material = &keyMaterial{}
	if pemCert := ann[annotationCertificate]; pemCert != "" {
		certs, err := cryptoutils.UnmarshalCertificatesFromPEM([]byte(pemCert))
		if err != nil || len(certs) == 0 {
			return fmt.Errorf("annotation %s is not a PEM certificate", annotationCertificate)
		}
		cm := &certMaterial{leaf: certs[0]}
		if pemChain := ann[annotationChain]; pemChain != "" {
			chain, err := cryptoutils.UnmarshalCertificatesFromPEM([]byte(pemChain))
			if err != nil {
				return fmt.Errorf("annotation %s is not a PEM certificate chain", annotationChain)
			}
			cm.intermediates = intermediatesOf(chain)
		}
		e.material = cm
	}
	if raw := ann[annotationBundle]; raw != "" {
		entry, err := parseRekorBundle([]byte(raw))
		if err != nil {
			return fmt.Errorf("annotation %s: %w", annotationBundle, err)
		}
		e.tlog = []*tlog.Entry{entry}
	}
	if raw := ann[annotationTimestamp]; raw != "" {
		var ts struct {
			SignedRFC3161Timestamp []byte `json:"SignedRFC3161Timestamp"`
		}
		if err := json.Unmarshal([]byte(raw), &ts); err != nil || len(ts.SignedRFC3161Timestamp) == 0 {
			return fmt.Errorf("annotation %s is not an RFC 3161 timestamp bundle", annotationTimestamp)
		}
		e.timestamps = [][]byte{ts.SignedRFC3161Timestamp}
	}
	return nil
}

// intermediatesOf drops self-signed roots from a chain: roots must come from the trusted root, never the image.
func intermediatesOf(chain []*x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range chain {
		if c.CheckSignatureFrom(c) != nil {
			out = append(out, c)
		}
	}
	return out
}

// rekorBundle is cosign's legacy record of a Rekor entry: the entry body and the log's signed promise to include it.
type rekorBundle struct {
	SignedEntryTimestamp []byte `json:"SignedEntryTimestamp"`
	Payload              struct {
		Body           string `json:"body"`
		IntegratedTime int64  `json:"integratedTime"`
		LogIndex       int64  `json:"logIndex"`
		LogID          string `json:"logID"`
	} `json:"Payload"`
}

func parseRekorBundle(raw []byte) (*tlog.Entry, error) {
	var rb rekorBundle
	if err := json.Unmarshal(raw, &rb); err != nil {
		return nil, fmt.Errorf("not a Rekor bundle: %w", err)
	}
	body, err := base64.StdEncoding.DecodeString(rb.Payload.Body)
	if err != nil {
		return nil, fmt.Errorf("Rekor entry body is not base64: %w", err)
	}
	logID, err := hex.DecodeString(rb.Payload.LogID)
	if err != nil {
		return nil, fmt.Errorf("Rekor log ID is not hex: %w", err)
	}
	entry, err := tlog.NewEntry(body, rb.Payload.IntegratedTime, rb.Payload.LogIndex, logID, rb.SignedEntryTimestamp, nil) //nolint:staticcheck // the legacy layout carries exactly these fields
	if err != nil {
		return nil, fmt.Errorf("Rekor entry: %w", err)
	}
	return entry, nil
}

// certMaterial is a Fulcio-style certificate with the intermediates the image supplied.
type certMaterial struct {
	leaf          *x509.Certificate
	intermediates []*x509.Certificate
}

func (c *certMaterial) CompareKey(key any, _ root.TrustedMaterial) bool {
	cert, ok := key.(*x509.Certificate)
	return ok && c.leaf.Equal(cert)
}

func (c *certMaterial) ValidAtTime(t time.Time, _ root.TrustedMaterial) bool {
	return !c.leaf.NotAfter.Before(t) && !c.leaf.NotBefore.After(t)
}

func (c *certMaterial) Certificate() *x509.Certificate      { return c.leaf }
func (c *certMaterial) Intermediates() []*x509.Certificate  { return c.intermediates }
func (c *certMaterial) PublicKey() verify.PublicKeyProvider { return nil }

// keyMaterial stands for "signed with a long-lived key"; which key is decided by the trusted material.
type keyMaterial struct{}

func (k *keyMaterial) CompareKey(key any, tm root.TrustedMaterial) bool {
	v, err := tm.PublicKeyVerifier("")
	if err != nil {
		return false
	}
	pub, err := v.PublicKey()
	if err != nil {
		return false
	}
	eq, ok := key.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(pub)
}

func (k *keyMaterial) ValidAtTime(t time.Time, tm root.TrustedMaterial) bool {
	v, err := tm.PublicKeyVerifier("")
	return err == nil && v.ValidAtTime(t)
}

func (k *keyMaterial) Certificate() *x509.Certificate      { return nil }
func (k *keyMaterial) Intermediates() []*x509.Certificate  { return nil }
func (k *keyMaterial) PublicKey() verify.PublicKeyProvider { return k }
func (k *keyMaterial) Hint() string                        { return "" }
