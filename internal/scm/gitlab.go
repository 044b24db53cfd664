package scm

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

const gitlabDefaultURL = "https://gitlab.com/api/v4"

type gitlabBackend struct{ c *gitlab.Client }

// newGitLab targets gitlab.com when apiURL is empty, else a self-managed instance (the SDK adds
// "api/v4" to a bare root). Retries are off: the caller's reconcile loop owns backoff.
func newGitLab(apiURL, token string, hc *http.Client) (*gitlabBackend, error) {
	if apiURL == "" {
		apiURL = gitlabDefaultURL
	}
	c, err := gitlab.NewClient(token,
		gitlab.WithBaseURL(apiURL),
		gitlab.WithHTTPClient(hc),
		gitlab.WithoutRetries(),
		gitlab.WithUserAgent("ferry"))
	if err != nil {
		return nil, err
	}
	return &gitlabBackend{c: c}, nil
}

func (g *gitlabBackend) name() string      { return "gitlab" }
func (g *gitlabBackend) allowGroups() bool { return true }

func glErr(err error) error {
	if errors.Is(err, gitlab.ErrNotFound) { // the SDK turns every 404 into this sentinel
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return statusErr(er.Response.StatusCode, err)
	}
	return err
}

// find lists merge requests by source and target branch in every state, newest first, and picks an
// open one if any, else the newest.
func (g *gitlabBackend) find(ctx context.Context, repo, base, head string) (*PullRequest, error) {
	mrs, _, err := g.c.MergeRequests.ListProjectMergeRequests(repo, &gitlab.ListProjectMergeRequestsOptions{
		ListOptions:  gitlab.ListOptions{PerPage: 20},
		State:        gitlab.Ptr("all"),
		SourceBranch: &head,
		TargetBranch: &base,
	}, gitlab.WithContext(ctx))
	if err != nil {
		return nil, glErr(err)
	}
	var pick *gitlab.BasicMergeRequest
	for _, mr := range mrs {
		if mr == nil || mr.SourceBranch != head {
			continue // defensive: never attribute another branch's merge request to this one
		}
		if pick == nil || glState(mr) == StateOpen && glState(pick) != StateOpen {
			pick = mr
		}
	}
	if pick == nil {
		return nil, nil
	}
	out := fromGitLab(pick)
	return &out, nil
}

func (g *gitlabBackend) get(ctx context.Context, repo string, number int) (PullRequest, error) {
	mr, _, err := g.c.MergeRequests.GetMergeRequest(repo, number, nil, gitlab.WithContext(ctx))
	if err != nil {
		return PullRequest{}, glErr(err)
	}
	return fromGitLab(&mr.BasicMergeRequest), nil
}

func (g *gitlabBackend) create(ctx context.Context, repo, base, head, title, body string) (PullRequest, error) {
	mr, resp, err := g.c.MergeRequests.CreateMergeRequest(repo, &gitlab.CreateMergeRequestOptions{
		Title: &title, Description: &body, SourceBranch: &head, TargetBranch: &base,
	}, gitlab.WithContext(ctx))
	if resp != nil && resp.StatusCode == http.StatusConflict {
		return PullRequest{}, errExists // "Another open merge request already exists for this source branch"
	}
	if err != nil {
		return PullRequest{}, glErr(err)
	}
	return fromGitLab(&mr.BasicMergeRequest), nil
}

// addLabels uses add_labels, which keeps the labels people put on and creates missing project labels.
func (g *gitlabBackend) addLabels(ctx context.Context, repo string, number int, labels []string) error {
	add := gitlab.LabelOptions(labels)
	_, _, err := g.c.MergeRequests.UpdateMergeRequest(repo, number, &gitlab.UpdateMergeRequestOptions{
		AddLabels: &add,
	}, gitlab.WithContext(ctx))
	return glErr(err)
}

// requestReviewers resolves logins to user IDs and sets reviewer_ids to the current reviewers plus
// them, since GitLab replaces the whole set.
func (g *gitlabBackend) requestReviewers(ctx context.Context, repo string, number int, reviewers []string) error {
	mr, _, err := g.c.MergeRequests.GetMergeRequest(repo, number, nil, gitlab.WithContext(ctx))
	if err != nil {
		return glErr(err)
	}
	ids := make([]int, 0, len(mr.Reviewers)+len(reviewers))
	for _, u := range mr.Reviewers {
		if u != nil {
			ids = append(ids, u.ID)
		}
	}
	for _, login := range reviewers {
		id, err := g.userID(ctx, login)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	_, _, err = g.c.MergeRequests.UpdateMergeRequest(repo, number, &gitlab.UpdateMergeRequestOptions{
		ReviewerIDs: &ids,
	}, gitlab.WithContext(ctx))
	return glErr(err)
}

// reviewedBy is empty: GitLab keeps reviewers listed after they review, so the requested set is
// already complete.
func (g *gitlabBackend) reviewedBy(context.Context, string, int) ([]string, error) { return nil, nil }

func (g *gitlabBackend) userID(ctx context.Context, login string) (int, error) {
	users, _, err := g.c.Users.ListUsers(&gitlab.ListUsersOptions{Username: &login}, gitlab.WithContext(ctx))
	if err != nil {
		return 0, glErr(err)
	}
	for _, u := range users {
		if u != nil && u.Username == login {
			return u.ID, nil
		}
	}
	return 0, fmt.Errorf("reviewer %q: %w", login, ErrNotFound)
}

func (g *gitlabBackend) comment(ctx context.Context, repo string, number int, body string) error {
	_, _, err := g.c.Notes.CreateMergeRequestNote(repo, number, &gitlab.CreateMergeRequestNoteOptions{
		Body: &body,
	}, gitlab.WithContext(ctx))
	return glErr(err)
}

func (g *gitlabBackend) close(ctx context.Context, repo string, number int) error {
	_, _, err := g.c.MergeRequests.UpdateMergeRequest(repo, number, &gitlab.UpdateMergeRequestOptions{
		StateEvent: gitlab.Ptr("close"),
	}, gitlab.WithContext(ctx))
	return glErr(err)
}

// glState maps GitLab's opened|closed|merged|locked; "locked" is a merge in progress, still open.
func glState(mr *gitlab.BasicMergeRequest) State {
	switch mr.State {
	case "merged":
		return StateMerged
	case "closed":
		return StateClosed
	}
	return StateOpen
}

func fromGitLab(mr *gitlab.BasicMergeRequest) PullRequest {
	out := PullRequest{
		Number:     mr.IID,
		URL:        mr.WebURL,
		Title:      mr.Title,
		State:      glState(mr),
		HeadBranch: mr.SourceBranch,
		BaseBranch: mr.TargetBranch,
		HeadSHA:    mr.SHA,
		Labels:     append([]string(nil), mr.Labels...),
		Body:       mr.Description,
	}
	if mr.Author != nil {
		out.Author = mr.Author.Username
	}
	if out.State == StateMerged {
		// merge_commit_sha is empty for squash and fast-forward merges: then the squash commit, or
		// the head itself (fast-forward), is what reached the target branch.
		out.MergeCommitSHA = firstNonEmpty(mr.MergeCommitSHA, mr.SquashCommitSHA, mr.SHA)
		switch {
		case mr.MergeUser != nil:
			out.MergedBy = mr.MergeUser.Username
		case mr.MergedBy != nil:
			out.MergedBy = mr.MergedBy.Username
		}
		if mr.MergedAt != nil {
			out.MergedAt = *mr.MergedAt
		}
	}
	for _, u := range mr.Reviewers {
		if u != nil {
			out.Reviewers = append(out.Reviewers, u.Username)
		}
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
