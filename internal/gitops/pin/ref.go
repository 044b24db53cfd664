package pin

import (
	"fmt"
	"regexp"
	"strings"
)

var digestPattern = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// ValidateDigest accepts only `sha256:` followed by 64 lowercase hex digits, the form registries address content by.
func ValidateDigest(d string) error {
	if !digestPattern.MatchString(d) {
		return fmt.Errorf("digest %q is not of the form sha256:<64 lowercase hex digits>", d)
	}
	return nil
}

// Target says what to pin: which image to look for and the digest to pin it to.
type Target struct {
	// Image is the repository to match, e.g. "ghcr.io/acme/app"; a tag or digest on it is ignored.
	Image string
	// NewImage is the repository the digest is pinned from when it differs from Image (the image was copied
	// to another registry); empty means Image. References to either repository are matched.
	NewImage string
	// Digest is "sha256:<hex>".
	Digest string
}

// Validate checks the target and names the offending field.
func (t Target) Validate() error {
	if _, ok := normalizeRepo(Repository(t.Image)); !ok {
		return fmt.Errorf("image %q is not a valid image name", t.Image)
	}
	if t.NewImage != "" {
		if _, ok := normalizeRepo(Repository(t.NewImage)); !ok {
			return fmt.Errorf("new image %q is not a valid image name", t.NewImage)
		}
	}
	return ValidateDigest(t.Digest)
}

// repo is the repository written into files (without tag or digest).
func (t Target) repo() string {
	if t.NewImage != "" {
		return Repository(t.NewImage)
	}
	return Repository(t.Image)
}

// pinned is the reference written into files.
func (t Target) pinned() string { return t.repo() + "@" + t.Digest }

// matches reports whether repository r names the target image (before or after a copy).
func (t Target) matches(r string) bool {
	return sameRepo(r, Repository(t.Image)) || (t.NewImage != "" && sameRepo(r, Repository(t.NewImage)))
}

// Repository strips a tag and a digest from an image reference: "r.io/a/b:v1@sha256:…" → "r.io/a/b".
func Repository(ref string) string {
	ref = strings.TrimSpace(ref)
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}

// DigestOf returns the digest part of a reference, or "".
func DigestOf(ref string) string {
	if _, d, ok := strings.Cut(ref, "@"); ok {
		return strings.TrimSpace(d)
	}
	return ""
}

func sameRepo(a, b string) bool {
	na, oka := normalizeRepo(a)
	nb, okb := normalizeRepo(b)
	return oka && okb && na == nb
}

var repoComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// normalizeRepo spells a repository the way Docker resolves it ("nginx" → "docker.io/library/nginx"), so that
// "nginx" in a manifest matches "docker.io/library/nginx" on the command line. ok is false for anything that is
// not a repository name (a template expression, a URL, free text).
func normalizeRepo(r string) (string, bool) {
	if r == "" || strings.ContainsAny(r, " \t\n\"'{}$") {
		return "", false
	}
	parts := strings.Split(r, "/")
	domain := ""
	if len(parts) > 1 && (strings.ContainsAny(parts[0], ".:") || parts[0] == "localhost") {
		domain, parts = parts[0], parts[1:]
	}
	for _, p := range parts {
		if !repoComponent.MatchString(p) {
			return "", false
		}
	}
	switch domain {
	case "", "index.docker.io", "registry-1.docker.io":
		domain = "docker.io"
	}
	if domain == "docker.io" && len(parts) == 1 {
		parts = append([]string{"library"}, parts...)
	}
	return strings.ToLower(domain) + "/" + strings.Join(parts, "/"), true
}
