package scm

import (
	"context"

	"github.com/google/go-github/v89/github"
)

func (g *githubBackend) editBody(ctx context.Context, repo string, number int, body string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	_, _, err = g.c.PullRequests.Edit(ctx, owner, name, number, &github.PullRequest{Body: &body})
	return ghErr(err)
}

// listComments reads the issue comments of the pull request (GET /repos/{owner}/{repo}/issues/{n}/comments),
// which GitHub orders by ascending id, i.e. oldest first.
func (g *githubBackend) listComments(ctx context.Context, repo string, number, limit int) ([]Comment, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	var out []Comment
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for c, err := range g.c.Issues.ListCommentsIter(ctx, owner, name, number, opts) {
		if err != nil {
			return nil, ghErr(err)
		}
		out = append(out, Comment{ID: c.GetID(), Author: c.GetUser().GetLogin(), Body: c.GetBody()})
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

func (g *githubBackend) editComment(ctx context.Context, repo string, _ int, id int64, body string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	_, _, err = g.c.Issues.EditComment(ctx, owner, name, id, &github.IssueComment{Body: &body})
	return ghErr(err)
}

// setStatus posts to /repos/{owner}/{repo}/statuses/{sha}; GitHub shows the newest status of each context.
func (g *githubBackend) setStatus(ctx context.Context, repo, sha string, st CommitStatus) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	status := github.RepoStatus{State: github.Ptr(string(st.State)), Context: &st.Context, Description: &st.Description}
	if st.TargetURL != "" {
		status.TargetURL = &st.TargetURL
	}
	_, _, err = g.c.Repositories.CreateStatus(ctx, owner, name, sha, status)
	return ghErr(err)
}
