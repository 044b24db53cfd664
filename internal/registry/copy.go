package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// CopyResult tells what a copy did. Copy returns it without error only for a complete copy: the destination
// serves the source digest and every attached artifact. With an error, the counters say what was done before
// the failure, and the copy must not be taken as done.
type CopyResult struct {
	// Destination is DESTINATION_REPOSITORY@DIGEST.
	Destination string
	// Digest is the copied (and verified) manifest digest.
	Digest string

	BlobsCopied  int
	BlobsMounted int
	BlobsSkipped int
	// BytesMoved counts blob bytes sent to the destination (retried transfers included).
	BytesMoved int64

	ManifestsCopied  int
	ManifestsSkipped int
	// ReferrersCopied/ReferrersSkipped count OCI 1.1 referrers written or already present.
	ReferrersCopied  int
	ReferrersSkipped int
	// TagsCopied/TagsSkipped count legacy attachment tags (sha256-<hex>.sig/.att/.sbom/...).
	TagsCopied  int
	TagsSkipped int

	// Requests counts every HTTP request made, to both registries, handshakes and retries included.
	Requests int64
}

// copyOp is one copy in progress.
type copyOp struct {
	*op
	src, dst      name.Repository
	srcC, dstC    *conn
	mount         bool // same registry, different repository: blobs can be mounted
	blobsCopied   atomic.Int64
	blobsMounted  atomic.Int64
	blobsSkipped  atomic.Int64
	bytesMoved    atomic.Int64
	res           CopyResult
	srcTags       []string
	srcTagsListed bool
	srcReferrers  *bool // nil until the source answers a referrers request
	dstReferrers  *bool
}

// Copy copies the manifest src (REPOSITORY@sha256:...) into the repository dst, with every blob, every child of
// an index, and every artifact attached to any of them (legacy cosign tags and OCI 1.1 referrers, recursively).
// It never moves a blob the destination already has, mounts blobs across repositories of one registry, and
// returns only once the destination serves the source digest.
func (c *Client) Copy(ctx context.Context, src, dst string) (CopyResult, error) {
	srcRef, err := c.opts.ParseDigest("source", src)
	if err != nil {
		return CopyResult{}, err
	}
	dstRepo, err := c.opts.ParseRepository("destination", dst)
	if err != nil {
		return CopyResult{}, err
	}
	want, err := v1.NewHash(srcRef.DigestStr())
	if err != nil {
		return CopyResult{}, fmt.Errorf("source %q: %w", src, err)
	}
	o, err := c.newCopyOp(srcRef.Context(), dstRepo)
	if err != nil {
		return CopyResult{}, err
	}
	res, err := o.run(ctx, want)
	res.Requests = o.requests.Load()
	if err != nil {
		return res, fmt.Errorf("copying %s to %s: %w", srcRef, dstRepo, err)
	}
	return res, nil
}

func (c *Client) newCopyOp(src, dst name.Repository) (*copyOp, error) {
	o := &copyOp{op: c.newOp(), src: src, dst: dst}
	var err error
	if o.srcC, err = o.conn(src, src.Scope("pull")); err != nil {
		return nil, err
	}
	dstScopes := []string{dst.Scope("push,pull")}
	o.mount = src.RegistryStr() == dst.RegistryStr() && src.RepositoryStr() != dst.RepositoryStr()
	if o.mount {
		dstScopes = append(dstScopes, src.Scope("pull"))
	}
	if o.dstC, err = o.conn(dst, dstScopes...); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *copyOp) run(ctx context.Context, want v1.Hash) (CopyResult, error) {
	root, err := o.copyTree(ctx, want, "")
	if err != nil {
		return o.result(want), err
	}
	if err := o.copyAttachments(ctx, root.digests); err != nil {
		return o.result(want), err
	}
	// The proof of completion is the destination itself serving the digest.
	if root.written {
		if err := o.verify(ctx, want); err != nil {
			return o.result(want), err
		}
	}
	return o.result(want), nil
}

func (o *copyOp) result(d v1.Hash) CopyResult {
	r := o.res
	r.Destination = o.dst.Digest(d.String()).String()
	r.Digest = d.String()
	r.BlobsCopied = int(o.blobsCopied.Load())
	r.BlobsMounted = int(o.blobsMounted.Load())
	r.BlobsSkipped = int(o.blobsSkipped.Load())
	r.BytesMoved = o.bytesMoved.Load()
	return r
}

func (o *copyOp) verify(ctx context.Context, want v1.Hash) error {
	var head manifestHead
	var found bool
	err := retry(ctx, o.c.opts.Retry, "verifying destination", func() (err error) {
		head, found, err = headManifest(ctx, o.dstC, o.dst, want.String())
		return err
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("destination does not serve %s after the copy: %w", want, ErrNotFound)
	}
	if head.Digest != want {
		return fmt.Errorf("destination serves %s as %s: %w", want, head.Digest, ErrDigestMismatch)
	}
	return nil
}

// treeResult describes a copied manifest tree.
type treeResult struct {
	digests []v1.Hash // every manifest of the tree: where attachments may hang
	written bool      // whether the root manifest had to be written
	rootRaw []byte    // the root manifest when it was read from the source
	rootMT  types.MediaType
}

// pendingManifest is a manifest to write once its blobs and children are at the destination.
type pendingManifest struct {
	digest v1.Hash
	ref    string
	raw    []byte
	mt     types.MediaType
}

// plan collects what copying a manifest tree needs: the manifests to write (children before parents) and the
// blobs they reference.
type plan struct {
	digests []v1.Hash
	writes  []pendingManifest
	blobs   []v1.Descriptor
	seen    map[v1.Hash]bool
}

// manifestDoc is the union of the image manifest and index fields Ferry needs.
type manifestDoc struct {
	SchemaVersion int              `json:"schemaVersion"`
	MediaType     types.MediaType  `json:"mediaType"`
	Config        *v1.Descriptor   `json:"config"`
	Layers        []v1.Descriptor  `json:"layers"`
	Manifests     []v1.Descriptor  `json:"manifests"`
	Blobs         []v1.Descriptor  `json:"blobs"` // the short-lived OCI artifact manifest
	Subject       *v1.Descriptor   `json:"subject"`
	FSLayers      []map[string]any `json:"fsLayers"`
}

func parseManifest(raw []byte, mt types.MediaType) (manifestDoc, error) {
	var m manifestDoc
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, permanentError{fmt.Errorf("manifest is not valid JSON: %w", err)}
	}
	if m.SchemaVersion == 1 || m.FSLayers != nil || strings.Contains(string(mt), "v1+prettyjws") {
		return m, permanentError{fmt.Errorf("docker schema 1 manifests are not supported")}
	}
	if m.SchemaVersion != 2 {
		return m, permanentError{fmt.Errorf("unsupported manifest schemaVersion %d", m.SchemaVersion)}
	}
	return m, nil
}

func (m manifestDoc) isIndex(mt types.MediaType) bool {
	return mt.IsIndex() || (m.Manifests != nil && m.Config == nil)
}

// copyTree copies one manifest (by digest, written under tag when tag is set) and everything it references.
func (o *copyOp) copyTree(ctx context.Context, d v1.Hash, tag string) (treeResult, error) {
	p := &plan{seen: map[v1.Hash]bool{}}
	written, err := o.planManifest(ctx, p, d, tag, 0)
	if err != nil {
		return treeResult{}, err
	}
	if err := o.copyBlobs(ctx, p.blobs); err != nil {
		return treeResult{}, err
	}
	for _, w := range p.writes {
		err := retry(ctx, o.c.opts.Retry, "writing manifest "+w.ref, func() error {
			acked, err := putManifest(ctx, o.dstC, o.dst, w.ref, w.raw, w.mt, w.digest)
			if acked {
				o.dstReferrers = ptr(true)
			}
			return err
		})
		if err != nil {
			return treeResult{}, err
		}
		o.res.ManifestsCopied++
	}
	tr := treeResult{digests: p.digests, written: written}
	if n := len(p.writes); written && n > 0 {
		tr.rootRaw, tr.rootMT = p.writes[n-1].raw, p.writes[n-1].mt
	}
	return tr, nil
}

const maxIndexDepth = 8

// planManifest records manifest d (and, for an index, its children) in p unless the destination already serves
// it under ref. It returns whether d itself must be written.
func (o *copyOp) planManifest(ctx context.Context, p *plan, d v1.Hash, tag string, depth int) (bool, error) {
	if depth > maxIndexDepth {
		return false, permanentError{fmt.Errorf("manifest %s: indexes nested deeper than %d", d, maxIndexDepth)}
	}
	if p.seen[d] && tag == "" {
		return false, nil
	}
	p.seen[d] = true
	p.digests = append(p.digests, d)
	ref := d.String()
	if tag != "" {
		ref = tag
	}
	var head manifestHead
	var found bool
	err := retry(ctx, o.c.opts.Retry, "checking destination manifest "+ref, func() (err error) {
		head, found, err = headManifest(ctx, o.dstC, o.dst, ref)
		return err
	})
	if err != nil {
		return false, err
	}
	if found && head.Digest == d {
		o.res.ManifestsSkipped++
		// Present manifests have their blobs and children; children are still visited for their attachments.
		if head.MediaType.IsIndex() {
			return false, o.planPresentChildren(ctx, p, d, depth)
		}
		return false, nil
	}
	raw, mt, err := o.fetchSource(ctx, d)
	if err != nil {
		return false, err
	}
	m, err := parseManifest(raw, mt)
	if err != nil {
		return false, fmt.Errorf("source manifest %s: %w", d, err)
	}
	if m.isIndex(mt) {
		for _, child := range m.Manifests {
			if _, err := o.planManifest(ctx, p, child.Digest, "", depth+1); err != nil {
				return false, err
			}
		}
	} else {
		p.addBlobs(m)
	}
	p.writes = append(p.writes, pendingManifest{digest: d, ref: ref, raw: raw, mt: mt})
	return true, nil
}

func (p *plan) addBlobs(m manifestDoc) {
	descs := append([]v1.Descriptor{}, m.Layers...)
	descs = append(descs, m.Blobs...)
	if m.Config != nil {
		descs = append(descs, *m.Config)
	}
	for _, d := range descs {
		// Foreign (non-distributable) layers live elsewhere by design and are never pushed.
		if !d.MediaType.IsDistributable() || len(d.URLs) > 0 && !d.MediaType.IsLayer() {
			continue
		}
		if p.seen[d.Digest] {
			continue
		}
		p.seen[d.Digest] = true
		p.blobs = append(p.blobs, d)
	}
}

// planPresentChildren walks an index already at the destination only to learn its children's digests.
func (o *copyOp) planPresentChildren(ctx context.Context, p *plan, d v1.Hash, depth int) error {
	raw, mt, err := o.fetchSource(ctx, d)
	if err != nil {
		return err
	}
	m, err := parseManifest(raw, mt)
	if err != nil {
		return fmt.Errorf("source manifest %s: %w", d, err)
	}
	for _, child := range m.Manifests {
		if _, err := o.planManifest(ctx, p, child.Digest, "", depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (o *copyOp) fetchSource(ctx context.Context, d v1.Hash) (raw []byte, mt types.MediaType, err error) {
	err = retry(ctx, o.c.opts.Retry, "reading source manifest "+d.String(), func() (err error) {
		raw, mt, _, err = getManifest(ctx, o.srcC, o.src, d.String())
		return err
	})
	if isNotFound(err) {
		return nil, "", fmt.Errorf("source manifest %s@%s: %w", o.src, d, ErrNotFound)
	}
	return raw, mt, err
}

func ptr[T any](v T) *T { return &v }
