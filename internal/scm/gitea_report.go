package scm

import (
	"context"

	"code.gitea.io/sdk/gitea"
)

func (g *giteaBackend) editBody(ctx context.Context, repo string, number int, body string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	_, err = giteaCall(ctx, g, func(c *gitea.Client) (*gitea.PullRequest, *gitea.Response, error) {
		return c.EditPullRequest(owner, name, int64(number), gitea.EditPullRequestOption{Body: &body})
	})
	return err
}

// listComments reads the pull request's comments page by page, oldest first (Gitea's order).
func (g *giteaBackend) listComments(ctx context.Context, repo string, number, limit int) ([]Comment, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	const pageSize = 50
	var out []Comment
	for page := 1; len(out) < limit; page++ {
		got, err := giteaCall(ctx, g, func(c *gitea.Client) ([]*gitea.Comment, *gitea.Response, error) {
			return c.ListIssueComments(owner, name, int64(number), gitea.ListIssueCommentOptions{
				ListOptions: gitea.ListOptions{Page: page, PageSize: pageSize}})
		})
		if err != nil {
			return nil, err
		}
		for _, c := range got {
			if c != nil && c.Poster != nil {
				out = append(out, Comment{ID: c.ID, Author: c.Poster.UserName, Body: c.Body})
			}
		}
		if len(got) < pageSize {
			break
		}
	}
	return out, nil
}

func (g *giteaBackend) editComment(ctx context.Context, repo string, _ int, id int64, body string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	_, err = giteaCall(ctx, g, func(c *gitea.Client) (*gitea.Comment, *gitea.Response, error) {
		return c.EditIssueComment(owner, name, id, gitea.EditIssueCommentOption{Body: body})
	})
	return err
}

// setStatus posts to /repos/{owner}/{repo}/statuses/{sha}; Gitea keeps the newest status of each context, so
// posting the same state again only repeats it.
func (g *giteaBackend) setStatus(ctx context.Context, repo, sha string, st CommitStatus) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	_, err = giteaCall(ctx, g, func(c *gitea.Client) (*gitea.Status, *gitea.Response, error) {
		return c.CreateStatus(owner, name, sha, gitea.CreateStatusOption{
			State: gitea.StatusState(st.State), Context: st.Context, Description: st.Description, TargetURL: st.TargetURL})
	})
	return err
}
