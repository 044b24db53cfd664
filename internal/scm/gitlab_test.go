package scm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeGitLab is an in-process self-managed GitLab REST (v4) server on loopback answering the merge
// request endpoints as GitLab documents them: project paths URL-encoded as the id, states
// opened|closed|merged|locked, 201 on create, 409 {"message":["Another open merge request already
// exists for this source branch: !N"]}, merge_user on merged requests, 401 {"message":"401
// Unauthorized"}, 404 {"message":"404 Not found"}; notes listed by order_by/sort (default created_at desc) with
// page/per_page and X-Next-Page, system notes among them, edited by id; commit statuses (POST
// /projects/:id/statuses/:sha) kept as GitLab's state machine, which refuses with 400 "Cannot transition status"
// to post pending or running again.
type fakeGitLab struct {
	srv   *httptest.Server
	token string

	mu       sync.Mutex
	mrs      map[string][]*glMR // by project path
	users    map[string]int
	posts    int
	calls    int
	notes    map[int][]*glNote
	lastNote int
	statuses map[string][]map[string]any // by commit SHA, oldest first
}

type glNote struct {
	ID     int
	Author string
	Body   string
	System bool
}

// noteBodies lists the bodies of the notes people wrote on merge request iid, oldest first.
func (f *fakeGitLab) noteBodies(iid int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, n := range f.notes[iid] {
		if !n.System {
			out = append(out, n.Body)
		}
	}
	return out
}

type glMR struct {
	IID                 int
	State               string
	Title, Description  string
	Source, Target      string
	SHA                 string
	MergeCommit, Squash string
	MergeUser           string
	Labels              []string
	ReviewerIDs         []int
}

func newFakeGitLab(t *testing.T) *fakeGitLab {
	f := &fakeGitLab{token: "glpat-" + strings.Repeat("y", 20), mrs: map[string][]*glMR{},
		users: map[string]int{"release-manager": 11, "qa-lead": 12}, notes: map[int][]*glNote{},
		statuses: map[string][]map[string]any{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGitLab) provider(t *testing.T, token string) Provider {
	t.Helper()
	p, err := New(Config{Provider: "gitlab", APIURL: f.srv.URL, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	glRoute       = regexp.MustCompile(`^/api/v4/projects/([^/]+)/merge_requests(?:/(\d+))?(?:/(notes))?(?:/(\d+))?$`)
	glStatusRoute = regexp.MustCompile(`^/api/v4/projects/([^/]+)/statuses/([^/]+)$`)
)

func (f *fakeGitLab) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("PRIVATE-TOKEN") != f.token {
		writeJSON(w, 401, map[string]any{"message": "401 Unauthorized"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if r.Method == http.MethodPost {
		f.posts++
	}
	if r.URL.Path == "/api/v4/users" && r.Method == http.MethodGet {
		out := []any{}
		if id, ok := f.users[r.URL.Query().Get("username")]; ok {
			out = append(out, map[string]any{"id": id, "username": r.URL.Query().Get("username"), "state": "active"})
		}
		writeJSON(w, 200, out)
		return
	}
	if m := glStatusRoute.FindStringSubmatch(r.URL.EscapedPath()); m != nil && r.Method == http.MethodPost {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.setStatus(w, m[1], m[2], body)
		return
	}
	m := glRoute.FindStringSubmatch(r.URL.EscapedPath())
	if m == nil {
		writeJSON(w, 404, map[string]any{"message": "404 Not found"})
		return
	}
	project, err := url.PathUnescape(m[1])
	if err != nil || project != "shop/platform/web" {
		writeJSON(w, 404, map[string]any{"message": "404 Project Not Found"})
		return
	}
	var body map[string]any
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		_ = json.NewDecoder(r.Body).Decode(&body)
	}
	if m[2] == "" {
		switch r.Method {
		case http.MethodGet:
			f.list(w, r, project)
		case http.MethodPost:
			f.create(w, project, body)
		default:
			writeJSON(w, 405, map[string]any{"message": "405 Method Not Allowed"})
		}
		return
	}
	iid, _ := strconv.Atoi(m[2])
	mr := f.find(project, iid)
	if mr == nil {
		writeJSON(w, 404, map[string]any{"message": "404 Not found"})
		return
	}
	switch {
	case m[3] == "notes" && m[4] == "" && r.Method == http.MethodPost:
		f.lastNote++
		n := &glNote{ID: f.lastNote, Author: "ferry-bot", Body: body["body"].(string)}
		f.notes[iid] = append(f.notes[iid], n)
		writeJSON(w, 201, noteJSON(n, iid))
	case m[3] == "notes" && m[4] == "" && r.Method == http.MethodGet:
		f.listNotes(w, r, iid)
	case m[3] == "notes" && r.Method == http.MethodPut:
		f.editNote(w, iid, m[4], body)
	case r.Method == http.MethodGet:
		writeJSON(w, 200, f.mrJSON(project, mr))
	case r.Method == http.MethodPut:
		if s, ok := body["add_labels"].(string); ok {
			for _, l := range strings.Split(s, ",") {
				if !slices.Contains(mr.Labels, l) {
					mr.Labels = append(mr.Labels, l)
				}
			}
		}
		if ids, ok := body["reviewer_ids"].([]any); ok {
			mr.ReviewerIDs = nil
			for _, id := range ids {
				mr.ReviewerIDs = append(mr.ReviewerIDs, int(id.(float64)))
			}
		}
		if d, ok := body["description"].(string); ok {
			mr.Description = d
		}
		if body["state_event"] == "close" && mr.State == "opened" {
			mr.State = "closed"
		}
		writeJSON(w, 200, f.mrJSON(project, mr))
	default:
		writeJSON(w, 405, map[string]any{"message": "405 Method Not Allowed"})
	}
}

func (f *fakeGitLab) find(project string, iid int) *glMR {
	for _, mr := range f.mrs[project] {
		if mr.IID == iid {
			return mr
		}
	}
	return nil
}

func (f *fakeGitLab) list(w http.ResponseWriter, r *http.Request, project string) {
	q := r.URL.Query()
	out := []any{}
	list := f.mrs[project]
	for i := len(list) - 1; i >= 0; i-- { // GitLab orders by created_at desc
		mr := list[i]
		if s := q.Get("state"); s != "" && s != "all" && s != mr.State {
			continue
		}
		if s := q.Get("source_branch"); s != "" && s != mr.Source {
			continue
		}
		if s := q.Get("target_branch"); s != "" && s != mr.Target {
			continue
		}
		out = append(out, f.mrJSON(project, mr))
	}
	writeJSON(w, 200, out)
}

func (f *fakeGitLab) create(w http.ResponseWriter, project string, body map[string]any) {
	src, _ := body["source_branch"].(string)
	tgt, _ := body["target_branch"].(string)
	title, _ := body["title"].(string)
	if src == "" || tgt == "" || title == "" {
		writeJSON(w, 400, map[string]any{"message": "title is missing"})
		return
	}
	for _, mr := range f.mrs[project] {
		if mr.Source == src && mr.State == "opened" {
			writeJSON(w, 409, map[string]any{"message": []any{fmt.Sprintf("Another open merge request already exists for this source branch: !%d", mr.IID)}})
			return
		}
	}
	desc, _ := body["description"].(string)
	mr := &glMR{IID: len(f.mrs[project]) + 1, State: "opened", Title: title, Description: desc, Source: src, Target: tgt,
		SHA: fmt.Sprintf("%040x", 0x5000+len(f.mrs[project]))}
	f.mrs[project] = append(f.mrs[project], mr)
	writeJSON(w, 201, f.mrJSON(project, mr))
}

func (f *fakeGitLab) mrJSON(project string, mr *glMR) map[string]any {
	reviewers := []any{}
	for _, id := range mr.ReviewerIDs {
		for name, uid := range f.users {
			if uid == id {
				reviewers = append(reviewers, map[string]any{"id": id, "username": name, "state": "active"})
			}
		}
	}
	out := map[string]any{
		"id": 9000 + mr.IID, "iid": mr.IID, "project_id": 3, "title": mr.Title, "description": mr.Description,
		"state": mr.State, "source_branch": mr.Source, "target_branch": mr.Target,
		"labels": mr.Labels, "reviewers": reviewers, "sha": mr.SHA,
		"merge_commit_sha": nilIfEmpty(mr.MergeCommit), "squash_commit_sha": nilIfEmpty(mr.Squash),
		"merge_user": nil, "merged_by": nil, "merged_at": nil, "closed_by": nil,
		"author":                map[string]any{"id": 10, "username": "ferry-bot", "state": "active"},
		"web_url":               f.srv.URL + "/" + project + "/-/merge_requests/" + strconv.Itoa(mr.IID),
		"detailed_merge_status": "mergeable",
	}
	if mr.Labels == nil {
		out["labels"] = []any{}
	}
	if mr.State == "merged" {
		u := map[string]any{"id": f.users[mr.MergeUser], "username": mr.MergeUser}
		out["merge_user"], out["merged_by"], out["merged_at"] = u, u, "2026-11-20T10:00:00.000Z"
	}
	return out
}

func (f *fakeGitLab) merge(project string, iid int, by, mergeCommit, squash string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mr := f.find(project, iid)
	mr.State, mr.MergeUser, mr.MergeCommit, mr.Squash = "merged", by, mergeCommit, squash
}

func (f *fakeGitLab) closeUnmerged(project string, iid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.find(project, iid).State = "closed"
}

const glProject = "shop/platform/web"

func TestGitLabApprovalFlow(t *testing.T) {
	f := newFakeGitLab(t)
	p := f.provider(t, f.token)
	ctx := context.Background()
	spec := specFor(t, glProject, digestA)
	spec.Reviewers = []string{"release-manager", "qa-lead"}

	mr, err := p.EnsurePullRequest(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if mr.Number != 1 || mr.State != StateOpen || mr.HeadBranch != spec.Head || !strings.HasSuffix(mr.URL, "/shop/platform/web/-/merge_requests/1") {
		t.Fatalf("opened %+v", mr)
	}
	if !slices.Equal(mr.Labels, spec.Labels) || !slices.Equal(slices.Sorted(slices.Values(mr.Reviewers)), []string{"qa-lead", "release-manager"}) {
		t.Fatalf("labels %v reviewers %v", mr.Labels, mr.Reviewers)
	}
	if again, err := p.EnsurePullRequest(ctx, spec); err != nil || again.Number != 1 || len(f.mrs[glProject]) != 1 {
		t.Fatalf("second Ensure = %+v, %v (%d merge requests)", again, err, len(f.mrs[glProject]))
	}
	f.merge(glProject, 1, "release-manager", strings.Repeat("c", 40), "")
	got, err := p.GetPullRequest(ctx, glProject, 1)
	if err != nil || !got.Approved() || got.MergeCommitSHA != strings.Repeat("c", 40) || got.MergedBy != "release-manager" {
		t.Fatalf("merged merge request reads as %+v, %v", got, err)
	}
}

// With fast-forward merges GitLab reports no merge_commit_sha: the squash commit, else the head,
// is what reached the target branch.
func TestGitLabMergeCommitFallbacks(t *testing.T) {
	f := newFakeGitLab(t)
	p := f.provider(t, f.token)
	ctx := context.Background()
	a, _ := p.EnsurePullRequest(ctx, specFor(t, glProject, digestA))
	b, _ := p.EnsurePullRequest(ctx, specFor(t, glProject, digestB))
	f.merge(glProject, a.Number, "qa-lead", "", strings.Repeat("d", 40))
	f.merge(glProject, b.Number, "qa-lead", "", "")
	if got, _ := p.GetPullRequest(ctx, glProject, a.Number); got.MergeCommitSHA != strings.Repeat("d", 40) {
		t.Fatalf("squash merge commit = %q", got.MergeCommitSHA)
	}
	if got, _ := p.GetPullRequest(ctx, glProject, b.Number); got.MergeCommitSHA != b.HeadSHA || got.MergedBy != "qa-lead" {
		t.Fatalf("fast-forward merge reads as %+v (head %s)", got, b.HeadSHA)
	}
}

func TestGitLabRejectSupersedeAndConflict(t *testing.T) {
	f := newFakeGitLab(t)
	p := f.provider(t, f.token)
	ctx := context.Background()
	old, err := p.EnsurePullRequest(ctx, specFor(t, glProject, digestA))
	if err != nil {
		t.Fatal(err)
	}
	// The forge's 409 for a duplicate is recognised.
	if _, err := p.(*provider).b.create(ctx, glProject, "main", old.HeadBranch, "t", "b"); !errors.Is(err, errExists) {
		t.Fatalf("duplicate create = %v, want errExists", err)
	}
	newer, err := p.EnsurePullRequest(ctx, specFor(t, glProject, digestB))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ClosePullRequest(ctx, glProject, old.Number, SupersedeComment(newer, digestB)); err != nil {
		t.Fatal(err)
	}
	got, _ := p.GetPullRequest(ctx, glProject, old.Number)
	if !got.Rejected() || len(f.noteBodies(old.Number)) != 1 || !strings.Contains(f.noteBodies(old.Number)[0], "Superseded by #2") {
		t.Fatalf("superseded merge request %+v, notes %q", got, f.noteBodies(old.Number))
	}
	f.closeUnmerged(glProject, newer.Number)
	found, err := p.FindPullRequest(ctx, glProject, "main", newer.HeadBranch)
	if err != nil || found == nil || !found.Rejected() {
		t.Fatalf("rejected merge request reads as %+v, %v", found, err)
	}
	// Ensure on a rejected digest keeps it rejected rather than opening another.
	again, err := p.EnsurePullRequest(ctx, specFor(t, glProject, digestB))
	if err != nil || !again.Rejected() || len(f.mrs[glProject]) != 2 {
		t.Fatalf("Ensure after rejection = %+v, %v", again, err)
	}
}

func TestGitLabBadInput(t *testing.T) {
	f := newFakeGitLab(t)
	ctx := context.Background()
	spec := specFor(t, glProject, digestA)
	if _, err := f.provider(t, "glpat-wrong").EnsurePullRequest(ctx, spec); !errors.Is(err, ErrUnauthorized) || strings.Contains(err.Error(), "glpat-wrong") {
		t.Fatalf("wrong token: %v", err)
	}
	p := f.provider(t, f.token)
	bad := spec
	bad.TitleTemplate = "{{.Nope}}"
	if _, err := p.EnsurePullRequest(ctx, bad); err == nil {
		t.Fatal("broken template accepted")
	}
	bad = spec
	bad.Head = "ferry/a b"
	if _, err := p.EnsurePullRequest(ctx, bad); err == nil {
		t.Fatal("invalid branch accepted")
	}
	if f.posts != 0 || len(f.mrs) != 0 {
		t.Fatalf("bad input reached the forge: %d POSTs", f.posts)
	}
	if _, err := p.GetPullRequest(ctx, "shop/other", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing project: %v", err)
	}
	spec.Reviewers = []string{"nobody"}
	if _, err := p.EnsurePullRequest(ctx, spec); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nobody"`) {
		t.Fatalf("unknown reviewer: %v", err)
	}
}

// A settled merge request costs one request per Ensure: the list carries everything needed.
func TestGitLabEnsureCost(t *testing.T) {
	f := newFakeGitLab(t)
	p := f.provider(t, f.token)
	spec := specFor(t, glProject, digestA)
	if _, err := p.EnsurePullRequest(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	before := f.calls
	if _, err := p.EnsurePullRequest(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if n := f.calls - before; n != 1 {
		t.Fatalf("Ensure of a settled merge request made %d requests, want 1", n)
	}
}
