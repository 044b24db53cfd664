package scm

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Reporter shows Ferry's view on a pull request: one comment Ferry keeps up to date, and a commit status on the
// head commit. Every Provider that New returns is a Reporter; it is a separate interface so that a Provider
// that only follows pull requests (a test double) need not implement it.
type Reporter interface {
	// UpsertComment makes body the text of Ferry's one comment on the pull request: the first comment by the
	// pull request's author (the account Ferry opens pull requests with) that contains marker is edited when
	// its text differs, else a comment is posted. Comments by anyone else are never touched, so a person
	// quoting the marker cannot take Ferry's place. body must contain marker.
	UpsertComment(ctx context.Context, repo string, number int, marker, body string) error
	// SetCommitStatus sets status on commit sha. Setting the state it already has changes nothing, so running
	// it again after a crash is harmless.
	SetCommitStatus(ctx context.Context, repo, sha string, status CommitStatus) error
}

// CommitState is a commit status state in GitHub's words; each backend maps it to its forge's.
type CommitState string

const (
	CommitPending CommitState = "pending"
	CommitSuccess CommitState = "success"
	CommitFailure CommitState = "failure"
	CommitError   CommitState = "error"
)

// CommitStatus is one status on a commit, as a forge shows it beside a pull request.
type CommitStatus struct {
	State CommitState
	// Context names the status ("ferry/prod"); a new status with the same context replaces the old one.
	Context string
	// Description is a short sentence; it is cut to MaxStatusDescription characters (GitHub's limit).
	Description string
	// TargetURL is linked from the status; empty for none.
	TargetURL string
}

// Bounds of what Ferry sends.
const (
	// MaxStatusDescription is GitHub's limit for a commit status description, the smallest of the three.
	MaxStatusDescription = 140
	// maxStatusContext bounds a status context (Gitea stores 255 bytes).
	maxStatusContext = 255
	// MaxCommentLength is under GitHub's 65536-character limit for comments and pull request bodies, the
	// smallest of the three forges.
	MaxCommentLength = 60000
	// maxCommentsRead bounds how many comments are read looking for Ferry's: it posts its comment right after
	// opening the pull request, so it is among the first.
	maxCommentsRead = 500
)

// Comment is one comment on a pull request, as a backend lists it.
type Comment struct {
	ID     int64
	Author string
	Body   string
}

var (
	markerPattern = regexp.MustCompile(`^<!-- [a-z0-9:._/-]{1,64} -->$`)
	shaPattern    = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
)

func (p *provider) UpsertComment(ctx context.Context, repo string, number int, marker, body string) error {
	if _, err := validateRepo(repo, p.b.allowGroups()); err != nil {
		return err
	}
	if err := wantNumber(number); err != nil {
		return err
	}
	if err := validateComment(marker, body); err != nil {
		return err
	}
	pr, err := p.GetPullRequest(ctx, repo, number)
	if err != nil {
		return err
	}
	if pr.Author == "" {
		return p.wrap(ErrNotFound, "pull request #%d in %s reports no author, so Ferry's comment cannot be told apart", number, repo)
	}
	comments, err := p.b.listComments(ctx, repo, number, maxCommentsRead)
	if err != nil {
		return p.wrap(err, "listing comments of pull request #%d in %s", number, repo)
	}
	for _, c := range comments {
		if c.Author != pr.Author || !strings.Contains(c.Body, marker) {
			continue
		}
		if sameText(c.Body, body) {
			return nil
		}
		if err := p.b.editComment(ctx, repo, number, c.ID, body); err != nil {
			return p.wrap(err, "editing comment %d on pull request #%d in %s", c.ID, number, repo)
		}
		return nil
	}
	if err := p.b.comment(ctx, repo, number, body); err != nil {
		return p.wrap(err, "commenting on pull request #%d in %s", number, repo)
	}
	return nil
}

func validateComment(marker, body string) error {
	switch {
	case !markerPattern.MatchString(marker):
		return inputErr("comment marker", "%q is not an HTML comment of lower-case words", marker)
	case !strings.Contains(body, marker):
		return inputErr("comment", "does not contain its marker %s", marker)
	case len(body) > MaxCommentLength:
		return inputErr("comment", "is %d bytes, more than %d", len(body), MaxCommentLength)
	case !utf8.ValidString(body):
		return inputErr("comment", "is not valid UTF-8")
	}
	return nil
}

func (p *provider) SetCommitStatus(ctx context.Context, repo, sha string, status CommitStatus) error {
	if _, err := validateRepo(repo, p.b.allowGroups()); err != nil {
		return err
	}
	status, err := status.normalize(sha)
	if err != nil {
		return err
	}
	if err := p.b.setStatus(ctx, repo, sha, status); err != nil {
		return p.wrap(err, "setting status %s=%s on %s in %s", status.Context, status.State, shortOf(sha), repo)
	}
	return nil
}

// normalize checks a status for commit sha and cuts its description to the forge's limit.
func (s CommitStatus) normalize(sha string) (CommitStatus, error) {
	switch {
	case !shaPattern.MatchString(sha):
		return s, inputErr("commit", "%q is not a full lower-case hex commit SHA", sha)
	case s.State != CommitPending && s.State != CommitSuccess && s.State != CommitFailure && s.State != CommitError:
		return s, inputErr("status state", "%q is not pending, success, failure or error", s.State)
	case strings.TrimSpace(s.Context) == "" || len(s.Context) > maxStatusContext || hasControl(s.Context):
		return s, inputErr("status context", "%q is empty, longer than %d bytes or has a control character", s.Context, maxStatusContext)
	}
	if s.TargetURL != "" {
		u, err := url.Parse(s.TargetURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(s.TargetURL) > 2048 {
			return s, inputErr("status target URL", "%q is not an absolute http(s) URL of at most 2048 bytes", s.TargetURL)
		}
	}
	s.Description = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s.Description, " "))
	if utf8.RuneCountInString(s.Description) > MaxStatusDescription {
		s.Description = string([]rune(s.Description)[:MaxStatusDescription-1]) + "…"
	}
	return s, nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}

// sameText compares texts as forges store them: some turn line ends into CRLF or trim the end.
func sameText(a, b string) bool {
	norm := func(s string) string { return strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n")) }
	return norm(a) == norm(b)
}

func shortOf(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
