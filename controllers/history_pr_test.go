package controllers

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/scm"
)

// TestMergedPullRequestStaysInHistory: once the digest a pull request approved is promoted, the stage's pull
// request status is cleared, and its history entry still links to the pull request and names who merged it.
func TestMergedPullRequestStaysInHistory(t *testing.T) {
	forge := &fakeForge{prs: map[string]*scm.PullRequest{}}
	f := newStagesFixtureWith(t, func(e *Engines) {
		e.NewSCM = func(scm.Config) (scm.Provider, error) { return forge, nil }
	})
	ctx := context.Background()
	token := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "forge", Namespace: f.ns}, Data: map[string][]byte{"token": []byte("t")}}
	if err := f.e.Client.Create(ctx, token); err != nil {
		t.Fatal(err)
	}
	p := f.promotion()
	p.Spec.Stages = p.Spec.Stages[:1]
	p.Spec.Stages[0].Approval = ferryv1.ApprovalSpec{Mode: ferryv1.ApprovalPullRequest, PullRequest: &ferryv1.PullRequestApproval{
		Provider: ferryv1.ProviderGitea, APIURL: "http://127.0.0.1:1", TokenSecretRef: ferryv1.SecretKeyReference{Name: "forge"}}}
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	if err := f.e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	var open ferryv1.PullRequestStatus
	eventually(t, "the approval pull request", func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		if len(got.Status.Stages) == 0 {
			return false, "no status yet"
		}
		st := got.Status.Stages[0]
		if st.PullRequest != nil && st.Phase == ferryv1.PhaseAwaitingApproval {
			open = *st.PullRequest
		}
		return open.URL != "", got.Status.Summary
	})
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
