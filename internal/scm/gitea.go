package scm

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"code.gitea.io/sdk/gitea"
)

// labelColor is given to labels Ferry has to create in a Gitea repository (Gitea needs one).
const labelColor = "#1d76db"

type giteaBackend struct {
	url, token string
	hc         *http.Client
}

func newGitea(apiURL, token string, hc *http.Client) *giteaBackend {
	return &giteaBackend{url: apiURL, token: token, hc: hc}
}

func (g *giteaBackend) name() string      { return "gitea" }
func (g *giteaBackend) allowGroups() bool { return false }

// client makes a client bound to ctx. The SDK keeps the context on the client, so one per call keeps
// concurrent calls from sharing cancellation; building one is free because the server version probe
// is skipped (Ferry needs Gitea 1.22 or newer, for the base/head lookup).
func (g *giteaBackend) client(ctx context.Context) (*gitea.Client, error) {
	return gitea.NewClient(g.url,
		gitea.SetToken(g.token),
		gitea.SetHTTPClient(g.hc),
		gitea.SetContext(ctx),
		gitea.SetGiteaVersion(""),
		gitea.SetUserAgent("ferry"))
}

// call runs one SDK request on a fresh client and maps its HTTP status to the package's errors.
func giteaCall[T any](ctx context.Context, g *giteaBackend, f func(*gitea.Client) (T, *gitea.Response, error)) (T, error) {
	c, err := g.client(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	v, resp, err := f(c)
	if err != nil && resp != nil {
		err = statusErr(resp.StatusCode, err)
	}
	return v, err
}

func (g *giteaBackend) find(ctx context.Context, repo, base, head string) (*PullRequest, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	pr, err := giteaCall(ctx, g, func(c *gitea.Client) (*gitea.PullRequest, *gitea.Response, error) {
		return c.GetPullRequestByBaseHead(owner, name, base, head)
	})
	if errors.Is(err, ErrNotFound) {
		// The route answers 404 for a missing repository too; tell the two apart.
		if _, err := giteaCall(ctx, g, func(c *gitea.Client) (*gitea.Repository, *gitea.Response, error) {
			return c.GetRepo(owner, name)
		}); err != nil {
			return nil, fmt.Errorf("repository %s: %w", repo, err)
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := fromGitea(pr)
	return &out, nil
}

func (g *giteaBackend) get(ctx context.Context, repo string, number int) (PullRequest, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return PullRequest{}, err
	}
	pr, err := giteaCall(ctx, g, func(c *gitea.Client) (*gitea.PullRequest, *gitea.Response, error) {
		return c.GetPullRequest(owner, name, int64(number))
	})
	if err != nil {
		return PullRequest{}, err
	}
	return fromGitea(pr), nil
}

func (g *giteaBackend) create(ctx context.Context, repo, base, head, title, body string) (PullRequest, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return PullRequest{}, err
	}
	c, err := g.client(ctx)
	if err != nil {
		return PullRequest{}, err
	}
	pr, resp, err := c.CreatePullRequest(owner, name, gitea.CreatePullRequestOption{
		Head: head, Base: base, Title: title, Body: body,
	})
	if resp != nil && resp.StatusCode == http.StatusConflict {
		return PullRequest{}, errExists
	}
	if err != nil {
		if resp != nil {
			err = statusErr(resp.StatusCode, err)
		}
		return PullRequest{}, err
	}
	return fromGitea(pr), nil
}

func (g *giteaBackend) addLabels(ctx context.Context, repo string, number int, labels []string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	ids, err := g.labelIDs(ctx, owner, name, labels)
	if err != nil {
		return err
	}
	_, err = giteaCall(ctx, g, func(c *gitea.Client) ([]*gitea.Label, *gitea.Response, error) {
		return c.AddIssueLabels(owner, name, int64(number), gitea.IssueLabelsOption{Labels: ids})
	})
	return err
}

// labelIDs resolves label names to the repository's label IDs, creating the labels that are missing:
// Gitea attaches labels by ID only.
func (g *giteaBackend) labelIDs(ctx context.Context, owner, name string, labels []string) ([]int64, error) {
	byName := map[string]int64{}
	for page := 1; ; page++ {
		got, err := giteaCall(ctx, g, func(c *gitea.Client) ([]*gitea.Label, *gitea.Response, error) {
			return c.ListRepoLabels(owner, name, gitea.ListLabelsOptions{ListOptions: gitea.ListOptions{Page: page, PageSize: 50}})
		})
		if err != nil {
			return nil, err
		}
		for _, l := range got {
			byName[l.Name] = l.ID
		}
		if len(got) < 50 {
			break
		}
	}
	ids := make([]int64, 0, len(labels))
	for _, l := range labels {
		id, ok := byName[l]
		if !ok {
			created, err := giteaCall(ctx, g, func(c *gitea.Client) (*gitea.Label, *gitea.Response, error) {
				return c.CreateLabel(owner, name, gitea.CreateLabelOption{Name: l, Color: labelColor})
			})
			if err != nil {
				return nil, err
			}
			id = created.ID
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (g *giteaBackend) requestReviewers(ctx context.Context, repo string, number int, reviewers []string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	_, err = giteaCall(ctx, g, func(c *gitea.Client) (struct{}, *gitea.Response, error) {
		resp, err := c.CreateReviewRequests(owner, name, int64(number), gitea.PullReviewRequestOptions{Reviewers: reviewers})
		return struct{}{}, resp, err
	})
	return err
}

func (g *giteaBackend) reviewedBy(ctx context.Context, repo string, number int) ([]string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	var out []string
	for page := 1; ; page++ {
		reviews, err := giteaCall(ctx, g, func(c *gitea.Client) ([]*gitea.PullReview, *gitea.Response, error) {
			return c.ListPullReviews(owner, name, int64(number), gitea.ListPullReviewsOptions{ListOptions: gitea.ListOptions{Page: page, PageSize: 50}})
		})
		if err != nil {
			return nil, err
		}
		for _, r := range reviews {
			// A pending request is stored as a review too; only answers count as reviewed.
			if r != nil && r.Reviewer != nil && r.State != gitea.ReviewStateRequestReview {
				out = append(out, r.Reviewer.UserName)
			}
		}
		if len(reviews) < 50 {
			return out, nil
		}
	}
}

func (g *giteaBackend) comment(ctx context.Context, repo string, number int, body string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	_, err = giteaCall(ctx, g, func(c *gitea.Client) (*gitea.Comment, *gitea.Response, error) {
		return c.CreateIssueComment(owner, name, int64(number), gitea.CreateIssueCommentOption{Body: body})
	})
	return err
}

func (g *giteaBackend) close(ctx context.Context, repo string, number int) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	closed := gitea.StateClosed
	_, err = giteaCall(ctx, g, func(c *gitea.Client) (*gitea.PullRequest, *gitea.Response, error) {
		return c.EditPullRequest(owner, name, int64(number), gitea.EditPullRequestOption{State: &closed})
	})
	return err
}

func fromGitea(pr *gitea.PullRequest) PullRequest {
	out := PullRequest{
		Number: int(pr.Index),
		URL:    pr.HTMLURL,
		Title:  pr.Title,
		State:  StateOpen,
		Body:   pr.Body,
	}
	if pr.Poster != nil {
		out.Author = pr.Poster.UserName
	}
	switch {
	case pr.HasMerged:
		out.State = StateMerged
	case pr.State == gitea.StateClosed:
		out.State = StateClosed
	}
	if pr.Head != nil {
		out.HeadBranch, out.HeadSHA = pr.Head.Ref, pr.Head.Sha
	}
	if pr.Base != nil {
		out.BaseBranch = pr.Base.Ref
	}
	if out.State == StateMerged {
		if pr.MergedCommitID != nil {
			out.MergeCommitSHA = *pr.MergedCommitID
		}
		if pr.MergedBy != nil {
			out.MergedBy = pr.MergedBy.UserName
		}
		if pr.Merged != nil {
			out.MergedAt = *pr.Merged
		}
	}
	for _, l := range pr.Labels {
		if l != nil {
			out.Labels = append(out.Labels, l.Name)
		}
	}
	for _, u := range pr.RequestedReviewers {
		if u != nil {
			out.Reviewers = append(out.Reviewers, u.UserName)
		}
	}
	return out
}
