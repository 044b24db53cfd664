package scm

import (
	"fmt"
	"strings"

	"github.com/ferrycd/ferry/internal/tmpl"
)

// DefaultTitleTemplate is used when a PullRequestSpec has no TitleTemplate.
const DefaultTitleTemplate = "Promote {{.Promotion}} to {{.Stage}} ({{.ShortDigest}})"

// maxTitleLength is GitLab's limit, the smallest of the three forges.
const maxTitleLength = 255

// titleTemplate bounds title templates (see package tmpl): text of at most tmpl.DefaultMaxText, no range,
// template, define or block, and rendering stops at 256 bytes, room for the longest title and a trailing
// newline, which a YAML block scalar adds.
var titleTemplate = tmpl.Options{What: "title", MaxOutput: maxTitleLength + 1}

// Change describes the promotion a pull request asks a person to approve. The title template sees
// these fields (and ShortDigest); the body states all of them.
type Change struct {
	Promotion string
	Stage     string
	Digest    string // the digest being promoted, "sha256:<hex>"
	Source    string // where it comes from, e.g. "registry.example.com/shop/web:1.4.2"
	Signer    string // the verified signer identity; empty when the policy requires none
	Previous  string // the digest it replaces, when known
	Files     []string
	// Evidence is what Ferry verified of the digest and how the previous stage ran it; stated in the body
	// and in Ferry's comment when set.
	Evidence *Evidence
}

// ShortDigest is the digest's prefix used in branch names, or "" for a malformed digest.
func (c Change) ShortDigest() string {
	short, err := ShortDigest(c.Digest)
	if err != nil {
		return ""
	}
	return short
}

func (c Change) validate() error {
	if err := validateName("change.promotion", c.Promotion); err != nil {
		return err
	}
	if err := validateName("change.stage", c.Stage); err != nil {
		return err
	}
	if _, err := ShortDigest(c.Digest); err != nil {
		return fmt.Errorf("change: %w", err)
	}
	if strings.TrimSpace(c.Source) == "" {
		return inputErr("change.source", "must not be empty")
	}
	return nil
}

// RenderTitle executes a title template over change, bounded by package tmpl. Any failure — a parse error, a
// construct tmpl refuses, a missing field, an empty, multi-line or too long result — is an *InputError, so
// nothing is opened with a broken title.
func RenderTitle(text string, change Change) (string, error) {
	if text == "" {
		text = DefaultTitleTemplate
	}
	t, err := tmpl.Parse("title", text, titleTemplate)
	if err != nil {
		return "", inputErr("title template", "%v", err)
	}
	out, err := tmpl.Execute(t, change, titleTemplate)
	if err != nil {
		return "", inputErr("title template", "%v", err)
	}
	title := strings.TrimSpace(out)
	switch {
	case title == "":
		return "", inputErr("title template", "renders an empty title")
	case strings.ContainsAny(title, "\r\n"):
		return "", inputErr("title template", "renders more than one line")
	case len(title) > maxTitleLength:
		return "", inputErr("title template", "renders %d bytes, more than %d", len(title), maxTitleLength)
	}
	return title, nil
}

// RenderBody writes the pull request description: what is promoted where, from which source,
// signed by whom, which files change and, when known, the evidence (see Evidence); at most
// MaxCommentLength bytes. Values are put in code spans with markup neutralised,
// since sources and signer identities come from outside.
func RenderBody(c Change) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Ferry proposes promoting %s to stage %s.\n\n", code(c.Promotion), code(c.Stage))
	b.WriteString("| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| Digest | %s |\n", code(c.Digest))
	fmt.Fprintf(&b, "| Source | %s |\n", code(c.Source))
	signer := "not required by the verification policy"
	if c.Signer != "" {
		signer = code(c.Signer)
	}
	fmt.Fprintf(&b, "| Signed by | %s |\n", signer)
	if c.Previous != "" {
		fmt.Fprintf(&b, "| Replaces | %s |\n", code(c.Previous))
	}
	b.WriteString("\n### What changes\n\n")
	if len(c.Files) == 0 {
		fmt.Fprintf(&b, "The image pin of stage %s moves to %s.\n", code(c.Stage), code(c.Digest))
	}
	for _, f := range c.Files {
		fmt.Fprintf(&b, "- %s\n", code(f))
	}
	writeEvidence(&b, c.Evidence)
	b.WriteString("\nMerge this pull request to approve the promotion; close it to reject it.\n")
	return bounded(b.String())
}

// code renders s as an inline code span that cannot break out of a table cell or the span.
func code(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f:
			return ' '
		case r == '`':
			return '\''
		}
		return r
	}, s)
	return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
}

// render validates a spec and produces the title and body to send; it touches no forge.
func (s PullRequestSpec) render(allowGroups bool) (title, body string, err error) {
	if _, err := validateRepo(s.Repo, allowGroups); err != nil {
		return "", "", err
	}
	if err := ValidateBranch("base branch", s.Base); err != nil {
		return "", "", err
	}
	if err := ValidateBranch("head branch", s.Head); err != nil {
		return "", "", err
	}
	if s.Base == s.Head {
		return "", "", inputErr("head branch", "%q is also the base branch", s.Head)
	}
	if err := s.Change.validate(); err != nil {
		return "", "", err
	}
	if err := validateLogins("labels", s.Labels); err != nil {
		return "", "", err
	}
	if err := validateLogins("reviewers", s.Reviewers); err != nil {
		return "", "", err
	}
	if title, err = RenderTitle(s.TitleTemplate, s.Change); err != nil {
		return "", "", err
	}
	return title, RenderBody(s.Change), nil
}

// validateLogins rejects empty, duplicate or control-character entries in labels and reviewers.
func validateLogins(field string, items []string) error {
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if strings.TrimSpace(it) == "" || strings.IndexFunc(it, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ',' }) >= 0 {
			return inputErr(field, "%q is empty or has a comma or control character", it)
		}
		if seen[it] {
			return inputErr(field, "%q is listed twice", it)
		}
		seen[it] = true
	}
	return nil
}
