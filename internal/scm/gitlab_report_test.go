package scm

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The fake GitLab's note and commit status endpoints (see fakeGitLab).

func noteJSON(n *glNote, iid int) map[string]any {
	return map[string]any{"id": n.ID, "body": n.Body, "system": n.System, "noteable_iid": iid, "noteable_type": "MergeRequest",
		"author": map[string]any{"id": 10, "username": n.Author, "state": "active"}}
}

// listNotes answers GET .../merge_requests/:iid/notes: order_by created_at (or updated_at), sort desc by
// default, per_page (default 20, at most 100) and page, with X-Next-Page.
func (f *fakeGitLab) listNotes(w http.ResponseWriter, r *http.Request, iid int) {
	q := r.URL.Query()
	notes := slices.Clone(f.notes[iid])
	if q.Get("sort") != "asc" {
		slices.Reverse(notes)
	}
	perPage, _ := strconv.Atoi(q.Get("per_page"))
	if perPage <= 0 {
		perPage = 20
	}
	perPage = min(perPage, 100)
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	from, to := min((page-1)*perPage, len(notes)), min(page*perPage, len(notes))
	out := []any{}
	for _, n := range notes[from:to] {
		out = append(out, noteJSON(n, iid))
	}
	w.Header().Set("X-Page", strconv.Itoa(page))
	w.Header().Set("X-Per-Page", strconv.Itoa(perPage))
	w.Header().Set("X-Total", strconv.Itoa(len(notes)))
	if to < len(notes) {
		w.Header().Set("X-Next-Page", strconv.Itoa(page+1))
	} else {
		w.Header().Set("X-Next-Page", "")
	}
	writeJSON(w, 200, out)
}

// editNote answers PUT .../notes/:id {"body": …}; only its author may edit a note, and system notes not at all.
func (f *fakeGitLab) editNote(w http.ResponseWriter, iid int, rawID string, body map[string]any) {
	id, _ := strconv.Atoi(rawID)
	for _, n := range f.notes[iid] {
		if n.ID != id {
			continue
		}
		if n.System || n.Author != "ferry-bot" {
			writeJSON(w, 403, map[string]any{"message": "403 Forbidden"})
			return
		}
		if b, ok := body["body"].(string); ok {
			n.Body = b
		}
		writeJSON(w, 200, noteJSON(n, iid))
		return
	}
	writeJSON(w, 404, map[string]any{"message": "404 Note Not Found"})
}

// setStatus answers POST /projects/:id/statuses/:sha. The status of a name moves like a job: posting pending
// on a pending one (or running on a running one) is refused with 400, as GitLab does.
func (f *fakeGitLab) setStatus(w http.ResponseWriter, rawProject, sha string, body map[string]any) {
	if project, _ := url.PathUnescape(rawProject); project != glProject {
		writeJSON(w, 404, map[string]any{"message": "404 Project Not Found"})
		return
	}
	state, _ := body["state"].(string)
	if !slices.Contains([]string{"pending", "running", "success", "failed", "canceled", "skipped"}, state) {
		writeJSON(w, 400, map[string]any{"error": "state does not have a valid value"})
		return
	}
	name, _ := body["name"].(string)
	if name == "" {
		name, _ = body["context"].(string)
	}
	if name == "" {
		name = "default"
	}
	if cur := f.latestStatusLocked(sha, name); cur != nil && cur["status"] == state && (state == "pending" || state == "running") {
		event := map[string]string{"pending": "enqueue", "running": "run"}[state]
		writeJSON(w, 400, map[string]any{"message": fmt.Sprintf("Cannot transition status via :%s from :%s (Reason(s): Status cannot transition via \"%s\")", event, state, event)})
		return
	}
	st := map[string]any{"id": len(f.statuses[sha]) + 1, "sha": sha, "status": state, "name": name,
		"target_url": body["target_url"], "description": body["description"], "author": map[string]any{"username": "ferry-bot"}}
	f.statuses[sha] = append(f.statuses[sha], st)
	writeJSON(w, 201, st)
}

func (f *fakeGitLab) latestStatusLocked(sha, name string) map[string]any {
	list := f.statuses[sha]
	for i := len(list) - 1; i >= 0; i-- {
		if list[i]["name"] == name {
			return list[i]
		}
	}
	return nil
}

func TestGitLabShowsEvidence(t *testing.T) {
	f := newFakeGitLab(t)
	p := f.provider(t, f.token)
	ctx := context.Background()
	spec := specFor(t, glProject, digestA)
	spec.Change.Evidence = testEvidence()
	mr, err := p.EnsurePullRequest(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	spec.Change.Evidence.Upstream.Verdict = "Passed (Soak)"
	if _, err := p.EnsurePullRequest(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if d := f.mrs[glProject][0].Description; !strings.Contains(d, "`Passed (Soak)`") || !strings.Contains(d, "SBOM `SPDX-2.3` listing 42 packages") {
		t.Fatalf("description not rewritten:\n%s", d)
	}

	// System notes and a person's notes (more than a page of them), then Ferry reports three times.
	f.mu.Lock()
	for i := range 130 {
		f.lastNote++
		n := &glNote{ID: f.lastNote, Author: "release-manager", Body: fmt.Sprintf("note %d", i)}
		if i%2 == 0 {
			n.Author, n.System, n.Body = "ferry-bot", true, "added 1 commit "+EvidenceMarker
		}
		f.notes[mr.Number] = append(f.notes[mr.Number], n)
	}
	f.mu.Unlock()
	rep := p.(Reporter)
	for _, state := range []CommitState{CommitPending, CommitSuccess, CommitFailure} {
		if err := rep.UpsertComment(ctx, glProject, mr.Number, EvidenceMarker, RenderComment(spec.Change, CommitStatus{State: state, Description: string(state)})); err != nil {
			t.Fatal(err)
		}
	}
	bodies := f.noteBodies(mr.Number)
	ferrys := slices.DeleteFunc(slices.Clone(bodies), func(b string) bool { return !strings.HasPrefix(b, EvidenceMarker) })
	if len(bodies) != 66 || len(ferrys) != 1 || !strings.Contains(ferrys[0], "**Ferry: failure**") {
		t.Fatalf("%d notes by people, Ferry's %q", len(bodies), ferrys)
	}

	// pending twice (GitLab refuses the second: it is already pending), then success twice, then failure.
	for _, state := range []CommitState{CommitPending, CommitPending, CommitSuccess, CommitSuccess, CommitFailure} {
		if err := rep.SetCommitStatus(ctx, glProject, mr.HeadSHA, CommitStatus{State: state, Context: "ferry/prod", Description: "d", TargetURL: mr.URL}); err != nil {
			t.Fatalf("setting %s: %v", state, err)
		}
	}
	f.mu.Lock()
	got := f.latestStatusLocked(mr.HeadSHA, "ferry/prod")
	f.mu.Unlock()
	if got == nil || got["status"] != "failed" || got["target_url"] != mr.URL {
		t.Fatalf("status on %s: %v", mr.HeadSHA, got)
	}
	// Any other refusal is still an error.
	if err := rep.SetCommitStatus(ctx, "shop/platform/other", mr.HeadSHA, CommitStatus{State: CommitPending, Context: "ferry/prod"}); err == nil {
		t.Fatal("a status on a missing project was reported as set")
	}
}
