package signature

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/verify"
)

// Result is a successful verification: which signers matched and which attestations were found.
type Result struct {
	Ref          string
	Signers      []Signer      // distinct accepted signers of the digest, at least Threshold of them
	Attestations []Attestation // every attestation of the digest by an accepted signer
}

// Signer names who signed: a key fingerprint, or a certificate's OIDC issuer and subject.
type Signer struct {
	KeyFingerprint string
	Issuer         string
	Subject        string
	Source         string // where the signature was found
}

func (s Signer) String() string {
	if s.KeyFingerprint != "" {
		return "key " + s.KeyFingerprint
	}
	return fmt.Sprintf("%s (issuer %s)", s.Subject, s.Issuer)
}

// id identifies a signer for the threshold: two signatures by the same key or identity count once.
func (s Signer) id() string {
	if s.KeyFingerprint != "" {
		return "key:" + s.KeyFingerprint
	}
	return "cert:" + s.Issuer + "\x00" + s.Subject
}

// Attestation is a verified in-toto attestation about the digest.
type Attestation struct {
	PredicateType string
	Signer        Signer
	Source        string
	// Summary is what its predicate says, read only once its signature was accepted (see Summarize).
	Summary AttestationSummary
}

// Summary is a one-line description of the result for people.
func (r *Result) Summary() string {
	signers := make([]string, len(r.Signers))
	for i, s := range r.Signers {
		signers[i] = s.String()
	}
	out := fmt.Sprintf("verified %s: signed by %s", r.Ref, strings.Join(signers, ", "))
	if types := r.attestedTypes(); len(types) > 0 {
		out += "; attested " + strings.Join(types, ", ")
	}
	return out
}

// attestedTypes lists the predicate types of the accepted attestations, each once, in the order found.
func (r *Result) attestedTypes() []string {
	seen := map[string]bool{}
	var list []string
	for _, a := range r.Attestations {
		if !seen[a.PredicateType] {
			seen[a.PredicateType] = true
			list = append(list, a.PredicateType)
		}
	}
	return list
}

// Verify checks that ref (repo@sha256:…) is signed, and attested, as the policy requires. Registry access uses
// opts (authentication, transport); nothing else is reached. A failure is an *Error of a known Kind unless the
// registry itself failed, which is worth retrying.
func Verify(ctx context.Context, ref string, p Policy, opts []remote.Option) (*Result, error) {
	d, err := ParseDigestReference(ref)
	if err != nil {
		return nil, err
	}
	return VerifyDigest(ctx, d, p, opts)
}

// VerifyDigest is Verify for a reference the caller parsed (for example with registry options that mark an
// insecure registry). Only sha256 digests are accepted.
func VerifyDigest(ctx context.Context, d name.Digest, p Policy, opts []remote.Option) (*Result, error) {
	v, err := NewVerifier(p)
	if err != nil {
		err.(*Error).Ref = d.String()
		return nil, err
	}
	return v.Verify(ctx, d, opts)
}

// Verifier is a compiled policy: keys parsed and trusted root loaded once, then reused for any number of digests,
// from any number of goroutines.
type Verifier struct {
	t   *trust
	lim limits
}

// NewVerifier compiles a policy; a bad policy is a KindMalformed error naming the field.
func NewVerifier(p Policy) (*Verifier, error) {
	t, err := compile(p)
	if err != nil {
		return nil, err
	}
	return &Verifier{t: t, lim: defaultLimits}, nil
}

// Verify checks one digest against the compiled policy, as VerifyDigest does.
func (v *Verifier) Verify(ctx context.Context, d name.Digest, opts []remote.Option) (*Result, error) {
	image, err := v1.NewHash(d.DigestStr())
	if err != nil || image.Algorithm != "sha256" {
		return nil, &Error{Kind: KindMalformed, Ref: d.String(), Message: "only sha256 image digests are supported"}
	}
	found, err := discover(ctx, d, opts, v.lim)
	if err != nil {
		return nil, err
	}
	return v.t.evaluate(d.String(), image, found)
}

// Validate reports whether the policy can be used (keys parse, the trusted root loads, identities and predicate
// types are well formed), so that callers can refuse bad input before any side effect.
func (p Policy) Validate() error {
	_, err := compile(p)
	return err
}

// tally collects the outcome of every candidate while evaluating a policy.
type tally struct {
	res        *Result
	seen       map[string]bool     // signer ids already in res.Signers
	nSigs      int                 // signatures examined
	nAtts      int                 // attestations examined
	mismatches int                 // signatures by an accepted signer over another digest
	reasons    []string            // why each rejected signature was rejected
	attReasons map[string][]string // why each rejected attestation was rejected, by predicate type
}

// evaluate applies the policy to the discovered candidates.
func (t *trust) evaluate(ref string, image v1.Hash, found []*candidate) (*Result, error) {
	tl := &tally{res: &Result{Ref: ref}, seen: map[string]bool{}, attReasons: map[string][]string{}}
	for _, c := range found {
		o := t.check(c, image)
		if c.isAttestation() {
			tl.attestation(c, o)
		} else {
			tl.signature(c, o)
		}
	}
	if err := t.enough(ref, tl); err != nil {
		return nil, err
	}
	if err := t.attested(ref, tl); err != nil {
		return nil, err
	}
	return tl.res, nil
}

func (tl *tally) signature(c *candidate, o outcome) {
	tl.nSigs++
	if o.signer == nil {
		if o.mismatch {
			tl.mismatches++
		}
		tl.reasons = append(tl.reasons, fmt.Sprintf("signature %d (%s): %s", tl.nSigs, c.source, o.reason))
		return
	}
	if !tl.seen[o.signer.id()] {
		tl.seen[o.signer.id()] = true
		tl.res.Signers = append(tl.res.Signers, *o.signer)
	}
}

func (tl *tally) attestation(c *candidate, o outcome) {
	tl.nAtts++
	if o.signer != nil {
		tl.res.Attestations = append(tl.res.Attestations, Attestation{PredicateType: c.stmt.PredicateType, Signer: *o.signer,
			Source: c.source, Summary: Summarize(c.stmt.PredicateType, c.stmt.Predicate)})
		return
	}
	pt := "unknown" // a malformed attestation has no readable predicate type
	if c.stmt != nil {
		pt = c.stmt.PredicateType
	}
	tl.attReasons[pt] = append(tl.attReasons[pt], fmt.Sprintf("attestation %d (%s): %s", tl.nAtts, c.source, o.reason))
}

// enough checks the signature threshold and picks the error kind that best explains a shortfall.
func (t *trust) enough(ref string, tl *tally) error {
	res, nSigs := tl.res, tl.nSigs
	if len(res.Signers) >= t.threshold {
		return nil
	}
	e := &Error{Ref: ref, Reasons: tl.reasons}
	switch {
	case nSigs == 0:
		e.Kind, e.Message = KindUnsigned, "no signature found (legacy .sig tag or OCI referrers)"
	case len(res.Signers) == 0 && tl.mismatches > 0:
		e.Kind, e.Message = KindDigestMismatch, "an accepted signer signed another digest, not this image"
	case len(res.Signers) > 0:
		e.Kind = KindUntrusted
		e.Message = fmt.Sprintf("%d of %d required distinct signers matched", len(res.Signers), t.threshold)
	default:
		e.Kind, e.Message = KindUntrusted, fmt.Sprintf("none of %d signatures is from an accepted signer", nSigs)
	}
	return e
}

// attested checks that every required predicate type has an accepted attestation.
func (t *trust) attested(ref string, tl *tally) error {
	res, attReasons := tl.res, tl.attReasons
	var missing, reasons []string
	for _, pt := range t.required {
		ok := false
		for _, a := range res.Attestations {
			ok = ok || a.PredicateType == pt
		}
		if ok {
			continue
		}
		missing = append(missing, pt)
		if rs := attReasons[pt]; len(rs) > 0 {
			reasons = append(reasons, rs...)
		} else {
			reasons = append(reasons, "no attestation of type "+pt+" found")
		}
	}
	if len(missing) == 0 {
		return nil
	}
	reasons = append(reasons, attReasons["unknown"]...)
	if found := res.attestedTypes(); len(found) > 0 {
		reasons = append(reasons, "accepted attestations found: "+strings.Join(found, ", "))
	}
	return &Error{Kind: KindMissingAttestation, Ref: ref, Reasons: reasons,
		Message: "missing required attestation " + strings.Join(missing, ", ")}
}

// outcome of checking one candidate: an accepted signer, or the reason it was not accepted.
type outcome struct {
	signer   *Signer
	reason   string
	mismatch bool // an accepted signer, but over another digest
}

func (t *trust) check(c *candidate, image v1.Hash) outcome {
	if c.err != nil {
		return outcome{reason: "malformed: " + c.err.Error()}
	}
	signer, reason := t.signerOf(c)
	if signer == nil {
		return outcome{reason: reason}
	}
	signer.Source = c.source
	if why := coverage(c, image); why != "" {
		return outcome{reason: fmt.Sprintf("signed by %s, but %s", signer, why), mismatch: true}
	}
	return outcome{signer: signer}
}

// coverage says why the candidate's signed content does not vouch for the image digest ("" when it does).
func coverage(c *candidate, image v1.Hash) string {
	switch {
	case c.payload != nil:
		d, err := signedImageDigest(c.payload)
		if err != nil {
			return err.Error()
		}
		if d != image {
			return "the payload is for " + d.String() + ", not the image digest"
		}
	case c.stmt != nil:
		if !c.stmt.coversDigest(image) {
			return "the statement subject is " + c.stmt.subjectDigests() + ", not the image digest"
		}
	case c.signedDigest != nil:
		if *c.signedDigest != image {
			return "the signature is over " + c.signedDigest.String() + ", not the image digest"
		}
	default:
		return "nothing signed"
	}
	return ""
}

// artifactPolicy makes sigstore-go verify the signature over what the candidate claims was signed; whether that
// is the image is decided afterwards by coverage, so that a wrong digest is told apart from a wrong key.
func (c *candidate) artifactPolicy() verify.ArtifactPolicyOption {
	switch {
	case c.payload != nil:
		return verify.WithArtifact(bytes.NewReader(c.payload))
	case c.signedDigest != nil:
		return verify.WithArtifactDigest("sha256", mustHex(c.signedDigest.Hex))
	default:
		return verify.WithoutArtifactUnsafe() // DSSE: the envelope signature covers the statement checked by coverage
	}
}

// signerOf verifies the candidate's signature against the accepted keys or identities.
func (t *trust) signerOf(c *candidate) (*Signer, string) {
	vc, err := c.entity.VerificationContent()
	if err != nil {
		return nil, "malformed: " + err.Error()
	}
	if cert := vc.Certificate(); cert != nil {
		return t.certSigner(c, cert)
	}
	if len(t.keys) == 0 {
		return nil, "signed with a key, but the policy accepts no keys"
	}
	for _, k := range t.keys {
		for _, v := range k.verifiers {
			if _, err := v.Verify(c.entity, verify.NewPolicy(c.artifactPolicy(), verify.WithKey())); err == nil {
				return &Signer{KeyFingerprint: k.fingerprint}, ""
			}
		}
	}
	return nil, fmt.Sprintf("key mismatch: the signature does not verify with any of the %d accepted keys (other key or altered content)", len(t.keys))
}

// certSigner verifies a certificate-signed candidate against the trusted root and the accepted identities.
func (t *trust) certSigner(c *candidate, cert *x509.Certificate) (*Signer, string) {
	if t.keyless == nil {
		return nil, "signed with a certificate, but the policy accepts no keyless identity"
	}
	opts := make([]verify.PolicyOption, 0, len(t.identities))
	for _, id := range t.identities {
		opts = append(opts, verify.WithCertificateIdentity(id))
	}
	res, err := t.keyless.Verify(c.entity, verify.NewPolicy(c.artifactPolicy(), opts...))
	if err != nil {
		var nomatch *verify.ErrNoMatchingCertificateIdentity
		if errors.As(err, &nomatch) {
			return nil, "certificate identity mismatch: " + describeCert(cert) + " is not an accepted identity"
		}
		return nil, "certificate not trusted: " + err.Error()
	}
	s := res.Signature.Certificate
	return &Signer{Issuer: s.Issuer, Subject: s.SubjectAlternativeName}, ""
}

// describeCert names the issuer and subject of a certificate for an identity-mismatch reason.
func describeCert(cert *x509.Certificate) string {
	sum, err := certificate.SummarizeCertificate(cert)
	if err != nil {
		return "the certificate"
	}
	return fmt.Sprintf("subject %q (issuer %q)", sum.SubjectAlternativeName, sum.Issuer)
}
