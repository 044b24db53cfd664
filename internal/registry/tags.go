package registry

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Tag orders a TagPolicy can pick the newest candidate by.
const (
	OrderSemver  = "semver"
	OrderLexical = "lexical"
)

// ErrNoMatchingTag is returned when no tag satisfies a policy.
var ErrNoMatchingTag = errors.New("no tag matches the policy")

// TagPolicy chooses one tag among a repository's tags.
//   - Semver: a range ("^1.2", ">=1.4 <2", "~2.0.0-0"); tags that are not semantic versions are ignored and
//     pre-releases are candidates only when the range itself names a pre-release.
//   - Regex: tags must match this RE2 expression (anchor it yourself).
//   - Order: "semver" (newest version) or "lexical" (greatest string); empty picks semver when a range is set,
//     lexical otherwise. With Regex and Order "semver" but no range, pre-releases are excluded.
//
// Signature, attestation and referrers-fallback tags (sha256-*) are never candidates.
type TagPolicy struct {
	Semver string
	Regex  string
	Order  string
}

// compiledPolicy is a validated TagPolicy.
type compiledPolicy struct {
	constraint *semver.Constraints
	re         *regexp.Regexp
	order      string
}

const maxPolicyField = 1024

// Validate reports the first problem with the policy, naming the field.
func (p TagPolicy) Validate() error {
	_, err := p.compile()
	return err
}

func (p TagPolicy) compile() (compiledPolicy, error) {
	var c compiledPolicy
	if strings.TrimSpace(p.Semver) == "" && p.Regex == "" {
		return c, errors.New("tag policy: set semver, regex, or both")
	}
	if len(p.Semver) > maxPolicyField || len(p.Regex) > maxPolicyField {
		return c, fmt.Errorf("tag policy: semver and regex are limited to %d characters", maxPolicyField)
	}
	if strings.TrimSpace(p.Semver) != "" {
		con, err := semver.NewConstraint(p.Semver)
		if err != nil {
			return c, fmt.Errorf("tag policy: semver range %q: %w", p.Semver, err)
		}
		c.constraint = con
	}
	if p.Regex != "" {
		re, err := regexp.Compile(p.Regex)
		if err != nil {
			return c, fmt.Errorf("tag policy: regex %q: %w", p.Regex, err)
		}
		c.re = re
	}
	switch p.Order {
	case "":
		c.order = OrderLexical
		if c.constraint != nil {
			c.order = OrderSemver
		}
	case OrderSemver:
		c.order = OrderSemver
	case OrderLexical:
		if c.constraint != nil {
			return c, fmt.Errorf("tag policy: order %q contradicts a semver range; use %q or leave it empty", p.Order, OrderSemver)
		}
		c.order = OrderLexical
	default:
		return c, fmt.Errorf("tag policy: order %q: must be %q or %q", p.Order, OrderSemver, OrderLexical)
	}
	return c, nil
}

// IsAttachmentTag reports tags that carry artifacts about another manifest rather than an image to deploy:
// cosign's sha256-<hex>.sig/.att/.sbom and the referrers fallback index sha256-<hex>.
func IsAttachmentTag(tag string) bool { return strings.HasPrefix(tag, "sha256-") }

// SelectTag returns the newest tag allowed by the policy.
func SelectTag(tags []string, p TagPolicy) (string, error) {
	c, err := p.compile()
	if err != nil {
		return "", err
	}
	type candidate struct {
		tag string
		v   *semver.Version
	}
	var cands []candidate
	for _, t := range tags {
		if IsAttachmentTag(t) || (c.re != nil && !c.re.MatchString(t)) {
			continue
		}
		if c.order == OrderLexical {
			cands = append(cands, candidate{tag: t})
			continue
		}
		v, err := semver.NewVersion(t)
		if err != nil {
			continue
		}
		if c.constraint != nil && !c.constraint.Check(v) {
			continue
		}
		if c.constraint == nil && v.Prerelease() != "" {
			continue
		}
		cands = append(cands, candidate{tag: t, v: v})
	}
	if len(cands) == 0 {
		return "", fmt.Errorf("%w (semver %q, regex %q, %d tags considered)", ErrNoMatchingTag, p.Semver, p.Regex, len(tags))
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].v != nil {
			if cmp := cands[i].v.Compare(cands[j].v); cmp != 0 {
				return cmp > 0
			}
		}
		// Equal versions ("1.2" and "v1.2.0") or lexical order: the greatest string wins, deterministically.
		return cands[i].tag > cands[j].tag
	})
	return cands[0].tag, nil
}

// Candidate is a tag chosen by policy and the digest it pointed to when resolved.
type Candidate struct {
	Tag    string
	Digest string
}

// ListTags returns every tag of repository (REGISTRY/REPOSITORY).
func (c *Client) ListTags(ctx context.Context, repository string) ([]string, error) {
	repo, err := c.opts.ParseRepository("repository", repository)
	if err != nil {
		return nil, err
	}
	o := c.newOp()
	conn, err := o.conn(repo, repo.Scope("pull"))
	if err != nil {
		return nil, err
	}
	var tags []string
	err = retry(ctx, c.opts.Retry, "listing tags of "+repo.String(), func() (err error) {
		tags, err = listTags(ctx, conn, repo)
		return err
	})
	return tags, err
}

// Resolve returns the digest (sha256:<hex>) that reference (a tag or a digest) names now.
func (c *Client) Resolve(ctx context.Context, reference string) (string, error) {
	ref, err := c.opts.ParseReference("reference", reference)
	if err != nil {
		return "", err
	}
	o := c.newOp()
	conn, err := o.conn(ref.Context(), ref.Context().Scope("pull"))
	if err != nil {
		return "", err
	}
	var head manifestHead
	var found bool
	err = retry(ctx, c.opts.Retry, "resolving "+ref.String(), func() (err error) {
		head, found, err = headManifest(ctx, conn, ref.Context(), ref.Identifier())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", ref, err)
	}
	if !found {
		return "", fmt.Errorf("resolving %s: %w", ref, ErrNotFound)
	}
	if want := ref.Identifier(); strings.HasPrefix(want, "sha256:") && head.Digest.String() != want {
		return "", fmt.Errorf("resolving %s: registry answered %s: %w", ref, head.Digest, ErrDigestMismatch)
	}
	return head.Digest.String(), nil
}

// Latest lists repository's tags, selects one by policy and resolves it to a digest.
func (c *Client) Latest(ctx context.Context, repository string, p TagPolicy) (Candidate, error) {
	if err := p.Validate(); err != nil {
		return Candidate{}, err
	}
	tags, err := c.ListTags(ctx, repository)
	if err != nil {
		return Candidate{}, err
	}
	tag, err := SelectTag(tags, p)
	if err != nil {
		return Candidate{}, fmt.Errorf("choosing a tag of %s: %w", repository, err)
	}
	d, err := c.Resolve(ctx, repository+":"+tag)
	if err != nil {
		return Candidate{}, err
	}
	return Candidate{Tag: tag, Digest: d}, nil
}
