package scm

import (
	"context"
	"strings"
	"testing"

	"code.gitea.io/sdk/gitea"
)

// TestGiteaShowsEvidence on a real Gitea: the pull request's description states the evidence (and is rewritten
// when it changes), Ferry keeps exactly one comment however often it reports, a person's comment quoting the
// marker is left alone, and the commit status reads back with the state Ferry set.
func TestGiteaShowsEvidence(t *testing.T) {
	w := newGiteaWorld(t)
	ctx := context.Background()
	spec := w.pushed(t, digestA)
	spec.Change.Evidence = testEvidence()
	pr, err := w.ferry.EnsurePullRequest(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	owner := w.as(t, w.owner)
	raw, _, err := owner.GetPullRequest(w.repo.Owner, w.repo.Name, int64(pr.Number))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range evidenceShown {
		if !strings.Contains(raw.Body, want) {
			t.Errorf("description lacks %q:\n%s", want, raw.Body)
		}
	}
	if pr.Author != w.bot.Name {
		t.Fatalf("pull request author %q, want Ferry's bot %q", pr.Author, w.bot.Name)
	}

	// New evidence (another attestation found) rewrites the description of the open pull request.
	spec.Change.Evidence.Attestations = append(spec.Change.Evidence.Attestations,
		AttestationEvidence{PredicateType: "https://cyclonedx.org/bom", SBOMFormat: "CycloneDX 1.5", Packages: 7})
	if _, err := w.ferry.EnsurePullRequest(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if raw, _, _ = owner.GetPullRequest(w.repo.Owner, w.repo.Name, int64(pr.Number)); !strings.Contains(raw.Body, "SBOM `CycloneDX 1.5` listing 7 packages") {
		t.Fatalf("description not updated:\n%s", raw.Body)
	}

	// A person quotes the marker; Ferry reports three times: one comment of Ferry's, edited in place.
	approver := w.as(t, w.approver)
	quote := "Is this right?\n" + EvidenceMarker
	if _, _, err := approver.CreateIssueComment(w.repo.Owner, w.repo.Name, int64(pr.Number), gitea.CreateIssueCommentOption{Body: quote}); err != nil {
		t.Fatal(err)
	}
	rep := w.ferry.(Reporter)
	for _, state := range []CommitState{CommitPending, CommitSuccess, CommitSuccess, CommitFailure} {
		text := RenderComment(spec.Change, CommitStatus{State: state, Description: "state " + string(state)})
		if err := rep.UpsertComment(ctx, w.repo.FullName(), pr.Number, EvidenceMarker, text); err != nil {
			t.Fatal(err)
		}
	}
	comments, _, err := owner.ListIssueComments(w.repo.Owner, w.repo.Name, int64(pr.Number), gitea.ListIssueCommentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ferrys []*gitea.Comment
	for _, c := range comments {
		if c.Poster.UserName == w.bot.Name {
			ferrys = append(ferrys, c)
		} else if c.Body != quote {
			t.Errorf("a person's comment was changed to %q", c.Body)
		}
	}
	if len(comments) != 2 || len(ferrys) != 1 || !strings.Contains(ferrys[0].Body, "**Ferry: failure** — state failure") ||
		!strings.Contains(ferrys[0].Body, "SBOM `SPDX-2.3` listing 42 packages") {
		t.Fatalf("%d comments, Ferry's: %+v", len(comments), ferrys)
	}

	// The commit status on the head: pending, then success; setting it again is harmless.
	status := func(state CommitState) CommitStatus {
		return CommitStatus{State: state, Context: "ferry/prod", Description: "verified: 1 signer, attestations slsa, spdx", TargetURL: pr.URL}
	}
	for _, state := range []CommitState{CommitPending, CommitSuccess, CommitSuccess} {
		if err := rep.SetCommitStatus(ctx, w.repo.FullName(), pr.HeadSHA, status(state)); err != nil {
			t.Fatal(err)
		}
	}
	combined, _, err := owner.GetCombinedStatus(w.repo.Owner, w.repo.Name, pr.HeadSHA)
	if err != nil {
		t.Fatal(err)
	}
	if len(combined.Statuses) != 1 || combined.Statuses[0].Context != "ferry/prod" || combined.Statuses[0].State != gitea.StatusSuccess ||
		combined.Statuses[0].TargetURL != pr.URL || combined.Statuses[0].Description != status(CommitSuccess).Description {
		t.Fatalf("combined status of %s: %+v", pr.HeadSHA, combined.Statuses)
	}
	if err := rep.SetCommitStatus(ctx, w.repo.FullName(), pr.HeadSHA, status(CommitFailure)); err != nil {
		t.Fatal(err)
	}
	if combined, _, _ = owner.GetCombinedStatus(w.repo.Owner, w.repo.Name, pr.HeadSHA); combined.State != gitea.StatusFailure {
		t.Fatalf("combined state after failure: %s", combined.State)
	}
}
