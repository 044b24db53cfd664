package signature

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	sigsig "github.com/sigstore/sigstore/pkg/signature"
)

// trust is a Policy compiled into sigstore-go verifiers, built once per verification.
type trust struct {
	keys       []trustedKey
	keyless    *verify.Verifier
	identities []verify.CertificateIdentity
	required   []string
	threshold  int
}

// trustedKey is one accepted public key with verifiers that only ever answer with that key, so that a match
// names exactly which key signed; one verifier per hash the key's signatures may use.
type trustedKey struct {
	fingerprint string
	verifiers   []*verify.Verifier
}

// compile validates a Policy and builds its verifiers; every problem is a KindMalformed error naming the field.
func compile(p Policy) (*trust, error) {
	t := &trust{threshold: p.Threshold}
	if p.Threshold < 0 {
		return nil, malformed("policy threshold %d is negative", p.Threshold)
	}
	if t.threshold == 0 {
		t.threshold = 1
	}
	if len(p.Keys) == 0 && len(p.Identities) == 0 {
		return nil, malformed("policy accepts no signer: give at least one public key or keyless identity")
	}
	for i, pemKey := range p.Keys {
		k, err := newTrustedKey(pemKey)
		if err != nil {
			return nil, malformed("policy key %d: %v", i+1, err)
		}
		t.keys = append(t.keys, k)
	}
	if err := t.compileKeyless(p); err != nil {
		return nil, err
	}
	if len(p.Identities) == 0 && t.threshold > len(t.keys) {
		return nil, malformed("policy threshold %d exceeds the %d accepted keys", t.threshold, len(t.keys))
	}
	for _, name := range p.RequiredAttestations {
		pt, err := PredicateType(name)
		if err != nil {
			return nil, malformed("policy required attestation: %v", err)
		}
		t.required = append(t.required, pt)
	}
	return t, nil
}

func newTrustedKey(pemKey []byte) (trustedKey, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemKey)
	if err != nil {
		return trustedKey{}, fmt.Errorf("not a PEM public key: %w", err)
	}
	fingerprint, err := keyFingerprint(pub)
	if err != nil {
		return trustedKey{}, err
	}
	tk := trustedKey{fingerprint: fingerprint}
	for _, h := range signingHashes(pub) {
		sv, err := sigsig.LoadVerifier(pub, h)
		if err != nil {
			return trustedKey{}, fmt.Errorf("unsupported public key: %w", err)
		}
		key := root.NewExpiringKey(sv, time.Time{}, time.Time{})
		// Bundles name their key with a free-form hint; Ferry ignores it and tries each accepted key in turn.
		material := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return key, nil })
		v, err := verify.NewVerifier(material, verify.WithNoObserverTimestamps())
		if err != nil {
			return trustedKey{}, fmt.Errorf("building key verifier: %w", err)
		}
		tk.verifiers = append(tk.verifiers, v)
	}
	return tk, nil
}

// signingHashes lists the hashes a key's signatures may use: cosign signs with SHA-256 whatever the ECDSA curve,
// while sigstore bundles may use the curve's own hash (SHA-384 for P-384, SHA-512 for P-521).
func signingHashes(pub crypto.PublicKey) []crypto.Hash {
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		switch k.Curve {
		case elliptic.P384():
			return []crypto.Hash{crypto.SHA256, crypto.SHA384}
		case elliptic.P521():
			return []crypto.Hash{crypto.SHA256, crypto.SHA512}
		}
	}
	return []crypto.Hash{crypto.SHA256}
}

// compileKeyless builds the certificate verifier. Its options follow the deployment the trusted root describes:
// a root that lists transparency logs requires a log entry, one that lists CT logs requires an embedded SCT, and
// the certificate is always checked at a verified observer time (log entry or RFC 3161 timestamp), never "now".
func (t *trust) compileKeyless(p Policy) error {
	if len(p.Identities) == 0 {
		if len(p.TrustedRoot) > 0 {
			return malformed("policy has a trusted root but no keyless identity (issuer and subject) to accept")
		}
		return nil
	}
	if len(p.TrustedRoot) == 0 {
		return malformed("policy keyless identities need a trusted root")
	}
	tr, err := root.NewTrustedRootFromJSON(p.TrustedRoot)
	if err != nil {
		return malformed("policy trusted root: %v", err)
	}
	if len(tr.FulcioCertificateAuthorities()) == 0 {
		return malformed("policy trusted root lists no certificate authority")
	}
	opts := []verify.VerifierOption{verify.WithObserverTimestamps(1)}
	if len(tr.RekorLogs()) > 0 {
		opts = append(opts, verify.WithTransparencyLog(1))
	}
	if len(tr.CTLogs()) > 0 {
		opts = append(opts, verify.WithSignedCertificateTimestamps(1))
	}
	if t.keyless, err = verify.NewVerifier(tr, opts...); err != nil {
		return malformed("policy trusted root: %v", err)
	}
	for i, id := range p.Identities {
		ci, err := newIdentity(id)
		if err != nil {
			return malformed("policy identity %d (%s): %v", i+1, id, err)
		}
		t.identities = append(t.identities, ci)
	}
	return nil
}

func newIdentity(id Identity) (verify.CertificateIdentity, error) {
	if (id.Issuer == "") == (id.IssuerRegexp == "") {
		return verify.CertificateIdentity{}, fmt.Errorf("give exactly one of issuer and issuer regexp")
	}
	if (id.Subject == "") == (id.SubjectRegexp == "") {
		return verify.CertificateIdentity{}, fmt.Errorf("give exactly one of subject and subject regexp")
	}
	return verify.NewShortCertificateIdentity(id.Issuer, anchor(id.IssuerRegexp), id.Subject, anchor(id.SubjectRegexp))
}

// anchor makes a regular expression match whole values only.
func anchor(re string) string {
	if re == "" {
		return ""
	}
	return "^(?:" + re + ")$"
}

// KeyFingerprint names a PEM public key the way Signer.KeyFingerprint does, so that callers can map a matched
// signer back to their own name for the key.
func KeyFingerprint(pemKey []byte) (string, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemKey)
	if err != nil {
		return "", fmt.Errorf("not a PEM public key: %w", err)
	}
	return keyFingerprint(pub)
}

// keyFingerprint names a public key the way results do: the SHA-256 of its PKIX DER encoding.
func keyFingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
