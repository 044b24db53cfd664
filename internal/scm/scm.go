package scm

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Provider is one forge's pull request API, reduced to what an approval gate needs.
// Every method is safe for concurrent use.
type Provider interface {
	// Name is the provider's name as accepted by New ("gitea", "github", "gitlab").
	Name() string
	// EnsurePullRequest returns the pull request whose head is spec.Head, opening it only when none
	// exists in any state: a merged one stays approved and a closed one stays rejected, so running it
	// again after a crash never opens a duplicate. Labels and reviewers are applied while it is open.
	EnsurePullRequest(ctx context.Context, spec PullRequestSpec) (PullRequest, error)
	// GetPullRequest reads one pull request by number.
	GetPullRequest(ctx context.Context, repo string, number int) (PullRequest, error)
	// FindPullRequest returns the pull request from head into base, or nil when there is none.
	FindPullRequest(ctx context.Context, repo, base, head string) (*PullRequest, error)
	// ClosePullRequest comments on an open pull request and closes it unmerged. Closing one that is
	// already closed does nothing; closing one that was merged fails with ErrMerged, because the
	// approval it records must not be lost.
	ClosePullRequest(ctx context.Context, repo string, number int, comment string) error
}

// State is where a pull request stands.
type State string

const (
	// StateOpen waits for a person: neither approved nor rejected yet.
	StateOpen State = "open"
	// StateMerged means approved: the change reached the base branch.
	StateMerged State = "merged"
	// StateClosed means rejected (or superseded): closed without merging.
	StateClosed State = "closed"
)

// PullRequest is the provider-neutral view of a pull (GitLab: merge) request.
type PullRequest struct {
	Number     int
	URL        string // page a person opens, not the API address
	Title      string
	State      State
	HeadBranch string
	BaseBranch string
	HeadSHA    string
	// Author is the login of whoever opened it: Ferry's account for the pull requests Ferry opens.
	Author string
	// Body is the description as the forge stores it.
	Body string
	// MergeCommitSHA is the commit that brought the change onto the base branch (the merge, squash or
	// fast-forwarded commit); set only when State is StateMerged.
	MergeCommitSHA string
	// MergedBy is the login of whoever merged, i.e. the approver; set only when State is StateMerged.
	MergedBy  string
	MergedAt  time.Time
	Labels    []string
	Reviewers []string
}

// Approved reports whether the pull request was merged.
func (p PullRequest) Approved() bool { return p.State == StateMerged }

// Rejected reports whether the pull request was closed without being merged.
func (p PullRequest) Rejected() bool { return p.State == StateClosed }

// PullRequestSpec is everything needed to open the approval pull request for one change.
type PullRequestSpec struct {
	// Repo is "owner/name" (GitLab: the full project path, "group/subgroup/name").
	Repo string
	// Base is the branch the change is proposed for; Head the branch carrying it (see BranchName).
	Base, Head string
	// TitleTemplate is a text/template over Change; empty means DefaultTitleTemplate.
	TitleTemplate string
	Change        Change
	// Labels are added to the pull request (created in the repository when the forge needs that).
	Labels []string
	// Reviewers are user logins asked to review.
	Reviewers []string
}

// Errors callers branch on. Provider errors wrap them, so use errors.Is.
var (
	// ErrUnauthorized: the token was refused (401) or lacks permission (403). Retrying will not help.
	ErrUnauthorized = errors.New("credentials refused by the forge")
	// ErrNotFound: the repository or pull request does not exist (or the token cannot see it).
	ErrNotFound = errors.New("not found on the forge")
	// ErrMerged: a merged pull request cannot be closed.
	ErrMerged = errors.New("pull request is already merged")
)

// InputError names the field of a request or configuration that is wrong. Nothing was sent to the
// forge when it is returned; fixing the input is the only cure.
type InputError struct {
	Field  string
	Reason string
}

func (e *InputError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason) }

func inputErr(field, format string, args ...any) error {
	return &InputError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
