package signature

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/verify"
)

// Layer media types that carry signatures, in either layout.
const (
	mediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	mediaTypeDSSE          = "application/vnd.dsse.envelope.v1+json"
	mediaTypeBundlePrefix  = "application/vnd.dev.sigstore.bundle"
)

// candidate is one signature or attestation found for the digest, not yet trusted.
type candidate struct {
	source string // where it was found, for reasons: "tag sha256-….sig layer 1", "referrer sha256:…"
	entity verify.SignedEntity
	// Exactly one of payload, stmt and signedDigest says what was signed: a simple-signing payload, an in-toto
	// statement (in a DSSE envelope), or the image manifest digest itself (a bundle's message signature).
	payload      []byte
	stmt         *statement
	signedDigest *v1.Hash
	dsseLayer    bool  // found in a legacy DSSE layer: an attestation even when it cannot be parsed
	err          error // the candidate could not be parsed
}

// isAttestation tells attestations from signatures: cosign's new bundle format writes plain signatures as
// in-toto statements of the cosign "sign" predicate type.
func (c *candidate) isAttestation() bool {
	if c.stmt == nil {
		return c.dsseLayer
	}
	return c.stmt.PredicateType != predicateCosignSign
}

// discovery is one search for the signatures of d, within the bounds of one verification.
type discovery struct {
	d      name.Digest
	opts   []remote.Option
	budget *budget
}

// discover finds every signature and attestation of d in the legacy tags and the referrers (API or tag fallback).
// More than lim allows is a KindTooLarge error.
func discover(ctx context.Context, d name.Digest, opts []remote.Option, lim limits) ([]*candidate, error) {
	opts = append(append([]remote.Option{}, opts...), remote.WithContext(ctx))
	// One puller for every request: the registry handshake (ping, token) happens once, not once per manifest.
	puller, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, fmt.Errorf("registry client for %s: %w", d, err)
	}
	x := &discovery{d: d, opts: append(opts, remote.Reuse(puller)), budget: newBudget(d.String(), lim)}
	if _, err := remote.Head(d, x.opts...); err != nil {
		if isNotFound(err) {
			return nil, &Error{Kind: KindNotFound, Ref: d.String(), Message: "image digest not found in the repository"}
		}
		return nil, fmt.Errorf("looking up %s: %w", d, err)
	}
	var found []*candidate
	for _, suffix := range []string{".sig", ".att"} {
		tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + suffix)
		cs, err := x.fromManifest(tag, "tag "+tag.TagStr())
		if err != nil {
			return nil, err
		}
		found = append(found, cs...)
	}
	cs, err := x.fromReferrers()
	if err != nil {
		return nil, err
	}
	return append(found, cs...), nil
}

// fromReferrers reads the signature layers of every referrer of the digest that is an image manifest. More
// referrers than the limit (of any artifact type) is an error: which of them would be left out is the
// registry's choice.
func (x *discovery) fromReferrers() ([]*candidate, error) {
	idx, err := remote.Referrers(x.d, x.opts...)
	if err != nil {
		return nil, fmt.Errorf("listing referrers of %s: %w", x.d, err)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading referrers of %s: %w", x.d, err)
	}
	if err := x.budget.manifest(int64(len(raw)), "the referrers index"); err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading referrers of %s: %w", x.d, err)
	}
	if n, limit := len(im.Manifests), x.budget.lim.referrers; n > limit {
		return nil, tooLarge(x.d.String(), "the digest has %d referrers, more than the %d Ferry examines", n, limit)
	}
	var found []*candidate
	for _, desc := range im.Manifests {
		if !desc.MediaType.IsImage() {
			continue
		}
		where := "referrer " + desc.Digest.String()
		if desc.Size > x.budget.lim.manifestBytes { // refused as listed, before it is fetched
			return nil, tooLarge(x.d.String(), "%s is %d bytes, more than the %d Ferry reads", where, desc.Size, x.budget.lim.manifestBytes)
		}
		cs, err := x.fromManifest(x.d.Context().Digest(desc.Digest.String()), where)
		if err != nil {
			return nil, err
		}
		found = append(found, cs...)
	}
	return found, nil
}

// fromManifest reads the signature layers of one manifest; a missing manifest simply holds no signatures.
func (x *discovery) fromManifest(ref name.Reference, where string) ([]*candidate, error) {
	desc, err := remote.Get(ref, x.opts...)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("fetching %s: %w", ref, err)
	}
	if err := x.budget.manifest(int64(len(desc.Manifest)), "the manifest of "+where); err != nil {
		return nil, err
	}
	if !desc.MediaType.IsImage() {
		return []*candidate{{source: where, err: fmt.Errorf("%s is not an image manifest", desc.MediaType)}}, nil
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", ref, err)
	}
	if n, limit := len(m.Layers), x.budget.lim.layers; n > limit {
		return nil, tooLarge(x.d.String(), "%s has %d layers, more than the %d Ferry examines", where, n, limit)
	}
	return x.fromLayers(img, m.Layers, where)
}

// fromLayers reads and parses the layers that carry signatures, in either layout.
func (x *discovery) fromLayers(img v1.Image, layers []v1.Descriptor, where string) ([]*candidate, error) {
	var found []*candidate
	for i, layer := range layers {
		kind := layerKind(layer.MediaType)
		if kind == "" {
			continue
		}
		c := &candidate{source: where, dsseLayer: kind == "dsse"}
		if len(layers) > 1 {
			c.source = fmt.Sprintf("%s layer %d", where, i+1)
		}
		raw, err := x.readLayer(img, layer)
		switch {
		case errors.Is(err, errTooLarge):
			c.err = err
		case err != nil:
			if KindOf(err) == KindTooLarge {
				return nil, err
			}
			return nil, fmt.Errorf("reading %s: %w", c.source, err)
		default:
			c.parse(kind, raw, layer.Annotations)
		}
		found = append(found, c)
	}
	return found, nil
}

func layerKind(mt types.MediaType) string {
	s := string(mt)
	switch {
	case s == mediaTypeSimpleSigning:
		return "simplesigning"
	case s == mediaTypeDSSE:
		return "dsse"
	case strings.HasPrefix(s, mediaTypeBundlePrefix):
		return "bundle"
	}
	return ""
}

// readLayer reads one layer of at most the per-blob limit, as its descriptor declares it: the declared size is
// checked and taken from the budget before a byte is read, and no more than one byte past it is read.
func (x *discovery) readLayer(img v1.Image, desc v1.Descriptor) ([]byte, error) {
	if limit := x.budget.lim.blobBytes; desc.Size > limit || desc.Size < 0 {
		return nil, fmt.Errorf("%w: it declares %d bytes, the limit is %d", errTooLarge, desc.Size, limit)
	}
	if err := x.budget.spend(desc.Size, "layer "+desc.Digest.String()); err != nil {
		return nil, err
	}
	layer, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return nil, err
	}
	rc, err := layer.Compressed() // verifies the blob against its digest and size while reading
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, desc.Size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > desc.Size {
		return nil, fmt.Errorf("%w: the registry sent more than the %d bytes it declares", errTooLarge, desc.Size)
	}
	return raw, nil
}

// parse fills the candidate from a layer; a malformed layer is kept with its error so the reason can be reported.
func (c *candidate) parse(kind string, raw []byte, ann map[string]string) {
	switch kind {
	case "simplesigning":
		c.payload = raw
		c.entity, c.err = newLegacySignature(raw, ann)
	case "dsse":
		c.dsseLayer = true
		c.entity, c.stmt, c.err = newLegacyAttestation(raw, ann)
	case "bundle":
		c.entity, c.stmt, c.signedDigest, c.err = parseBundle(raw)
	}
	if c.err != nil {
		c.entity = nil
	}
}

// parseBundle reads a sigstore bundle and says what it signs: an in-toto statement (DSSE) or a digest.
func parseBundle(raw []byte) (verify.SignedEntity, *statement, *v1.Hash, error) {
	if len(raw) > maxPayloadBytes {
		return nil, nil, nil, fmt.Errorf("sigstore bundle is %d bytes, more than %d", len(raw), maxPayloadBytes)
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON(raw); err != nil {
		return nil, nil, nil, fmt.Errorf("sigstore bundle: %w", err)
	}
	content, err := b.SignatureContent()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sigstore bundle: %w", err)
	}
	if env := content.EnvelopeContent(); env != nil {
		raw := env.RawEnvelope()
		if raw.PayloadType != inTotoPayloadType {
			return nil, nil, nil, fmt.Errorf("sigstore bundle DSSE payload type %q is not %s", raw.PayloadType, inTotoPayloadType)
		}
		st, err := decodeStatement(raw.Payload)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("sigstore bundle: %w", err)
		}
		return &b, st, nil, nil
	}
	msg := content.MessageSignatureContent()
	if msg == nil || msg.DigestAlgorithm() != "SHA2_256" || len(msg.Digest()) != 32 {
		return nil, nil, nil, errors.New("sigstore bundle message signature is not over a SHA-256 digest")
	}
	h := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", msg.Digest())}
	return &b, nil, &h, nil
}

// isNotFound reports a registry's 404 (or its NAME/MANIFEST_UNKNOWN error codes).
func isNotFound(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range terr.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}
