package publish

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrycd/ferry/internal/registry"
)

// RegistryOptions are how the release talks to registries: your Docker login's credentials, plain HTTP only to
// loopback hosts and those listed.
func RegistryOptions(insecure []string) registry.Options {
	return registry.Options{Keychain: authn.DefaultKeychain, Insecure: insecure}
}

// Push writes the index and everything it references to repository (host/path), tagged tag, and returns the
// reference pinned by digest.
func Push(ctx context.Context, ro registry.Options, repository, tag string, idx v1.ImageIndex) (name.Digest, error) {
	repo, err := ro.ParseRepository("repository", repository)
	if err != nil {
		return name.Digest{}, err
	}
	h, err := idx.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	ropts, err := registry.RemoteOptions(ctx, ro)
	if err != nil {
		return name.Digest{}, err
	}
	t := repo.Tag(Tag(tag))
	if err := remote.WriteIndex(t, idx, ropts...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", t, err)
	}
	return repo.Digest(h.String()), nil
}

// Tag turns a version into a valid tag: a tag may hold letters, digits, '_', '.' and '-' only.
func Tag(version string) string {
	var b strings.Builder
	for i, r := range version {
		ok := r == '_' || r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		switch {
		case i == 0 && (r == '.' || r == '-'):
			b.WriteByte('_')
		case ok:
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	if s := b.String(); s != "" && len(s) <= 128 {
		return s
	}
	return "unversioned"
}

// PinnedReference is "repository@sha256:…" for a digest, the form install.yaml and the chart use.
func PinnedReference(d name.Digest) string { return d.Context().Name() + "@" + d.DigestStr() }
