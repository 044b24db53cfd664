package scm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"

	"github.com/ferrycd/ferry/internal/scm/giteatest"
)

// One real Gitea serves every test of this package that asks for it (giteatest.Require).
func TestMain(m *testing.M) { os.Exit(giteatest.Main(m)) }

const (
	digestC = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	digestD = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
)

// giteaWorld is one repository with the people of an approval: its owner, Ferry's bot account and a
// release manager (write access, not admin) who approves by merging.
type giteaWorld struct {
	srv                  *giteatest.Server
	owner, bot, approver giteatest.User
	repo                 giteatest.Repo
	ferry                Provider
}

var worldSeq atomic.Int32

func newGiteaWorld(t *testing.T) *giteaWorld { return newGiteaWorldB(t) }

func newGiteaWorldB(t testing.TB) *giteaWorld {
	t.Helper()
	srv := giteatest.Require(t)
	ctx := context.Background()
	n := worldSeq.Add(1)
	w := &giteaWorld{srv: srv}
	var err error
	for _, u := range []struct {
		dst  *giteatest.User
		name string
	}{{&w.owner, "platform"}, {&w.bot, "ferry-bot"}, {&w.approver, "release-manager"}} {
		if *u.dst, err = srv.CreateUser(ctx, fmt.Sprintf("%s-%d", u.name, n)); err != nil {
			t.Fatal(err)
		}
	}
	if w.repo, err = srv.CreateRepo(ctx, w.owner, "config"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []giteatest.User{w.bot, w.approver} {
		if err := srv.AddCollaborator(ctx, w.owner, w.repo, u.Name); err != nil {
			t.Fatal(err)
		}
	}
	if w.ferry, err = New(Config{Provider: "gitea", APIURL: srv.URL, Token: w.bot.Token}); err != nil {
		t.Fatal(err)
	}
	return w
}

// pushed returns a spec for digest whose head branch Ferry's bot has pushed with git.
func (w *giteaWorld) pushed(t *testing.T, digest string) PullRequestSpec { return w.pushedB(t, digest) }

func (w *giteaWorld) pushedB(t testing.TB, digest string) PullRequestSpec {
	t.Helper()
	spec := specFor(t, w.repo.FullName(), digest)
	spec.Reviewers = []string{w.approver.Name}
	_, err := w.srv.PushBranch(context.Background(), w.bot, w.repo, "main", spec.Head,
		map[string]string{"envs/prod/image.yaml": "image: registry.example.com/shop/web@" + digest + "\n"})
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func (w *giteaWorld) as(t *testing.T, u giteatest.User) *gitea.Client {
	t.Helper()
	c, err := w.srv.Client(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (w *giteaWorld) pullCount(t *testing.T) int {
	t.Helper()
	prs, _, err := w.as(t, w.owner).ListRepoPullRequests(w.repo.Owner, w.repo.Name, gitea.ListPullRequestsOptions{State: gitea.StateAll})
	if err != nil {
		t.Fatal(err)
	}
	return len(prs)
}

// mergeAs merges like a release manager pressing the button, once Gitea has finished its
// asynchronous mergeability check.
func (w *giteaWorld) mergeAs(t *testing.T, u giteatest.User, number int) {
	t.Helper()
	w.mergeStyleAs(t, u, number, gitea.MergeStyleMerge)
}

func (w *giteaWorld) mergeStyleAs(t *testing.T, u giteatest.User, number int, style gitea.MergeStyle) {
	t.Helper()
	c := w.as(t, u)
	deadline := time.Now().Add(time.Minute)
	for {
		pr, _, err := c.GetPullRequest(w.repo.Owner, w.repo.Name, int64(number))
		if err != nil {
			t.Fatal(err)
		}
		if pr.Mergeable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pull request #%d never became mergeable", number)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition on the server, not waiting for time
	}
	ok, _, err := c.MergePullRequest(w.repo.Owner, w.repo.Name, int64(number), gitea.MergePullRequestOption{Style: style})
	if err != nil || !ok {
		t.Fatalf("merging #%d as %s: %v", number, u.Name, err)
	}
}

func TestGiteaApprovalByMerge(t *testing.T) {
	w := newGiteaWorld(t)
	ctx := context.Background()
	spec := w.pushed(t, digestA)

	pr, err := w.ferry.EnsurePullRequest(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if pr.State != StateOpen || pr.HeadBranch != spec.Head || pr.BaseBranch != "main" || pr.Title != "Promote shop-web to prod (0123456789ab)" ||
		!strings.HasPrefix(pr.URL, w.srv.URL+"/"+w.repo.FullName()+"/pulls/") {
		t.Fatalf("opened %+v", pr)
	}
	// Labels and the reviewer, as Gitea itself reports them.
	raw, _, err := w.as(t, w.owner).GetPullRequest(w.repo.Owner, w.repo.Name, int64(pr.Number))
	if err != nil {
		t.Fatal(err)
	}
	got := fromGitea(raw)
	if !slices.Equal(slices.Sorted(slices.Values(got.Labels)), []string{"ferry", "promotion"}) || !slices.Equal(got.Reviewers, []string{w.approver.Name}) {
		t.Fatalf("labels %v, reviewers %v", got.Labels, got.Reviewers)
	}
	if !strings.Contains(raw.Body, digestA) || !strings.Contains(raw.Body, "registry.example.com/shop/web:1.4.2") || !strings.Contains(raw.Body, "release.yml@refs/tags/v1.4.2") {
		t.Fatalf("body does not state digest, source and signer:\n%s", raw.Body)
	}

	// Ensure again (a restart): same pull request, still one in the repository.
	again, err := w.ferry.EnsurePullRequest(ctx, spec)
	if err != nil || again.Number != pr.Number || w.pullCount(t) != 1 {
		t.Fatalf("second Ensure = %+v, %v; %d pull requests", again, err, w.pullCount(t))
	}

	// The release manager approves in a review; Ensure then does not ask them again (Gitea would
	// record a new review request).
	approver := w.as(t, w.approver)
	if _, _, err := approver.CreatePullReview(w.repo.Owner, w.repo.Name, int64(pr.Number),
		gitea.CreatePullReviewOptions{State: gitea.ReviewStateApproved, Body: "looks right"}); err != nil {
		t.Fatal(err)
	}
	before, _, err := approver.ListPullReviews(w.repo.Owner, w.repo.Name, int64(pr.Number), gitea.ListPullReviewsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.ferry.EnsurePullRequest(ctx, spec); err != nil {
		t.Fatal(err)
	}
	after, _, err := approver.ListPullReviews(w.repo.Owner, w.repo.Name, int64(pr.Number), gitea.ListPullReviewsOptions{})
	if err != nil || len(after) != len(before) || after[len(after)-1].State != gitea.ReviewStateApproved {
		t.Fatalf("reviews changed from %d to %d (%v): the reviewer was asked again", len(before), len(after), err)
	}

	w.mergeAs(t, w.approver, pr.Number)
	merged, err := w.ferry.GetPullRequest(ctx, w.repo.FullName(), pr.Number)
	if err != nil {
		t.Fatal(err)
	}
	branch, _, err := w.as(t, w.owner).GetRepoBranch(w.repo.Owner, w.repo.Name, "main")
	if err != nil {
		t.Fatal(err)
	}
	if !merged.Approved() || merged.MergedBy != w.approver.Name || merged.MergeCommitSHA != branch.Commit.ID || merged.MergedAt.IsZero() {
		t.Fatalf("merged pull request reads as %+v (main is at %s)", merged, branch.Commit.ID)
	}
	if err := w.ferry.ClosePullRequest(ctx, w.repo.FullName(), pr.Number, "late"); !errors.Is(err, ErrMerged) {
		t.Fatalf("closing the merged pull request: %v", err)
	}
	// Ensure after approval keeps reporting the approval; it does not reopen.
	if after, err := w.ferry.EnsurePullRequest(ctx, spec); err != nil || !after.Approved() || w.pullCount(t) != 1 {
		t.Fatalf("Ensure after merge = %+v, %v", after, err)
	}
}

// Squash and rebase merges also report the commit that landed on the base branch.
func TestGiteaSquashAndRebaseMerges(t *testing.T) {
	w := newGiteaWorld(t)
	ctx := context.Background()
	for i, style := range []gitea.MergeStyle{gitea.MergeStyleSquash, gitea.MergeStyleRebase} {
		pr, err := w.ferry.EnsurePullRequest(ctx, w.pushed(t, []string{digestB, digestC}[i]))
		if err != nil {
			t.Fatal(err)
		}
		w.mergeStyleAs(t, w.approver, pr.Number, style)
		got, err := w.ferry.GetPullRequest(ctx, w.repo.FullName(), pr.Number)
		if err != nil {
			t.Fatal(err)
		}
		branch, _, err := w.as(t, w.owner).GetRepoBranch(w.repo.Owner, w.repo.Name, "main")
		if err != nil {
			t.Fatal(err)
		}
		if !got.Approved() || got.MergedBy != w.approver.Name || got.MergeCommitSHA != branch.Commit.ID {
			t.Fatalf("%s merge reads as %+v (main is at %s)", style, got, branch.Commit.ID)
		}
	}
}

func TestGiteaRejectionAndSupersede(t *testing.T) {
	w := newGiteaWorld(t)
	ctx := context.Background()

	rejected, err := w.ferry.EnsurePullRequest(ctx, w.pushed(t, digestB))
	if err != nil {
		t.Fatal(err)
	}
	closed := gitea.StateClosed
	if _, _, err := w.as(t, w.approver).EditPullRequest(w.repo.Owner, w.repo.Name, int64(rejected.Number), gitea.EditPullRequestOption{State: &closed}); err != nil {
		t.Fatal(err)
	}
	found, err := w.ferry.FindPullRequest(ctx, w.repo.FullName(), "main", rejected.HeadBranch)
	if err != nil || found == nil || !found.Rejected() || found.Number != rejected.Number || found.MergeCommitSHA != "" || found.MergedBy != "" {
		t.Fatalf("rejected pull request reads as %+v, %v", found, err)
	}

	old, err := w.ferry.EnsurePullRequest(ctx, w.pushed(t, digestC))
	if err != nil {
		t.Fatal(err)
	}
	newer, err := w.ferry.EnsurePullRequest(ctx, w.pushed(t, digestD))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.ferry.ClosePullRequest(ctx, w.repo.FullName(), old.Number, SupersedeComment(newer, digestD)); err != nil {
		t.Fatal(err)
	}
	owner := w.as(t, w.owner)
	raw, _, err := owner.GetPullRequest(w.repo.Owner, w.repo.Name, int64(old.Number))
	if err != nil || raw.State != gitea.StateClosed || raw.HasMerged {
		t.Fatalf("superseded pull request: state %s merged %v, %v", raw.State, raw.HasMerged, err)
	}
	comments, _, err := owner.ListIssueComments(w.repo.Owner, w.repo.Name, int64(old.Number), gitea.ListIssueCommentOptions{})
	if err != nil || len(comments) != 1 || !strings.Contains(comments[0].Body, fmt.Sprintf("Superseded by #%d", newer.Number)) ||
		comments[0].Poster.UserName != w.bot.Name {
		t.Fatalf("supersede comment: %+v, %v", comments, err)
	}
	if still, _ := w.ferry.GetPullRequest(ctx, w.repo.FullName(), newer.Number); still.State != StateOpen {
		t.Fatalf("newer pull request is %s", still.State)
	}
	// Closing again is a no-op: no second comment.
	if err := w.ferry.ClosePullRequest(ctx, w.repo.FullName(), old.Number, "again"); err != nil {
		t.Fatal(err)
	}
	if comments, _, _ := owner.ListIssueComments(w.repo.Owner, w.repo.Name, int64(old.Number), gitea.ListIssueCommentOptions{}); len(comments) != 1 {
		t.Fatalf("%d comments after closing twice", len(comments))
	}
}

// Gitea itself accepts a second pull request for the same head; concurrent Ensure calls through one
// provider must still end with exactly one.
func TestGiteaConcurrentEnsureOpensOne(t *testing.T) {
	w := newGiteaWorld(t)
	spec := w.pushed(t, digestA)
	var wg sync.WaitGroup
	nums := make([]int, 5)
	errs := make([]error, 5)
	for i := range nums {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr, err := w.ferry.EnsurePullRequest(context.Background(), spec)
			nums[i], errs[i] = pr.Number, err
		}()
	}
	wg.Wait()
	for i := range nums {
		if errs[i] != nil || nums[i] != nums[0] {
			t.Fatalf("concurrent Ensure gave %v, %v", nums, errs)
		}
	}
	if n := w.pullCount(t); n != 1 {
		t.Fatalf("%d pull requests after concurrent Ensure", n)
	}
}

func TestGiteaBadInputOpensNothing(t *testing.T) {
	w := newGiteaWorld(t)
	ctx := context.Background()
	spec := w.pushed(t, digestA)

	wrong, err := New(Config{Provider: "gitea", APIURL: w.srv.URL, Token: "0123456789abcdef0123456789abcdef01234567"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.EnsurePullRequest(ctx, spec); !errors.Is(err, ErrUnauthorized) || strings.Contains(err.Error(), "0123456789abcdef0123") {
		t.Fatalf("wrong token: %v", err)
	}
	bad := spec
	bad.TitleTemplate = "{{.Promotion"
	var ie *InputError
	if _, err := w.ferry.EnsurePullRequest(ctx, bad); !errors.As(err, &ie) || ie.Field != "title template" {
		t.Fatalf("broken template: %v", err)
	}
	bad = spec
	bad.Head = spec.Head + "/" + strings.Repeat("x", MaxBranchLength)
	if _, err := w.ferry.EnsurePullRequest(ctx, bad); !errors.As(err, &ie) || ie.Field != "head branch" {
		t.Fatalf("overlong branch: %v", err)
	}
	// A head branch that was never pushed is refused by Gitea.
	unpushed := specFor(t, w.repo.FullName(), digestD)
	if _, err := w.ferry.EnsurePullRequest(ctx, unpushed); err == nil {
		t.Fatal("pull request from a missing branch was opened")
	}
	if n := w.pullCount(t); n != 0 {
		t.Fatalf("bad input opened %d pull requests", n)
	}
	// A URL where nothing listens fails cleanly.
	dead, _ := New(Config{Provider: "gitea", APIURL: "http://127.0.0.1:1", Token: "t"})
	if _, err := dead.GetPullRequest(ctx, w.repo.FullName(), 1); err == nil {
		t.Fatal("unreachable server gave no error")
	}
	if _, err := w.ferry.FindPullRequest(ctx, w.repo.Owner+"/missing", "main", spec.Head); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "repository") {
		t.Fatalf("missing repository: %v", err)
	}
	if _, err := w.ferry.GetPullRequest(ctx, w.repo.FullName(), 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing pull request: %v", err)
	}
}
