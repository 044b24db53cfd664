package promotionctl

import (
	"fmt"
	"sort"
	"strings"
)

// Digest syntax a person may type.
const (
	DigestAlgorithm = "sha256:"
	DigestHexLen    = 64
	MinDigestPrefix = 12
)

// DigestArg is a digest as a person types it: sha256:<hex> or bare hex, whole or a prefix of at least
// MinDigestPrefix hex characters, normalised to lower case with the sha256: prefix.
type DigestArg struct {
	what   string // the flag, argument or form field it came from, for errors
	prefix string
}

// ParseDigestArg validates a digest or digest prefix given as what (a flag such as "--to", or "DIGEST").
func ParseDigestArg(what, s string) (DigestArg, error) {
	hex := strings.ToLower(strings.TrimSpace(s))
	if alg, rest, ok := strings.Cut(hex, ":"); ok {
		if alg+":" != DigestAlgorithm {
			return DigestArg{}, fmt.Errorf("%s %q: only sha256 digests are supported", what, s)
		}
		hex = rest
	}
	if len(hex) < MinDigestPrefix || len(hex) > DigestHexLen {
		return DigestArg{}, fmt.Errorf("%s %q: not a digest: want sha256: and %d hex characters, or a prefix of at least %d",
			what, s, DigestHexLen, MinDigestPrefix)
	}
	for _, r := range hex {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return DigestArg{}, fmt.Errorf("%s %q: not a digest: %q is not a hex character", what, s, r)
		}
	}
	return DigestArg{what: what, prefix: DigestAlgorithm + hex}, nil
}

// Prefix is the normalised digest or prefix, with the sha256: prefix.
func (d DigestArg) Prefix() string { return d.prefix }

// Resolve finds the one digest among known that the argument names. The error names the argument and, for an
// ambiguous prefix, the digests it matches.
func (d DigestArg) Resolve(known []string) (string, error) {
	seen := map[string]bool{}
	var matches []string
	for _, k := range known {
		if k != "" && strings.HasPrefix(k, d.prefix) && !seen[k] {
			seen[k] = true
			matches = append(matches, k)
		}
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("%s %s: digest not found", d.what, d.prefix)
	case 1:
		return matches[0], nil
	}
	sort.Strings(matches)
	return "", fmt.Errorf("%s %s: prefix matches %d digests (%s); give more hex characters",
		d.what, d.prefix, len(matches), strings.Join(matches, ", "))
}
