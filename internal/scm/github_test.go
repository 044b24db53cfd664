package scm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeGitHub is an in-process GitHub Enterprise REST server on loopback that answers the pull request
// endpoints with the status codes and JSON shapes GitHub documents: 201 on create, 422 "Validation
// Failed" / "A pull request already exists for owner:branch." on a duplicate, list filtering by
// head=owner:branch and base, "merged"/"merged_by" only on the single-pull response, 401 "Bad
// credentials", 404 "Not Found"; issue comments listed by ascending id with per_page/page and a Link header,
// edited by id (PATCH /issues/comments/{id}); commit statuses created on a known commit (POST /statuses/{sha},
// 201; 422 for an unknown state or commit).
type fakeGitHub struct {
	t     *testing.T
	srv   *httptest.Server
	token string

	mu       sync.Mutex
	pulls    map[string][]*ghPull // by "owner/repo"
	posts    int                  // POST requests that reached a handler (for "nothing opened")
	calls    int                  // every authenticated request
	comments map[int][]*ghComment // by pull request number
	lastID   int64
	statuses map[string][]map[string]any // by commit SHA, oldest first
}

type ghComment struct {
	ID         int64
	User, Body string
}

// commentBodies lists the bodies of pull request n's comments, oldest first.
func (f *fakeGitHub) commentBodies(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.comments[n] {
		out = append(out, c.Body)
	}
	return out
}

type ghPull struct {
	Number         int
	State          string // open | closed
	Title, Body    string
	Head, Base     string
	HeadSHA        string
	Merged         bool
	MergedBy       string
	MergeCommitSHA string
	Labels         []string
	Reviewers      []string
	ReviewedBy     []string
	Requests       int // POSTs to requested_reviewers
}

func newFakeGitHub(t *testing.T) *fakeGitHub {
	f := &fakeGitHub{t: t, token: "ghp_" + strings.Repeat("x", 36), pulls: map[string][]*ghPull{},
		comments: map[int][]*ghComment{}, statuses: map[string][]map[string]any{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGitHub) provider(t *testing.T, token string) Provider {
	t.Helper()
	p, err := New(Config{Provider: "github", APIURL: f.srv.URL + "/api/v3/", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	ghRoute        = regexp.MustCompile(`^/api/v3/repos/([^/]+)/([^/]+)/(pulls|issues)(?:/(\d+))?(?:/(labels|comments|requested_reviewers|reviews))?$`)
	ghCommentRoute = regexp.MustCompile(`^/api/v3/repos/([^/]+)/([^/]+)/issues/comments/(\d+)$`)
	ghStatusRoute  = regexp.MustCompile(`^/api/v3/repos/([^/]+)/([^/]+)/statuses/([^/]+)$`)
)

func (f *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		writeJSON(w, 401, map[string]any{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if r.Method == http.MethodPost {
		f.posts++
	}
	if m := ghCommentRoute.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPatch {
		f.editComment(w, r, m[3])
		return
	}
	if m := ghStatusRoute.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost {
		f.createStatus(w, r, m[1]+"/"+m[2], m[3])
		return
	}
	m := ghRoute.FindStringSubmatch(r.URL.Path)
	if m == nil {
		f.notFound(w)
		return
	}
	repo, kind, sub := m[1]+"/"+m[2], m[3], m[5]
	if m[4] == "" {
		switch {
		case kind == "pulls" && r.Method == http.MethodGet:
			f.list(w, r, m[1], repo)
		case kind == "pulls" && r.Method == http.MethodPost:
			f.create(w, r, m[1], repo)
		default:
			f.notFound(w)
		}
		return
	}
	n, _ := strconv.Atoi(m[4])
	pr := f.find(repo, n)
	if pr == nil {
		f.notFound(w)
		return
	}
	var body map[string]any
	if r.Method != http.MethodGet {
		raw := json.RawMessage{}
		_ = json.NewDecoder(r.Body).Decode(&raw)
		if err := json.Unmarshal(raw, &body); err != nil {
			// POST /issues/{n}/labels also accepts a bare array of names.
			var names []string
			if json.Unmarshal(raw, &names) == nil {
				body = map[string]any{"labels": toAny(names)}
			}
		}
	}
	switch {
	case kind == "pulls" && sub == "" && r.Method == http.MethodGet:
		writeJSON(w, 200, f.pullJSON(m[1], repo, pr, true))
	case kind == "pulls" && sub == "" && r.Method == http.MethodPatch:
		if b, ok := body["body"].(string); ok {
			pr.Body = b
		}
		if s, ok := body["state"].(string); ok {
			if pr.Merged {
				writeJSON(w, 422, map[string]any{"message": "Validation Failed", "errors": []any{map[string]any{"resource": "PullRequest", "code": "custom", "message": "Cannot change the state of a merged pull request."}}})
				return
			}
			pr.State = s
		}
		writeJSON(w, 200, f.pullJSON(m[1], repo, pr, true))
	case kind == "issues" && sub == "labels" && r.Method == http.MethodPost:
		for _, l := range body["labels"].([]any) {
			if !slices.Contains(pr.Labels, l.(string)) {
				pr.Labels = append(pr.Labels, l.(string))
			}
		}
		writeJSON(w, 200, labelsJSON(pr.Labels))
	case kind == "issues" && sub == "comments" && r.Method == http.MethodPost:
		f.lastID++
		c := &ghComment{ID: f.lastID, User: "ferry-bot", Body: body["body"].(string)}
		f.comments[n] = append(f.comments[n], c)
		writeJSON(w, 201, commentJSON(c))
	case kind == "issues" && sub == "comments" && r.Method == http.MethodGet:
		f.listComments(w, r, n)
	case kind == "pulls" && sub == "reviews" && r.Method == http.MethodGet:
		out := []any{}
		for i, u := range pr.ReviewedBy {
			out = append(out, map[string]any{"id": 80 + i, "user": map[string]any{"login": u}, "state": "APPROVED", "body": ""})
		}
		writeJSON(w, 200, out)
	case kind == "pulls" && sub == "requested_reviewers" && r.Method == http.MethodPost:
		pr.Requests++
		for _, u := range body["reviewers"].([]any) {
			if u.(string) == "ghost" {
				writeJSON(w, 422, map[string]any{"message": "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the shop/web repository.", "documentation_url": "https://docs.github.com/rest/pulls/review-requests#request-reviewers-for-a-pull-request"})
				return
			}
			pr.Reviewers = append(pr.Reviewers, u.(string))
		}
		writeJSON(w, 201, f.pullJSON(m[1], repo, pr, false))
	default:
		f.notFound(w)
	}
}

func (f *fakeGitHub) notFound(w http.ResponseWriter) {
	writeJSON(w, 404, map[string]any{"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"})
}

func (f *fakeGitHub) find(repo string, n int) *ghPull {
	for _, pr := range f.pulls[repo] {
		if pr.Number == n {
			return pr
		}
	}
	return nil
}

func (f *fakeGitHub) list(w http.ResponseWriter, r *http.Request, owner, repo string) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	out := []any{}
	prs := f.pulls[repo]
	for i := len(prs) - 1; i >= 0; i-- { // newest first, as GitHub sorts by created desc
		pr := prs[i]
		if state != "all" && pr.State != state {
			continue
		}
		if h := q.Get("head"); h != "" && h != owner+":"+pr.Head {
			continue
		}
		if b := q.Get("base"); b != "" && b != pr.Base {
			continue
		}
		out = append(out, f.pullJSON(owner, repo, pr, false))
	}
	writeJSON(w, 200, out)
}

func (f *fakeGitHub) create(w http.ResponseWriter, r *http.Request, owner, repo string) {
	var in struct{ Title, Head, Base, Body string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Title == "" || in.Head == "" || in.Base == "" {
		writeJSON(w, 422, map[string]any{"message": "Validation Failed", "errors": []any{map[string]any{"resource": "PullRequest", "field": "title", "code": "missing_field"}}})
		return
	}
	for _, pr := range f.pulls[repo] {
		if pr.Head == in.Head && pr.Base == in.Base && pr.State == "open" {
			writeJSON(w, 422, map[string]any{
				"message": "Validation Failed",
				"errors": []any{map[string]any{"resource": "PullRequest", "code": "custom",
					"message": fmt.Sprintf("A pull request already exists for %s:%s.", owner, in.Head)}},
				"documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
			})
			return
		}
	}
	pr := &ghPull{Number: len(f.pulls[repo]) + 1, State: "open", Title: in.Title, Body: in.Body, Head: in.Head, Base: in.Base,
		HeadSHA: fmt.Sprintf("%040x", len(f.pulls[repo])+100)}
	f.pulls[repo] = append(f.pulls[repo], pr)
	writeJSON(w, 201, f.pullJSON(owner, repo, pr, true))
}

// pullJSON renders a pull request like GitHub does; full adds the fields only "Get a pull request"
// (and create/update) return.
func (f *fakeGitHub) pullJSON(owner, repo string, pr *ghPull, full bool) map[string]any {
	reviewers := []any{}
	for _, u := range pr.Reviewers {
		reviewers = append(reviewers, map[string]any{"login": u, "id": 1, "type": "User"})
	}
	out := map[string]any{
		"url":                 f.srv.URL + "/api/v3/repos/" + repo + "/pulls/" + strconv.Itoa(pr.Number),
		"id":                  1000 + pr.Number,
		"html_url":            f.srv.URL + "/" + repo + "/pull/" + strconv.Itoa(pr.Number),
		"number":              pr.Number,
		"state":               pr.State,
		"locked":              false,
		"title":               pr.Title,
		"body":                pr.Body,
		"user":                map[string]any{"login": "ferry-bot", "id": 7, "type": "User"},
		"labels":              labelsJSON(pr.Labels),
		"requested_reviewers": reviewers,
		"merge_commit_sha":    nilIfEmpty(pr.MergeCommitSHA),
		"merged_at":           nil,
		"closed_at":           nil,
		"head":                map[string]any{"label": owner + ":" + pr.Head, "ref": pr.Head, "sha": pr.HeadSHA, "user": map[string]any{"login": owner}},
		"base":                map[string]any{"label": owner + ":" + pr.Base, "ref": pr.Base, "sha": strings.Repeat("b", 40), "user": map[string]any{"login": owner}},
		"draft":               false,
	}
	if pr.Merged {
		out["merged_at"] = "2026-11-20T10:00:00Z"
		out["closed_at"] = "2026-11-20T10:00:00Z"
	}
	if full {
		out["merged"] = pr.Merged
		out["mergeable"] = !pr.Merged
		out["merged_by"] = nil
		if pr.Merged {
			out["merged_by"] = map[string]any{"login": pr.MergedBy, "id": 9, "type": "User"}
		}
	}
	return out
}

func labelsJSON(names []string) []any {
	out := []any{}
	for i, n := range names {
		out = append(out, map[string]any{"id": i + 1, "name": n, "color": "ededed", "default": false})
	}
	return out
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// merge and close act as the release manager on GitHub's side.
func (f *fakeGitHub) merge(repo string, n int, by string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	pr := f.find(repo, n)
	pr.State, pr.Merged, pr.MergedBy = "closed", true, by
	pr.MergeCommitSHA = fmt.Sprintf("%040x", 0xabc000+n)
	return pr.MergeCommitSHA
}

// review records an approving review: like GitHub, the reviewer leaves requested_reviewers.
func (f *fakeGitHub) review(repo string, n int, by string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pr := f.find(repo, n)
	pr.Reviewers = slices.DeleteFunc(pr.Reviewers, func(u string) bool { return u == by })
	pr.ReviewedBy = append(pr.ReviewedBy, by)
}

func (f *fakeGitHub) closeUnmerged(repo string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.find(repo, n).State = "closed"
}

func (f *fakeGitHub) postCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.posts
}

func specFor(t testing.TB, repo, digest string) PullRequestSpec {
	t.Helper()
	c := testChange()
	c.Digest = digest
	head, err := BranchName(c.Promotion, c.Stage, digest)
	if err != nil {
		t.Fatal(err)
	}
	return PullRequestSpec{Repo: repo, Base: "main", Head: head, Change: c,
		Labels: []string{"ferry", "promotion"}, Reviewers: []string{"release-manager"}}
}

func TestGitHubApprovalFlow(t *testing.T) {
	f := newFakeGitHub(t)
	p := f.provider(t, f.token)
	ctx := context.Background()
	spec := specFor(t, "shop/web", digestA)

	pr, err := p.EnsurePullRequest(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Number != 1 || pr.State != StateOpen || pr.HeadBranch != spec.Head || pr.BaseBranch != "main" ||
		pr.Title != "Promote shop-web to prod (0123456789ab)" || !strings.HasSuffix(pr.URL, "/shop/web/pull/1") {
		t.Fatalf("opened %+v", pr)
	}
	if !slices.Equal(pr.Labels, spec.Labels) || !slices.Equal(pr.Reviewers, spec.Reviewers) {
		t.Fatalf("labels %v reviewers %v", pr.Labels, pr.Reviewers)
	}
	again, err := p.EnsurePullRequest(ctx, spec)
	if err != nil || again.Number != 1 {
		t.Fatalf("second Ensure = %+v, %v", again, err)
	}
	if n := len(f.pulls["shop/web"]); n != 1 {
		t.Fatalf("%d pull requests after two Ensure calls", n)
	}
	// A reviewer who already reviewed is not asked again; one whose request got lost (a crash
	// between create and request) is.
	f.review("shop/web", 1, "release-manager")
	if _, err := p.EnsurePullRequest(ctx, spec); err != nil || f.pulls["shop/web"][0].Requests != 1 {
		t.Fatalf("Ensure after a review: %v; %d review requests", err, f.pulls["shop/web"][0].Requests)
	}
	spec.Reviewers = append(spec.Reviewers, "qa-lead")
	if again, err = p.EnsurePullRequest(ctx, spec); err != nil || !slices.Equal(again.Reviewers, []string{"qa-lead"}) || f.pulls["shop/web"][0].Requests != 2 {
		t.Fatalf("Ensure with a new reviewer = %+v, %v", again, err)
	}

	sha := f.merge("shop/web", 1, "release-manager")
	got, err := p.GetPullRequest(ctx, "shop/web", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Approved() || got.MergeCommitSHA != sha || got.MergedBy != "release-manager" || got.MergedAt.IsZero() {
		t.Fatalf("merged pull request reads as %+v", got)
	}
	// Ensure after the merge returns the merged one: the approval stays, nothing is reopened.
	again, err = p.EnsurePullRequest(ctx, spec)
	if err != nil || !again.Approved() || again.MergedBy != "release-manager" {
		t.Fatalf("Ensure after merge = %+v, %v", again, err)
	}
	if err := p.ClosePullRequest(ctx, "shop/web", 1, "too late"); !errors.Is(err, ErrMerged) {
		t.Fatalf("closing a merged pull request: %v", err)
	}
}

func TestGitHubRejectAndSupersede(t *testing.T) {
	f := newFakeGitHub(t)
	p := f.provider(t, f.token)
	ctx := context.Background()

	old, err := p.EnsurePullRequest(ctx, specFor(t, "shop/web", digestA))
	if err != nil {
		t.Fatal(err)
	}
	newer, err := p.EnsurePullRequest(ctx, specFor(t, "shop/web", digestB))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ClosePullRequest(ctx, "shop/web", old.Number, SupersedeComment(newer, digestB)); err != nil {
		t.Fatal(err)
	}
	got, _ := p.GetPullRequest(ctx, "shop/web", old.Number)
	if !got.Rejected() || len(f.commentBodies(old.Number)) != 1 || !strings.Contains(f.commentBodies(old.Number)[0], "Superseded by #2") {
		t.Fatalf("superseded pull request %+v, comments %q", got, f.commentBodies(old.Number))
	}
	// Closing twice is a no-op and adds no second comment.
	if err := p.ClosePullRequest(ctx, "shop/web", old.Number, "again"); err != nil || len(f.commentBodies(old.Number)) != 1 {
		t.Fatalf("second close: %v, comments %q", err, f.commentBodies(old.Number))
	}
	f.closeUnmerged("shop/web", newer.Number)
	found, err := p.FindPullRequest(ctx, "shop/web", "main", newer.HeadBranch)
	if err != nil || found == nil || !found.Rejected() || found.MergeCommitSHA != "" {
		t.Fatalf("rejected pull request reads as %+v, %v", found, err)
	}
	none, err := p.FindPullRequest(ctx, "shop/web", "main", "ferry/shop-web/prod/aaaaaaaaaaaa")
	if err != nil || none != nil {
		t.Fatalf("Find of an unknown branch = %+v, %v", none, err)
	}
}

// A pull request opened by someone else between our lookup and our create (GitHub answers 422
// "A pull request already exists") is adopted instead of failing.
func TestGitHubAdoptsConcurrentlyOpened(t *testing.T) {
	f := newFakeGitHub(t)
	p := f.provider(t, f.token)
	spec := specFor(t, "shop/web", digestA)
	spec.Labels, spec.Reviewers = nil, nil
	first, err := p.EnsurePullRequest(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	b := p.(*provider).b
	if _, err := b.create(context.Background(), spec.Repo, spec.Base, spec.Head, "t", "b"); !errors.Is(err, errExists) {
		t.Fatalf("duplicate create = %v, want errExists", err)
	}
	var wg sync.WaitGroup
	results := make([]PullRequest, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = p.EnsurePullRequest(context.Background(), spec)
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.Number != first.Number {
			t.Fatalf("concurrent Ensure returned #%d, want #%d", r.Number, first.Number)
		}
	}
}

func TestGitHubBadInput(t *testing.T) {
	f := newFakeGitHub(t)
	ctx := context.Background()
	spec := specFor(t, "shop/web", digestA)

	_, err := f.provider(t, "wrong-token").EnsurePullRequest(ctx, spec)
	if !errors.Is(err, ErrUnauthorized) || strings.Contains(err.Error(), "wrong-token") {
		t.Fatalf("wrong token: %v", err)
	}
	p := f.provider(t, f.token)
	bad := spec
	bad.TitleTemplate = "{{.Promotion"
	if _, err := p.EnsurePullRequest(ctx, bad); err == nil {
		t.Fatal("broken template accepted")
	}
	bad = spec
	bad.Head = "ferry/" + strings.Repeat("x", 250)
	if _, err := p.EnsurePullRequest(ctx, bad); err == nil {
		t.Fatal("overlong branch accepted")
	}
	if f.postCount() != 0 || len(f.pulls) != 0 {
		t.Fatalf("bad input reached the forge: %d POSTs", f.postCount())
	}
	if _, err := p.GetPullRequest(ctx, "shop/web", 42); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing pull request: %v", err)
	}
	if _, err := p.GetPullRequest(ctx, "shop/web", 0); err == nil {
		t.Fatal("pull request number 0 accepted")
	}
	// A reviewer GitHub refuses is reported, naming the step.
	spec.Reviewers = []string{"ghost"}
	if _, err := p.EnsurePullRequest(ctx, spec); err == nil || !strings.Contains(err.Error(), "requesting reviewers") {
		t.Fatalf("refused reviewer: %v", err)
	}
}

// A settled pull request costs two requests per Ensure (list by head, then read it), which keeps a
// reconcile loop far from GitHub's rate limit.
func TestGitHubEnsureCost(t *testing.T) {
	f := newFakeGitHub(t)
	p := f.provider(t, f.token)
	spec := specFor(t, "shop/web", digestA)
	if _, err := p.EnsurePullRequest(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	before := f.calls
	if _, err := p.EnsurePullRequest(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if n := f.calls - before; n != 2 {
		t.Fatalf("Ensure of a settled pull request made %d requests, want 2", n)
	}
}
