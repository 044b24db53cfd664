package signature

import (
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// ParseDigestReference parses "registry/repo@sha256:<hex>". A tag, even alongside a digest, is refused: a tag can
// move after verification, a digest cannot, and only a digest can be the subject of a signature.
func ParseDigestReference(s string) (name.Digest, error) {
	if s == "" {
		return name.Digest{}, malformed("image reference is empty")
	}
	if !strings.Contains(s, "@") {
		return name.Digest{}, malformed("image reference %q names a tag, but a digest is required (repo@sha256:…)", s)
	}
	repo, _, _ := strings.Cut(s, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		return name.Digest{}, malformed("image reference %q has both a tag and a digest; give the digest only", s)
	}
	d, err := name.NewDigest(s)
	if err != nil {
		return name.Digest{}, malformed("image reference %q: %v", s, err)
	}
	if !strings.HasPrefix(d.DigestStr(), "sha256:") {
		return name.Digest{}, malformed("image reference %q: only sha256 digests are supported", s)
	}
	return d, nil
}
