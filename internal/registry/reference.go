package registry

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// ErrDigestRequired is returned when a reference names a tag where only a digest is accepted: copies are
// content-addressed so that re-running one is always safe.
var ErrDigestRequired = errors.New("a digest is required (REPOSITORY@sha256:<64 hex>), not a tag")

// ParseReference parses a tag or digest reference, marking the registry insecure when Options allow plain HTTP
// to it. field names the input in error messages (for example "source").
func (o Options) ParseReference(field, s string) (name.Reference, error) {
	if err := checkNotBlank(field, s); err != nil {
		return nil, err
	}
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", field, s, err)
	}
	if o.plainHTTPAllowed(ref.Context().RegistryStr()) {
		if ref, err = name.ParseReference(s, name.Insecure); err != nil {
			return nil, fmt.Errorf("%s %q: %w", field, s, err)
		}
	}
	return ref, nil
}

// ParseDigest parses REPOSITORY@sha256:<hex>; a reference without a digest is refused with ErrDigestRequired.
func (o Options) ParseDigest(field, s string) (name.Digest, error) {
	ref, err := o.ParseReference(field, s)
	if err != nil {
		return name.Digest{}, err
	}
	d, ok := ref.(name.Digest)
	if !ok {
		return name.Digest{}, fmt.Errorf("%s %q: %w", field, s, ErrDigestRequired)
	}
	return d, nil
}

// ParseRepository parses REGISTRY/REPOSITORY with neither tag nor digest.
func (o Options) ParseRepository(field, s string) (name.Repository, error) {
	if err := checkNotBlank(field, s); err != nil {
		return name.Repository{}, err
	}
	if strings.Contains(s, "@") {
		return name.Repository{}, fmt.Errorf("%s %q: expected a repository without a digest", field, s)
	}
	var opts []name.Option
	repo, err := name.NewRepository(s)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%s %q: %w (expected REGISTRY/REPOSITORY without tag or digest)", field, s, err)
	}
	if o.plainHTTPAllowed(repo.RegistryStr()) {
		opts = append(opts, name.Insecure)
		if repo, err = name.NewRepository(s, opts...); err != nil {
			return name.Repository{}, fmt.Errorf("%s %q: %w", field, s, err)
		}
	}
	return repo, nil
}

func checkNotBlank(field, s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("%s: a reference is required", field)
	}
	if strings.TrimSpace(s) != s || strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("%s %q: references contain no whitespace", field, s)
	}
	return nil
}
