package controllers

import (
	"testing"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// TestMergedPullRequestStaysInHistory: once the digest a pull request approved is promoted, the stage's pull
// request status is cleared, and its history entry still links to the pull request and names who merged it.
func TestMergedPullRequestStaysInHistory(t *testing.T) {
	f, forge, p, v1 := startPullRequestApproval(t)
	open := f.awaitPullRequest(t, p.Name, v1)
	merged := f.git.Merge("acme/deploy", "refs/heads/main", "main", open.Branch, "Merge")
	forge.merge(open.Branch, open.HeadSHA, merged, "release-manager")
	annotate(t, f.e.Client, f.ns, p.Name, "test.ferry.dev/poke", "merged")

	got := f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev")
	st := got.Status.Stages[0]
	if st.PullRequest != nil {
		t.Errorf("the pull request status outlived the promotion: %+v", st.PullRequest)
	}
	if len(st.History) == 0 {
		t.Fatal("no history entry for the promoted digest")
	}
	if h := st.History[0]; h.Digest != v1 || h.Outcome != ferryv1.OutcomePromoted || h.PullRequestURL != open.URL || h.Approver != "release-manager" {
		t.Errorf("history entry = %+v; want %s promoted through %s, approved by release-manager", h, v1, open.URL)
	}
}
