package scm

import (
	"strings"
	"unicode/utf8"
)

const (
	// BranchPrefix starts every branch Ferry opens a pull request from.
	BranchPrefix = "ferry/"
	// MaxBranchLength bounds any branch name handed to a forge; GitHub and GitLab refuse refs much
	// longer than this, and a bound keeps names readable in their UIs.
	MaxBranchLength = 200
	// maxNameLength bounds promotion and stage names (a Kubernetes DNS label).
	maxNameLength = 63
	// ShortDigestLength is the number of hex characters of the digest kept in branch names: 48 bits,
	// far beyond the number of digests a stage ever sees.
	ShortDigestLength = 12
)

// digestHexLength maps the digest algorithms OCI registries use to their hex lengths.
var digestHexLength = map[string]int{"sha256": 64, "sha512": 128}

// ShortDigest returns the first ShortDigestLength hex characters of an OCI digest ("sha256:<hex>").
func ShortDigest(digest string) (string, error) {
	algo, hex, ok := strings.Cut(digest, ":")
	if !ok {
		return "", inputErr("digest", "%q is not algorithm:hex", digest)
	}
	want, known := digestHexLength[algo]
	if !known {
		return "", inputErr("digest", "algorithm %q is not sha256 or sha512", algo)
	}
	if len(hex) != want || !isLowerHex(hex) {
		return "", inputErr("digest", "%s digest needs %d lowercase hex characters", algo, want)
	}
	return hex[:ShortDigestLength], nil
}

// BranchName derives the head branch for promoting digest into stage of promotion:
// "ferry/<promotion>/<stage>/<short-digest>". The same inputs always give the same name, which is
// how an existing pull request is found again after a restart.
func BranchName(promotion, stage, digest string) (string, error) {
	if err := validateName("promotion", promotion); err != nil {
		return "", err
	}
	if err := validateName("stage", stage); err != nil {
		return "", err
	}
	short, err := ShortDigest(digest)
	if err != nil {
		return "", err
	}
	name := BranchPrefix + promotion + "/" + stage + "/" + short
	return name, ValidateBranch("head branch", name)
}

// BranchParts is what a Ferry branch name encodes.
type BranchParts struct {
	Promotion, Stage, ShortDigest string
}

// ParseBranchName reads a name made by BranchName; it fails on any other branch.
func ParseBranchName(name string) (BranchParts, error) {
	rest, ok := strings.CutPrefix(name, BranchPrefix)
	if !ok {
		return BranchParts{}, inputErr("branch", "%q does not start with %q", name, BranchPrefix)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return BranchParts{}, inputErr("branch", "%q is not ferry/<promotion>/<stage>/<short-digest>", name)
	}
	p := BranchParts{Promotion: parts[0], Stage: parts[1], ShortDigest: parts[2]}
	if err := validateName("promotion", p.Promotion); err != nil {
		return BranchParts{}, err
	}
	if err := validateName("stage", p.Stage); err != nil {
		return BranchParts{}, err
	}
	if len(p.ShortDigest) != ShortDigestLength || !isLowerHex(p.ShortDigest) {
		return BranchParts{}, inputErr("branch", "%q does not end in %d lowercase hex characters", name, ShortDigestLength)
	}
	return p, nil
}

// validateName accepts lowercase DNS labels with inner dots, the shape of Kubernetes names, so that
// each one is a safe single path component of a branch.
func validateName(field, s string) error {
	if s == "" {
		return inputErr(field, "must not be empty")
	}
	if len(s) > maxNameLength {
		return inputErr(field, "%d characters is longer than %d", len(s), maxNameLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		edge := i == 0 || i == len(s)-1
		if !alnum && (edge || c != '-' && c != '.') {
			return inputErr(field, "%q must be lowercase letters, digits, '-' or '.', starting and ending alphanumeric", s)
		}
	}
	if strings.Contains(s, "..") {
		return inputErr(field, "%q must not contain \"..\"", s)
	}
	return nil
}

// ValidateBranch applies git's ref-name rules (git check-ref-format) plus MaxBranchLength to a
// branch name; field names the input in the error.
func ValidateBranch(field, name string) error {
	switch {
	case name == "":
		return inputErr(field, "must not be empty")
	case len(name) > MaxBranchLength:
		return inputErr(field, "%d bytes is longer than %d", len(name), MaxBranchLength)
	case !utf8.ValidString(name):
		return inputErr(field, "%q is not valid UTF-8", name)
	case name == "@" || strings.Contains(name, "@{"):
		return inputErr(field, "%q must not be \"@\" or contain \"@{\"", name)
	case strings.Contains(name, ".."):
		return inputErr(field, "%q must not contain \"..\"", name)
	case strings.HasPrefix(name, "-"):
		return inputErr(field, "%q must not start with '-'", name)
	case strings.HasSuffix(name, "."):
		return inputErr(field, "%q must not end with '.'", name)
	}
	if i := strings.IndexFunc(name, forbiddenInRef); i >= 0 {
		return inputErr(field, "%q contains the forbidden character %q", name, name[i:i+1])
	}
	for _, comp := range strings.Split(name, "/") {
		if comp == "" {
			return inputErr(field, "%q has an empty path component", name)
		}
		if strings.HasPrefix(comp, ".") || strings.HasSuffix(comp, ".lock") {
			return inputErr(field, "%q has a component starting with '.' or ending with \".lock\"", name)
		}
	}
	return nil
}

func forbiddenInRef(r rune) bool {
	return r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return s != ""
}

// validateRepo checks a repository path: "owner/name", or deeper for GitLab groups.
func validateRepo(repo string, allowGroups bool) ([]string, error) {
	parts := strings.Split(repo, "/")
	if len(parts) < 2 || !allowGroups && len(parts) != 2 {
		want := "owner/name"
		if allowGroups {
			want = "group/[subgroup/]name"
		}
		return nil, inputErr("repo", "%q is not %s", repo, want)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.IndexFunc(p, forbiddenInRepo) >= 0 {
			return nil, inputErr("repo", "%q has an empty or invalid path segment", repo)
		}
	}
	return parts, nil
}

func forbiddenInRepo(r rune) bool {
	return r <= 0x20 || r == 0x7f || strings.ContainsRune("?#%\\:@", r)
}

// wantNumber rejects pull request numbers that cannot exist.
func wantNumber(n int) error {
	if n <= 0 {
		return inputErr("pull request number", "%d is not positive", n)
	}
	return nil
}

func splitRepo(repo string) (owner, name string, err error) {
	parts, err := validateRepo(repo, false)
	if err != nil {
		return "", "", err
	}
	return parts[0], parts[1], nil
}
