package scm

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/google/go-github/v89/github"
)

type githubBackend struct{ c *github.Client }

// newGitHub targets api.github.com when apiURL is empty, else a GitHub Enterprise Server (the SDK adds
// "api/v3/" to a bare host root).
func newGitHub(apiURL, token string, hc *http.Client) (*githubBackend, error) {
	opts := []github.ClientOptionsFunc{
		github.WithHTTPClient(hc),
		github.WithAuthToken(token),
		github.WithUserAgent("ferry"),
	}
	if apiURL != "" {
		opts = append(opts, github.WithEnterpriseURLs(apiURL, apiURL))
	}
	c, err := github.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &githubBackend{c: c}, nil
}

func (g *githubBackend) name() string      { return "github" }
func (g *githubBackend) allowGroups() bool { return false }

// ghErr maps GitHub's HTTP status to the package's errors. Rate-limit errors keep their own type
// (the 403 they come with is not a credential problem).
func ghErr(err error) error {
	var rl *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	if err == nil || errors.As(err, &rl) || errors.As(err, &abuse) {
		return err
	}
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return statusErr(er.Response.StatusCode, err)
	}
	return err
}

// find lists pull requests by head ("owner:branch") and base in every state, newest first, and picks
// an open one if any, else the newest; a second read fills merged_by, which lists leave out.
func (g *githubBackend) find(ctx context.Context, repo, base, head string) (*PullRequest, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	prs, _, err := g.c.PullRequests.List(ctx, owner, name, &github.PullRequestListOptions{
		State: "all", Head: owner + ":" + head, Base: base,
		ListOptions: github.ListOptions{PerPage: 20},
	})
	if err != nil {
		return nil, ghErr(err)
	}
	var pick *github.PullRequest
	for _, pr := range prs {
		if pr.GetHead().GetRef() != head {
			continue // defensive: a forge answering without honouring the filter must not misattribute
		}
		if pick == nil || pr.GetState() == "open" && pick.GetState() != "open" {
			pick = pr
		}
	}
	if pick == nil {
		return nil, nil
	}
	out, err := g.get(ctx, repo, pick.GetNumber())
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func (g *githubBackend) get(ctx context.Context, repo string, number int) (PullRequest, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return PullRequest{}, err
	}
	pr, _, err := g.c.PullRequests.Get(ctx, owner, name, number)
	if err != nil {
		return PullRequest{}, ghErr(err)
	}
	return fromGitHub(pr), nil
}

func (g *githubBackend) create(ctx context.Context, repo, base, head, title, body string) (PullRequest, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return PullRequest{}, err
	}
	pr, _, err := g.c.PullRequests.Create(ctx, owner, name, &github.NewPullRequest{
		Title: &title, Head: &head, Base: &base, Body: &body,
	})
	if isGitHubExists(err) {
		return PullRequest{}, errExists
	}
	if err != nil {
		return PullRequest{}, ghErr(err)
	}
	return fromGitHub(pr), nil
}

// isGitHubExists recognises the 422 "Validation Failed" whose error says "A pull request already
// exists for owner:branch."
func isGitHubExists(err error) bool {
	var er *github.ErrorResponse
	if !errors.As(err, &er) || er.Response == nil || er.Response.StatusCode != http.StatusUnprocessableEntity {
		return false
	}
	for _, e := range er.Errors {
		if strings.Contains(strings.ToLower(e.Message), "pull request already exists") {
			return true
		}
	}
	return false
}

func (g *githubBackend) addLabels(ctx context.Context, repo string, number int, labels []string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	_, _, err = g.c.Issues.AddLabelsToIssue(ctx, owner, name, number, labels)
	return ghErr(err)
}

func (g *githubBackend) requestReviewers(ctx context.Context, repo string, number int, reviewers []string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	_, _, err = g.c.PullRequests.RequestReviewers(ctx, owner, name, number, github.ReviewersRequest{Reviewers: reviewers})
	return ghErr(err)
}

func (g *githubBackend) reviewedBy(ctx context.Context, repo string, number int) ([]string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	var out []string
	for r, err := range g.c.PullRequests.ListReviewsIter(ctx, owner, name, number, &github.ListOptions{PerPage: 100}) {
		if err != nil {
			return nil, ghErr(err)
		}
		out = append(out, r.GetUser().GetLogin())
	}
	return out, nil
}

func (g *githubBackend) comment(ctx context.Context, repo string, number int, body string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	_, _, err = g.c.Issues.CreateComment(ctx, owner, name, number, &github.IssueComment{Body: &body})
	return ghErr(err)
}

func (g *githubBackend) close(ctx context.Context, repo string, number int) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	_, _, err = g.c.PullRequests.Edit(ctx, owner, name, number, &github.PullRequest{State: github.Ptr("closed")})
	return ghErr(err)
}

func fromGitHub(pr *github.PullRequest) PullRequest {
	out := PullRequest{
		Number:     pr.GetNumber(),
		URL:        pr.GetHTMLURL(),
		Title:      pr.GetTitle(),
		State:      StateOpen,
		HeadBranch: pr.GetHead().GetRef(),
		HeadSHA:    pr.GetHead().GetSHA(),
		BaseBranch: pr.GetBase().GetRef(),
		Author:     pr.GetUser().GetLogin(),
		Body:       pr.GetBody(),
	}
	switch {
	case pr.GetMerged() || pr.MergedAt != nil:
		out.State = StateMerged
		out.MergeCommitSHA = pr.GetMergeCommitSHA()
		out.MergedBy = pr.GetMergedBy().GetLogin()
		out.MergedAt = pr.GetMergedAt().Time
	case pr.GetState() == "closed":
		out.State = StateClosed
	}
	for _, l := range pr.Labels {
		out.Labels = append(out.Labels, l.GetName())
	}
	for _, u := range pr.RequestedReviewers {
		out.Reviewers = append(out.Reviewers, u.GetLogin())
	}
	return out
}
