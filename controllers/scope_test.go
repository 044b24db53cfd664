package controllers

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

func TestYieldAfterWorkOnlyAfterProgressAndTheBudget(t *testing.T) {
	for _, c := range []struct {
		name    string
		moves   int
		elapsed time.Duration
		yield   bool
	}{
		{"nothing moved yet, however long the reads took", 0, 10 * workBudget, false},
		{"moved, within the budget", 2, workBudget / 3, false},
		{"moved, budget used up", 1, workBudget + time.Millisecond, true},
	} {
		s := &scope{moves: c.moves, started: time.Now().Add(-c.elapsed)}
		if got := s.yieldAfterWork(); got != c.yield {
			t.Errorf("%s: yield = %v, want %v", c.name, got, c.yield)
		}
		if want := map[bool]time.Duration{true: yieldDelay}[c.yield]; s.wait != want {
			t.Errorf("%s: asked to come back after %s, want %s", c.name, s.wait, want)
		}
	}
}

func TestForgetDropsWhatADeletedPromotionLeftBehind(t *testing.T) {
	r := &PromotionReconciler{}
	gone := types.NamespacedName{Namespace: "shop", Name: "web"}
	kept := types.NamespacedName{Namespace: "shop", Name: "web-2"}
	for _, k := range []types.NamespacedName{gone, kept} {
		r.discovered.Store(k, time.Now())
		r.pushed.Store(k, struct{}{})
		r.owners.Store(k.Namespace+"."+k.Name+".dev", k)
		r.seen.Store(k.Namespace+"/"+k.Name+"/uid-1", struct{}{})
	}
	r.forget(gone)
	for name, m := range map[string]*sync.Map{"discovered": &r.discovered, "pushed": &r.pushed, "owners": &r.owners, "seen": &r.seen} {
		n := 0
		m.Range(func(k, v any) bool {
			n++
			if k == gone || v == gone || k == "shop/web/uid-1" {
				t.Errorf("%s still holds %v", name, k)
			}
			return true
		})
		if n != 1 {
			t.Errorf("%s holds %d entries, want the other Promotion's only", name, n)
		}
	}
}

// TestDoorGates: each gate of a stage's door blocks with its own reason, in order, and the door opens only when
// none does.
func TestDoorGates(t *testing.T) {
	const d1, d2 = "sha256:" + "1111111111111111111111111111111111111111111111111111111111111111",
		"sha256:" + "2222222222222222222222222222222222222222222222222222222222222222"
	p := &ferryv1.Promotion{Spec: ferryv1.PromotionSpec{Stages: []ferryv1.StageSpec{{Name: "dev"}, {Name: "prod"}}},
		Status: ferryv1.PromotionStatus{
			Candidate: &ferryv1.CandidateStatus{Digest: d2, Verified: true},
			Stages:    []ferryv1.StageStatus{{Name: "dev", Phase: ferryv1.PhaseSoaking, Digest: d2}, {Name: "prod", Digest: d1}}}}
	s := &scope{p: p}
	cases := []struct {
		name, want string
		change     func()
	}{
		{"previous stage still soaking", "waiting for stage dev", func() {}},
		{"failed here before", "was Failed in this stage", func() {
			p.Status.Stages[0].Phase = ferryv1.PhasePromoted
			p.Status.Stages[1].History = []ferryv1.StageHistoryEntry{{Digest: d2, Outcome: ferryv1.OutcomeFailed}}
		}},
		{"rolled back and held", "was rolled back", func() {
			p.Status.Stages[1].History = []ferryv1.StageHistoryEntry{{Digest: d2, Outcome: ferryv1.OutcomeRolledBack}}
			p.Status.Stages[1].Hold = &ferryv1.HoldStatus{Digest: d1}
		}},
		{"hold cleared", "", func() { p.Status.Stages[1].Hold = nil }},
	}
	for _, tc := range cases {
		tc.change()
		digest, blocked := s.door(1)
		if !strings.Contains(blocked, tc.want) || (tc.want == "") != (digest == d2) {
			t.Errorf("%s: door = %q, blocked %q; want blocked containing %q", tc.name, digest, blocked, tc.want)
		}
	}
	if digest, blocked := s.door(0); digest != d2 || blocked != "" {
		t.Errorf("dev's door = %q, %q; want the verified candidate", digest, blocked)
	}
	p.Status.Candidate.Verified = false
	if digest, _ := s.door(0); digest != "" {
		t.Errorf("dev's door offers an unverified candidate %s", digest)
	}
}

// TestPassedRunIsTrimmedAtPromotion: a passed analysis keeps only its newest readings once promoted; a failed one
// keeps them all.
func TestPassedRunIsTrimmedAtPromotion(t *testing.T) {
	run := func(phase ferryv1.AnalysisPhase) *ferryv1.AnalysisStatus {
		a := &ferryv1.AnalysisStatus{Phase: phase, Tallies: []ferryv1.MetricTally{{Metric: "m", Passed: 100}}}
		for n := 0; n < 100; n++ {
			a.Measurements = append(a.Measurements, ferryv1.Measurement{Metric: "m", Value: fmt.Sprint(n)})
		}
		return a
	}
	passed, failed := run(ferryv1.AnalysisPassed), run(ferryv1.AnalysisFailed)
	trimPassedRun(passed)
	trimPassedRun(failed)
	if len(passed.Measurements) != keptAfterPromotion || passed.Measurements[keptAfterPromotion-1].Value != "99" || passed.Tallies != nil {
		t.Errorf("passed run kept %d readings, the last %+v", len(passed.Measurements), passed.Measurements[len(passed.Measurements)-1])
	}
	if len(failed.Measurements) != 100 {
		t.Errorf("failed run kept %d readings, want all 100", len(failed.Measurements))
	}
}

// TestPullRequestBranchesAreTenantsOwn: two tenants' Promotions of the same name open pull requests from different
// branches, and a long namespace and name still make a valid branch.
func TestPullRequestBranchesAreTenantsOwn(t *testing.T) {
	digest := "sha256:" + strings.Repeat("c", 64)
	promotion := func(ns, name string) *ferryv1.Promotion {
		return &ferryv1.Promotion{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	a, errA := pullRequestBranch(promotion("team-a", "shop"), "prod", digest)
	b, errB := pullRequestBranch(promotion("team-b", "shop"), "prod", digest)
	if errA != nil || errB != nil || a == b {
		t.Fatalf("branches %q (%v) and %q (%v), want two valid, different names", a, errA, b, errB)
	}
	long, err := pullRequestBranch(promotion(strings.Repeat("n", 63), strings.Repeat("p", 200)), "prod", digest)
	if err != nil {
		t.Fatalf("long names: %v", err)
	}
	other, _ := pullRequestBranch(promotion(strings.Repeat("n", 63), strings.Repeat("p", 199)+"q"), "prod", digest)
	if long == other {
		t.Errorf("two long names cut to the same branch %q", long)
	}
}
