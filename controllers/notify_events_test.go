package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// TestNotificationTransitionsFollowStatus: each change of status yields its event with the facts status holds,
// and a status written again unchanged yields nothing.
func TestNotificationTransitionsFollowStatus(t *testing.T) {
	d1, d2 := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
	t0 := metav1.NewTime(time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Minute))
	promotedD1 := ferryv1.StageHistoryEntry{Digest: d1, Outcome: ferryv1.OutcomePromoted, Time: t0, Approver: "automatic", Reason: "healthy and soaked"}
	running := ferryv1.StageStatus{Name: "prod", Phase: ferryv1.PhasePromoted, Digest: d1, History: []ferryv1.StageHistoryEntry{promotedD1}}
	with := func(f func(s *ferryv1.StageStatus)) ferryv1.StageStatus {
		s := *running.DeepCopy()
		f(&s)
		return s
	}
	stalled := func(msg string) []metav1.Condition {
		return []metav1.Condition{{Type: ferryv1.ConditionStalled, Status: metav1.ConditionTrue, Reason: ReasonSecretNotFound, Message: msg}}
	}
	cases := []struct {
		name          string
		before, after ferryv1.PromotionStatus
		want          []transition
	}{
		{"nothing changed", ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{running}},
			ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{running}}, nil},
		{"a new digest enters", ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{running}},
			ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{with(func(s *ferryv1.StageStatus) {
				s.InFlightDigest, s.InFlightSource, s.Phase = d2, "src@"+d2, ferryv1.PhaseCopying
			})}},
			[]transition{{event: ferryv1.EventPromotionStarted, stage: "prod", digest: d2, previous: d1, message: "promoting " + d2 + " from src@" + d2}}},
		{"a pull request waits", ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{with(func(s *ferryv1.StageStatus) {
			s.InFlightDigest, s.Phase = d2, ferryv1.PhaseWriting
		})}}, ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{with(func(s *ferryv1.StageStatus) {
			s.InFlightDigest, s.Phase, s.Message = d2, ferryv1.PhaseAwaitingApproval, "merge it"
			s.PullRequest = &ferryv1.PullRequestStatus{URL: "https://forge/pr/7", HeadSHA: "abc"}
		})}}, []transition{{event: ferryv1.EventApprovalNeeded, stage: "prod", digest: d2, previous: d1, commit: "abc",
			pullRequest: "https://forge/pr/7", message: "merge it"}}},
		{"a digest is promoted", ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{with(func(s *ferryv1.StageStatus) {
			s.InFlightDigest, s.Phase = d2, ferryv1.PhaseSoaking
		})}}, ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{with(func(s *ferryv1.StageStatus) {
			s.Digest = d2
			s.History = append([]ferryv1.StageHistoryEntry{{Digest: d2, Outcome: ferryv1.OutcomePromoted, Time: t1, CommitSHA: "c2",
				Approver: "alice", PullRequestURL: "https://forge/pr/7", Reason: "healthy and soaked"}}, s.History...)
		})}}, []transition{{event: ferryv1.EventPromoted, stage: "prod", digest: d2, previous: d1, commit: "c2",
			pullRequest: "https://forge/pr/7", approver: "alice", message: d2 + " promoted: healthy and soaked"}}},
		{"a rollback ends: RolledBack, not Promoted", ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{with(func(s *ferryv1.StageStatus) {
			s.InFlightDigest, s.Phase, s.Digest = d1, ferryv1.PhaseRollingBack, d2
			s.Hold = &ferryv1.HoldStatus{Digest: d1, Reason: ReasonHealthFailed, RequestedBy: "ferry", Since: &t1}
			s.History = append([]ferryv1.StageHistoryEntry{{Digest: d2, Outcome: ferryv1.OutcomeRolledBack, Time: t1, Reason: "health failed: boom"}}, s.History...)
		})}}, ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{with(func(s *ferryv1.StageStatus) {
			s.Phase, s.Digest, s.LastCommit = ferryv1.PhaseRolledBack, d1, "c3"
			s.Hold = &ferryv1.HoldStatus{Digest: d1, Reason: ReasonHealthFailed, RequestedBy: "ferry", Since: &t1}
			s.History = append([]ferryv1.StageHistoryEntry{{Digest: d1, Outcome: ferryv1.OutcomePromoted, Time: t1, Reason: "rolled back to this digest"},
				{Digest: d2, Outcome: ferryv1.OutcomeRolledBack, Time: t1, Reason: "health failed: boom"}}, s.History...)
		})}}, []transition{{event: ferryv1.EventRolledBack, stage: "prod", digest: d1, previous: d2, commit: "c3", requestedBy: "ferry",
			message: "rolled back from " + d2 + " to " + d1 + ": health failed: boom"}}},
		{"a rollback starts: no PromotionStarted", ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{with(func(s *ferryv1.StageStatus) { s.Digest = d2 })}},
			ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{with(func(s *ferryv1.StageStatus) {
				s.Digest, s.InFlightDigest, s.Phase = d2, d1, ferryv1.PhaseRollingBack
				s.Hold = &ferryv1.HoldStatus{Digest: d1, RequestedBy: "bob", Since: &t1}
			})}}, nil},
		{"an analysis is aborted", ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{with(func(s *ferryv1.StageStatus) {
			s.InFlightDigest, s.Phase = d2, ferryv1.PhaseCanary
			s.Analysis = &ferryv1.AnalysisStatus{Digest: d2, Run: ferryv1.RunCanary, Phase: ferryv1.AnalysisRunning}
		})}}, ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{with(func(s *ferryv1.StageStatus) {
			s.InFlightDigest, s.Phase = d2, ferryv1.PhaseCanary
			s.Analysis = &ferryv1.AnalysisStatus{Digest: d2, Run: ferryv1.RunCanary, Phase: ferryv1.AnalysisFailed, AbortedBy: "carol", Message: "aborted by carol"}
		})}}, []transition{{event: ferryv1.EventAnalysisFailed, stage: "prod", digest: d2, previous: d1, requestedBy: "carol", message: "aborted by carol"}}},
		{"an analysis waits for a person", ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{with(func(s *ferryv1.StageStatus) {
			s.Analysis = &ferryv1.AnalysisStatus{Digest: d2, Run: ferryv1.RunSoak, Phase: ferryv1.AnalysisFailed}
		})}}, ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{with(func(s *ferryv1.StageStatus) {
			s.Analysis = &ferryv1.AnalysisStatus{Digest: d2, Run: ferryv1.RunSoak, Phase: ferryv1.AnalysisHeld, Message: "no data"}
		})}}, []transition{{event: ferryv1.EventHeld, stage: "prod", digest: d2, previous: d1, message: "no data"}}},
		{"the Promotion stalls", ferryv1.PromotionStatus{}, ferryv1.PromotionStatus{Conditions: stalled("spec.x: missing")},
			[]transition{{event: ferryv1.EventStalled, message: ReasonSecretNotFound + ": spec.x: missing"}}},
		{"it stays stalled on the same thing", ferryv1.PromotionStatus{Conditions: stalled("spec.x: missing")},
			ferryv1.PromotionStatus{Conditions: stalled("spec.x: missing")}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := transitions(&tc.before, &tc.after)
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("transition %d:\n got %+v\nwant %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestReceiversGetTheEventsAndStagesTheyAskFor(t *testing.T) {
	rc := ferryv1.NotificationReceiver{Name: "ci", Events: []ferryv1.NotificationEvent{ferryv1.EventPromoted, ferryv1.EventStalled},
		Stages: []string{"prod"}}
	for _, tc := range []struct {
		t    transition
		want bool
	}{
		{transition{event: ferryv1.EventPromoted, stage: "prod"}, true},
		{transition{event: ferryv1.EventPromoted, stage: "dev"}, false},
		{transition{event: ferryv1.EventPromotionStarted, stage: "prod"}, false},
		{transition{event: ferryv1.EventStalled}, true}, // concerns no stage: the filter does not apply
	} {
		if got := wants(rc, tc.t); got != tc.want {
			t.Errorf("wants(%s in %q) = %v", tc.t.event, tc.t.stage, got)
		}
	}
}

// TestOutboxIsBoundedAndForgetsRemovedReceivers: a full outbox drops its oldest messages and says so in the
// condition; messages owed to a receiver no longer in the spec are dropped.
func TestOutboxIsBoundedAndForgetsRemovedReceivers(t *testing.T) {
	r := &PromotionReconciler{}
	p := &ferryv1.Promotion{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	p.Spec.Notifications = []ferryv1.NotificationReceiver{{Name: "ci", Events: []ferryv1.NotificationEvent{ferryv1.EventPromoted}}}
	for i := range maxOutbox + 3 {
		receiver := "ci"
		if i == maxOutbox+2 {
			receiver = "gone"
		}
		p.Status.Notifications = append(p.Status.Notifications, ferryv1.PendingNotification{ID: fmt.Sprint(i), Receiver: receiver,
			Event: ferryv1.EventPromoted})
	}
	s := &scope{p: p, before: p.DeepCopy()}
	r.boundOutbox(s)
	if n := len(p.Status.Notifications); n != maxOutbox || p.Status.Notifications[0].ID != "3" {
		t.Fatalf("%d messages kept, the oldest %s; want %d from 3", n, p.Status.Notifications[0].ID, maxOutbox)
	}
	c := apimeta.FindStatusCondition(p.Status.Conditions, ConditionNotificationsDelivered)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonOutboxFull || !strings.HasPrefix(c.Message, "receiver ci: 3 undelivered") {
		t.Errorf("condition = %+v", c)
	}
	r.settleNotifications(s)
	for _, n := range p.Status.Notifications {
		if n.Receiver == "gone" {
			t.Fatal("a message to a removed receiver is still owed")
		}
	}
	if n := len(p.Status.Notifications); n != maxOutbox-1 {
		t.Errorf("%d messages owed, want %d", n, maxOutbox-1)
	}
	p.Spec.Notifications = nil
	r.settleNotifications(s)
	if len(p.Status.Notifications) != 0 || apimeta.FindStatusCondition(p.Status.Conditions, ConditionNotificationsDelivered) != nil {
		t.Errorf("without receivers, status still holds %d messages and the condition", len(p.Status.Notifications))
	}
}
