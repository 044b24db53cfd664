package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// attachment is an artifact attached to a manifest: a legacy cosign tag or an OCI 1.1 referrer.
type attachment struct {
	digest  v1.Hash
	tag     string         // legacy tag name, "" for a referrer
	desc    *v1.Descriptor // referrer descriptor (as the source lists it), nil for a tag
	subject v1.Hash
}

// legacyTagPrefix is the cosign convention: artifacts for sha256:<hex> live under tags sha256-<hex>.<kind>, and
// the bare tag sha256-<hex> is the OCI referrers tag schema fallback index.
func legacyTagPrefix(d v1.Hash) string { return d.Algorithm + "-" + d.Hex }

// copyAttachments copies, breadth first, every artifact attached to the given manifests and then the artifacts
// attached to those, so that signatures of signatures and per-platform attestations arrive too.
// The attachments visited are bounded in all (see attachmentsPerCopyFactor), so that a registry inventing
// referrers of referrers cannot lead the copy on without end.
func (o *copyOp) copyAttachments(ctx context.Context, roots []v1.Hash) error {
	queue := append([]v1.Hash{}, roots...)
	seen := map[v1.Hash]bool{}
	for _, d := range queue {
		seen[d] = true
	}
	maxAll, visited := attachmentsPerCopyFactor*o.c.opts.maxReferrers(), 0
	for i := 0; i < len(queue); i++ {
		atts, err := o.attachmentsOf(ctx, queue[i])
		if err != nil {
			return err
		}
		if visited += len(atts); visited > maxAll {
			return overLimit("%s@%s: more than %d attachments in all, attachments of attachments included (%d times Options.MaxReferrers)",
				o.src, roots[0], maxAll, attachmentsPerCopyFactor)
		}
		for _, a := range atts {
			tree, err := o.copyAttachment(ctx, a)
			if err != nil {
				return err
			}
			for _, d := range tree.digests {
				if !seen[d] {
					seen[d] = true
					queue = append(queue, d)
				}
			}
		}
	}
	return nil
}

func (o *copyOp) copyAttachment(ctx context.Context, a attachment) (treeResult, error) {
	what := "referrer " + a.digest.String()
	if a.tag != "" {
		what = "tag " + a.tag
	}
	tree, err := o.copyTree(ctx, a.digest, a.tag)
	if err != nil {
		return treeResult{}, fmt.Errorf("copying attached %s of %s: %w", what, a.subject, err)
	}
	if a.tag != "" {
		if tree.written {
			o.res.TagsCopied++
		} else {
			o.res.TagsSkipped++
		}
		return tree, nil
	}
	indexed, err := o.ensureReferrerIndexed(ctx, a, tree)
	if err != nil {
		return treeResult{}, fmt.Errorf("recording referrer %s of %s: %w", a.digest, a.subject, err)
	}
	if tree.written || indexed {
		o.res.ReferrersCopied++
	} else {
		o.res.ReferrersSkipped++
	}
	return tree, nil
}

// attachmentsOf lists the source's artifacts attached to d: legacy tags, the referrers API, and the referrers
// fallback tag (read even when the API exists, since older pushes may live only there). More than MaxReferrers
// of them is an error, found before any of them is copied.
func (o *copyOp) attachmentsOf(ctx context.Context, d v1.Hash) ([]attachment, error) {
	atts, hasFallbackTag, err := o.legacyAttachments(ctx, d)
	if err != nil {
		return nil, err
	}
	refs, err := o.sourceReferrers(ctx, d, hasFallbackTag)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i := range refs {
		if seen[refs[i].Digest.String()] {
			continue
		}
		seen[refs[i].Digest.String()] = true
		atts = append(atts, attachment{digest: refs[i].Digest, desc: &refs[i], subject: d})
	}
	if err := o.checkAttachmentCount(d, len(atts)); err != nil {
		return nil, err
	}
	return atts, nil
}

// legacyAttachments resolves d's sha256-<hex>.* tags at the source, and says whether the referrers fallback
// tag sha256-<hex> exists. Too many tags are refused before any is resolved.
func (o *copyOp) legacyAttachments(ctx context.Context, d v1.Hash) (atts []attachment, hasFallbackTag bool, err error) {
	tags, err := o.sourceTags(ctx)
	if err != nil {
		return nil, false, err
	}
	prefix := legacyTagPrefix(d)
	var legacy []string
	for _, t := range tags {
		if t == prefix {
			hasFallbackTag = true
		} else if strings.HasPrefix(t, prefix+".") {
			legacy = append(legacy, t)
		}
	}
	if err := o.checkAttachmentCount(d, len(legacy)); err != nil {
		return nil, false, err
	}
	for _, t := range legacy {
		head, found, err := o.headSource(ctx, t)
		if err != nil {
			return nil, false, err
		}
		if found { // a tag deleted since the listing has nothing to copy
			atts = append(atts, attachment{digest: head.Digest, tag: t, subject: d})
		}
	}
	return atts, hasFallbackTag, nil
}

// checkAttachmentCount refuses a digest with more than MaxReferrers attachments (legacy tags and referrers
// together).
func (o *copyOp) checkAttachmentCount(d v1.Hash, n int) error {
	if maxRefs := o.c.opts.maxReferrers(); n > maxRefs {
		return overLimit("%s@%s has more than %d attachments (Options.MaxReferrers)", o.src, d, maxRefs)
	}
	return nil
}

func (o *copyOp) sourceTags(ctx context.Context) ([]string, error) {
	if o.srcTagsListed {
		return o.srcTags, nil
	}
	err := retry(ctx, o.c.opts.Retry, "listing source tags", func() (err error) {
		o.srcTags, err = listTags(ctx, o.srcC, o.src)
		return err
	})
	if err != nil {
		return nil, err
	}
	o.srcTagsListed = true
	return o.srcTags, nil
}

func (o *copyOp) headSource(ctx context.Context, ref string) (head manifestHead, found bool, err error) {
	err = retry(ctx, o.c.opts.Retry, "resolving source tag "+ref, func() (err error) {
		head, found, err = headManifest(ctx, o.srcC, o.src, ref)
		return err
	})
	return head, found, err
}

// sourceReferrers returns the referrers of d from the API (while the source supports it) and from the
// fallback tag when it exists.
func (o *copyOp) sourceReferrers(ctx context.Context, d v1.Hash, hasFallbackTag bool) ([]v1.Descriptor, error) {
	var out []v1.Descriptor
	if o.srcReferrers == nil || *o.srcReferrers {
		var supported bool
		err := retry(ctx, o.c.opts.Retry, "listing source referrers of "+d.String(), func() (err error) {
			out, supported, err = listReferrers(ctx, o.srcC, o.src, d)
			return err
		})
		if err != nil {
			return nil, err
		}
		o.srcReferrers = ptr(supported)
	}
	if hasFallbackTag {
		idx, err := o.readFallbackIndex(ctx, d, false)
		if err != nil {
			return nil, err
		}
		out = append(out, idx.Manifests...)
	}
	return out, nil
}

// readFallbackIndex reads the referrers tag sha256-<hex> of subject d at the source (dst=false) or the
// destination; a missing tag is an empty index.
func (o *copyOp) readFallbackIndex(ctx context.Context, d v1.Hash, dst bool) (v1.IndexManifest, error) {
	c, repo := o.srcC, o.src
	if dst {
		c, repo = o.dstC, o.dst
	}
	tag := legacyTagPrefix(d)
	var raw []byte
	var found = true
	err := retry(ctx, o.c.opts.Retry, "reading referrers tag "+tag, func() (err error) {
		raw, _, _, err = getManifest(ctx, c, repo, tag)
		if isNotFound(err) {
			found = false
			return nil
		}
		return err
	})
	if err != nil {
		return v1.IndexManifest{}, err
	}
	if !found {
		return v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}, nil
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.IndexManifest{}, fmt.Errorf("referrers tag %s of %s: not an image index: %w", tag, repo, err)
	}
	return *idx, nil
}

// ensureReferrerIndexed makes a referrer discoverable at the destination. Registries with the referrers API
// index it themselves; for the others Ferry maintains the referrers tag schema (the sha256-<hex> index), adding
// the referrer once. It reports whether the index had to be written.
func (o *copyOp) ensureReferrerIndexed(ctx context.Context, a attachment, tree treeResult) (bool, error) {
	supported, err := o.destinationSupportsReferrers(ctx, a.subject)
	if err != nil || supported {
		return false, err
	}
	idx, err := o.readFallbackIndex(ctx, a.subject, true)
	if err != nil {
		return false, err
	}
	for _, m := range idx.Manifests {
		if m.Digest == a.digest {
			return false, nil
		}
	}
	raw, mt := tree.rootRaw, tree.rootMT
	if raw == nil {
		var err error
		if raw, mt, err = o.fetchSource(ctx, a.digest); err != nil {
			return false, err
		}
	}
	desc, err := referrerDescriptor(raw, mt)
	if err != nil {
		return false, err
	}
	idx.SchemaVersion, idx.MediaType = 2, types.OCIImageIndex
	idx.Manifests = append(idx.Manifests, desc)
	sort.Slice(idx.Manifests, func(i, j int) bool { return idx.Manifests[i].Digest.String() < idx.Manifests[j].Digest.String() })
	raw, err = jsonMarshal(idx)
	if err != nil {
		return false, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return false, err
	}
	tag := legacyTagPrefix(a.subject)
	err = retry(ctx, o.c.opts.Retry, "writing referrers tag "+tag, func() error {
		_, err := putManifest(ctx, o.dstC, o.dst, tag, raw, types.OCIImageIndex, h)
		return err
	})
	return err == nil, err
}

// destinationSupportsReferrers asks the destination once per copy whether it implements the referrers API.
func (o *copyOp) destinationSupportsReferrers(ctx context.Context, subject v1.Hash) (bool, error) {
	if o.dstReferrers != nil {
		return *o.dstReferrers, nil
	}
	var supported bool
	err := retry(ctx, o.c.opts.Retry, "probing the destination referrers API", func() (err error) {
		_, supported, err = listReferrers(ctx, o.dstC, o.dst, subject)
		return err
	})
	if err != nil {
		return false, err
	}
	o.dstReferrers = ptr(supported)
	return supported, nil
}

// referrerDescriptor describes a referrer the way the referrers API would: its artifactType (or its config's media
// type) and its annotations, read from the manifest itself rather than trusted from a listing.
func referrerDescriptor(raw []byte, mt types.MediaType) (v1.Descriptor, error) {
	var m struct {
		ArtifactType string            `json:"artifactType"`
		Annotations  map[string]string `json:"annotations"`
		Config       *v1.Descriptor    `json:"config"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return v1.Descriptor{}, permanentError{fmt.Errorf("referrer manifest is not valid JSON: %w", err)}
	}
	d, size, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, err
	}
	desc := v1.Descriptor{MediaType: mt, Digest: d, Size: size, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	if desc.ArtifactType == "" && m.Config != nil {
		desc.ArtifactType = string(m.Config.MediaType)
	}
	return desc, nil
}
