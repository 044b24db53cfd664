package scm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The fake GitHub's comment and status endpoints (see fakeGitHub).

func commentJSON(c *ghComment) map[string]any {
	return map[string]any{"id": c.ID, "node_id": fmt.Sprintf("IC_%d", c.ID), "body": c.Body,
		"user": map[string]any{"login": c.User, "id": 7, "type": "User"}, "author_association": "COLLABORATOR"}
}

// listComments answers GET /issues/{n}/comments: ascending id, per_page (default 30, at most 100) and page,
// with a Link header naming the next page.
func (f *fakeGitHub) listComments(w http.ResponseWriter, r *http.Request, n int) {
	perPage, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if perPage <= 0 {
		perPage = 30
	}
	perPage = min(perPage, 100)
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	all := f.comments[n]
	from, to := min((page-1)*perPage, len(all)), min(page*perPage, len(all))
	out := []any{}
	for _, c := range all[from:to] {
		out = append(out, commentJSON(c))
	}
	if to < len(all) {
		next := *r.URL
		q := next.Query()
		q.Set("page", strconv.Itoa(page+1))
		next.RawQuery = q.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<%s%s>; rel="next"`, f.srv.URL, next.RequestURI()))
	}
	writeJSON(w, 200, out)
}

// editComment answers PATCH /issues/comments/{id} {"body": …}; only the comment's author may edit it.
func (f *fakeGitHub) editComment(w http.ResponseWriter, r *http.Request, rawID string) {
	id, _ := strconv.ParseInt(rawID, 10, 64)
	var in struct {
		Body *string `json:"body"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Body == nil {
		writeJSON(w, 422, map[string]any{"message": "Invalid request.\n\n\"body\" wasn't supplied."})
		return
	}
	for _, list := range f.comments {
		for _, c := range list {
			if c.ID != id {
				continue
			}
			if c.User != "ferry-bot" {
				writeJSON(w, 403, map[string]any{"message": "Must have admin rights to Repository."})
				return
			}
			c.Body = *in.Body
			writeJSON(w, 200, commentJSON(c))
			return
		}
	}
	f.notFound(w)
}

// createStatus answers POST /statuses/{sha}: state one of error, failure, pending, success; context defaults to
// "default"; a commit that is no pull request's head is unknown (422 "No commit found for SHA").
func (f *fakeGitHub) createStatus(w http.ResponseWriter, r *http.Request, repo, sha string) {
	var in map[string]any
	_ = json.NewDecoder(r.Body).Decode(&in)
	known := false
	for _, pr := range f.pulls[repo] {
		known = known || pr.HeadSHA == sha
	}
	if !known {
		writeJSON(w, 422, map[string]any{"message": "No commit found for SHA: " + sha})
		return
	}
	state, _ := in["state"].(string)
	if !slices.Contains([]string{"error", "failure", "pending", "success"}, state) {
		writeJSON(w, 422, map[string]any{"message": "Validation Failed", "errors": []any{map[string]any{"resource": "Status", "field": "state", "code": "custom",
			"message": "state is not included in the list"}}})
		return
	}
	if d, _ := in["description"].(string); len([]rune(d)) > 140 {
		writeJSON(w, 422, map[string]any{"message": "Validation Failed", "errors": []any{map[string]any{"resource": "Status", "code": "custom",
			"field": "description", "message": "description is too long (maximum is 140 characters)"}}})
		return
	}
	if in["context"] == nil {
		in["context"] = "default"
	}
	in["id"] = len(f.statuses[sha]) + 1
	in["creator"] = map[string]any{"login": "ferry-bot"}
	f.statuses[sha] = append(f.statuses[sha], in)
	writeJSON(w, 201, in)
}

// latestStatus is what GitHub shows for context on sha: the newest status with it.
func (f *fakeGitHub) latestStatus(sha, context string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := f.statuses[sha]
	for i := len(list) - 1; i >= 0; i-- {
		if list[i]["context"] == context {
			return list[i]
		}
	}
	return nil
}

func TestGitHubShowsEvidence(t *testing.T) {
	f := newFakeGitHub(t)
	p := f.provider(t, f.token)
	ctx := context.Background()
	spec := specFor(t, "shop/web", digestA)
	spec.Change.Evidence = testEvidence()
	pr, err := p.EnsurePullRequest(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range evidenceShown {
		if !strings.Contains(f.pulls["shop/web"][0].Body, want) {
			t.Errorf("description lacks %q", want)
		}
	}
	// Changed evidence rewrites the description; unchanged evidence costs no write.
	spec.Change.Evidence.Signers = append(spec.Change.Evidence.Signers, "ci@example.test (issuer https://issuer.example.test)")
	if _, err := p.EnsurePullRequest(ctx, spec); err != nil || !strings.Contains(f.pulls["shop/web"][0].Body, "signed by `ci@example.test") {
		t.Fatalf("description not rewritten (%v):\n%s", err, f.pulls["shop/web"][0].Body)
	}
	before := f.calls
	if _, err := p.EnsurePullRequest(ctx, spec); err != nil || f.calls-before != 2 {
		t.Fatalf("Ensure with unchanged evidence made %d requests (%v), want 2", f.calls-before, err)
	}

	// 120 comments by people (over a page), one of them quoting the marker, then Ferry reports three times.
	f.mu.Lock()
	for i := range 120 {
		f.lastID++
		body := fmt.Sprintf("comment %d", i)
		if i == 3 {
			body = "quoting " + EvidenceMarker
		}
		f.comments[pr.Number] = append(f.comments[pr.Number], &ghComment{ID: f.lastID, User: "release-manager", Body: body})
	}
	f.mu.Unlock()
	rep := p.(Reporter)
	for _, state := range []CommitState{CommitPending, CommitSuccess, CommitFailure} {
		if err := rep.UpsertComment(ctx, "shop/web", pr.Number, EvidenceMarker, RenderComment(spec.Change, CommitStatus{State: state, Description: string(state)})); err != nil {
			t.Fatal(err)
		}
	}
	bodies := f.commentBodies(pr.Number)
	ferrys := slices.DeleteFunc(slices.Clone(bodies), func(b string) bool { return !strings.HasPrefix(b, EvidenceMarker) })
	if len(bodies) != 121 || len(ferrys) != 1 || !strings.Contains(ferrys[0], "**Ferry: failure**") || bodies[3] != "quoting "+EvidenceMarker {
		t.Fatalf("%d comments, Ferry's %q", len(bodies), ferrys)
	}
	// The same text again edits nothing.
	before = f.calls
	if err := rep.UpsertComment(ctx, "shop/web", pr.Number, EvidenceMarker, ferrys[0]); err != nil || f.calls-before != 3 {
		t.Fatalf("unchanged comment made %d requests (%v), want 3 reads", f.calls-before, err)
	}

	status := CommitStatus{State: CommitSuccess, Context: "ferry/prod", Description: strings.Repeat("verified ", 30), TargetURL: pr.URL}
	for range 2 {
		if err := rep.SetCommitStatus(ctx, "shop/web", pr.HeadSHA, status); err != nil {
			t.Fatal(err)
		}
	}
	got := f.latestStatus(pr.HeadSHA, "ferry/prod")
	if got == nil || got["state"] != "success" || got["target_url"] != pr.URL || len([]rune(got["description"].(string))) != MaxStatusDescription {
		t.Fatalf("status on %s: %v", pr.HeadSHA, got)
	}
	if err := rep.SetCommitStatus(ctx, "shop/web", strings.Repeat("0", 40), status); err == nil {
		t.Fatal("a status on an unknown commit was reported as set")
	}
}
