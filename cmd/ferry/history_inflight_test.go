package main

import (
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
	"github.com/ferrycd/ferry/internal/testenv"
)

// TestHistoryShowsTheDigestInFlight: prod runs nothing yet but soaks the digest a release manager approved; `ferry
// history --stage prod` shows it first — phase, since, approver, pull request and source — instead of "no history".
func TestHistoryShowsTheDigestInFlight(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	since := at(9)
	const pr = "http://127.0.0.1:3000/acme/shop-deploy/pulls/9"
	stages := fixtureStages()
	stages[2] = ferryv1.StageStatus{Name: "prod", Phase: ferryv1.PhaseSoaking, Since: &since, InFlightDigest: digestC,
		InFlightSince: &since, InFlightSource: "127.0.0.1:5002/staging/shop@" + digestC,
		PullRequest: &ferryv1.PullRequestStatus{Number: 9, URL: pr, Digest: digestC, Approver: "carol"}}
	stages[1].InFlightDigest, stages[1].InFlightSince, stages[1].Phase = "", nil, ferryv1.PhasePromoted // staging: automatic, nothing in flight
	createPromotion(t, e, ns, "shop", stages)

	out, err := runFerry(t, "history", "shop", "--stage", "prod", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry history: %v\n%s", err, out)
	}
	if strings.Contains(out, "no history") {
		t.Errorf("a stage soaking an approved digest said it has no history:\n%s", out)
	}
	want := []string{"prod", "2026-03-01T21:00:00Z", promotionctl.ShortDigest(digestC), "in-flight:Soaking", "-", "carol", "-", pr,
		"from", "127.0.0.1:5002/staging/shop@" + digestC}
	rows := tableRows(out)
	if len(rows) != 1 || strings.Join(rows[0], " ") != strings.Join(want, " ") {
		t.Fatalf("rows:\n got %q\nwant %q\n%s", rows, want, out)
	}

	out, err = runFerry(t, "history", "shop", "--stage", "prod", "-o", "json", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var got historyOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	f := got.Stages[0].InFlight
	if f == nil || f.Digest != digestC || f.Phase != ferryv1.PhaseSoaking || f.Approver != "carol" || f.PullRequestURL != pr ||
		!f.Since.Equal(&metav1.Time{Time: since.Time}) {
		t.Errorf("in flight = %+v", f)
	}
}

func TestInFlightApprover(t *testing.T) {
	p := &ferryv1.Promotion{Status: ferryv1.PromotionStatus{Candidate: &ferryv1.CandidateStatus{Digest: digestC, Verified: true, Signers: []string{"release-team"}}}}
	for _, tc := range []struct {
		name string
		pr   *ferryv1.PullRequestStatus
		want string
	}{
		{"automatic stage", nil, "automatic"},
		{"pull request open", &ferryv1.PullRequestStatus{Digest: digestC, URL: "u"}, "pending"},
		{"pull request merged", &ferryv1.PullRequestStatus{Digest: digestC, URL: "u", Approver: "carol"}, "carol"},
	} {
		f := inFlightOf(p, ferryv1.StageStatus{Name: "prod", InFlightDigest: digestC, PullRequest: tc.pr})
		if f.Approver != tc.want || len(f.Signers) != 1 {
			t.Errorf("%s: approver %q signers %v, want %q and the candidate's signers", tc.name, f.Approver, f.Signers, tc.want)
		}
	}
	if inFlightOf(p, ferryv1.StageStatus{Name: "prod", Digest: digestC}) != nil {
		t.Error("a stage with nothing in flight has an in-flight row")
	}
}
