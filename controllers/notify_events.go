package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// transition is one change of a Promotion's status that receivers may be told about, with the facts status holds
// about it.
type transition struct {
	event                              ferryv1.NotificationEvent
	stage, digest, previous, commit    string
	pullRequest, approver, requestedBy string
	message                            string
}

// transitions compares a Promotion's status as last written with the status about to be written and returns what
// changed, in the order it happened within each stage. It is a pure function of the two statuses, so the events
// follow what status records — the same steps, the same order, whichever step made the change — and a status that
// is written again unchanged yields nothing.
func transitions(before, after *ferryv1.PromotionStatus) []transition {
	old := make(map[string]*ferryv1.StageStatus, len(before.Stages))
	for i := range before.Stages {
		old[before.Stages[i].Name] = &before.Stages[i]
	}
	var out []transition
	for i := range after.Stages {
		b := old[after.Stages[i].Name]
		if b == nil {
			b = &ferryv1.StageStatus{}
		}
		out = append(out, stageTransitions(b, &after.Stages[i])...)
	}
	if t, ok := stalledTransition(before.Conditions, after.Conditions); ok {
		out = append(out, t)
	}
	return out
}

// stageTransitions are one stage's changes: digests that finished their time in it first (they ended before
// anything else began), then the analysis, then the phase the stage is in now.
func stageTransitions(b, a *ferryv1.StageStatus) []transition {
	var out []transition
	fresh := newHistory(b.History, a.History)
	for k := len(fresh) - 1; k >= 0; k-- { // oldest first
		e := fresh[k]
		if e.Outcome != ferryv1.OutcomePromoted || isRollbackEnd(a, e) {
			continue
		}
		out = append(out, transition{event: ferryv1.EventPromoted, stage: a.Name, digest: e.Digest,
			previous: promotedBefore(a.History, e), commit: e.CommitSHA, pullRequest: e.PullRequestURL,
			approver: e.Approver, message: fmt.Sprintf("%s promoted: %s", e.Digest, e.Reason)})
	}
	out = append(out, analysisTransitions(b, a)...)
	if a.Phase == ferryv1.PhaseRolledBack && (b.Phase != ferryv1.PhaseRolledBack || b.Digest != a.Digest) {
		t := transition{event: ferryv1.EventRolledBack, stage: a.Name, digest: a.Digest, commit: a.LastCommit, message: a.Message}
		if from := lastRolledBack(a.History); from != nil {
			t.previous, t.message = from.Digest, fmt.Sprintf("rolled back from %s to %s: %s", from.Digest, a.Digest, from.Reason)
		}
		if a.Hold != nil {
			t.requestedBy = a.Hold.RequestedBy
		}
		out = append(out, t)
	}
	if a.Phase == ferryv1.PhaseAwaitingApproval && (b.Phase != ferryv1.PhaseAwaitingApproval || b.InFlightDigest != a.InFlightDigest) {
		t := transition{event: ferryv1.EventApprovalNeeded, stage: a.Name, digest: a.InFlightDigest, previous: a.Digest, message: a.Message}
		if pr := a.PullRequest; pr != nil {
			t.pullRequest, t.commit = pr.URL, pr.HeadSHA
		}
		out = append(out, t)
	}
	rollback := a.Phase == ferryv1.PhaseRollingBack || (a.Hold != nil && a.Hold.Digest == a.InFlightDigest)
	if a.InFlightDigest != "" && a.InFlightDigest != b.InFlightDigest && !rollback {
		out = append(out, transition{event: ferryv1.EventPromotionStarted, stage: a.Name, digest: a.InFlightDigest,
			previous: a.Digest, message: fmt.Sprintf("promoting %s from %s", a.InFlightDigest, a.InFlightSource)})
	}
	return out
}

// analysisTransitions: a run that failed (measured, timed out or aborted), and a run that began to wait for a
// person. A run that fails with rollback.onAnalysisFailure false is both, in that order, in two status writes.
func analysisTransitions(b, a *ferryv1.StageStatus) []transition {
	run := a.Analysis
	if run == nil {
		return nil
	}
	was := b.Analysis
	same := was != nil && was.Digest == run.Digest && was.Run == run.Run && was.Phase == run.Phase
	if same || (run.Phase != ferryv1.AnalysisFailed && run.Phase != ferryv1.AnalysisHeld) {
		return nil
	}
	t := transition{stage: a.Name, digest: run.Digest, previous: a.Digest, message: run.Message}
	if t.previous == run.Digest {
		t.previous = ""
	}
	t.event = ferryv1.EventHeld
	if run.Phase == ferryv1.AnalysisFailed {
		t.event, t.requestedBy = ferryv1.EventAnalysisFailed, run.AbortedBy
	}
	return []transition{t}
}

// stalledTransition: the Promotion stalled, or stalled on something else than before.
func stalledTransition(before, after []metav1.Condition) (transition, bool) {
	now := apimeta.FindStatusCondition(after, ferryv1.ConditionStalled)
	if now == nil || now.Status != metav1.ConditionTrue {
		return transition{}, false
	}
	was := apimeta.FindStatusCondition(before, ferryv1.ConditionStalled)
	if was != nil && was.Status == metav1.ConditionTrue && was.Reason == now.Reason && was.Message == now.Message {
		return transition{}, false
	}
	return transition{event: ferryv1.EventStalled, message: now.Reason + ": " + now.Message}, true
}

// newHistory returns the entries at the head of after that before did not have. History grows at its head and is
// cut at its tail, so the new entries are those above before's newest; should that entry be gone, those newer
// than it.
func newHistory(before, after []ferryv1.StageHistoryEntry) []ferryv1.StageHistoryEntry {
	if len(before) == 0 {
		return after
	}
	for k := range after {
		if equality.Semantic.DeepEqual(after[k], before[0]) {
			return after[:k]
		}
	}
	var fresh []ferryv1.StageHistoryEntry
	for _, e := range after {
		if e.Time.After(before[0].Time.Time) {
			fresh = append(fresh, e)
		}
	}
	return fresh
}

// isRollbackEnd reports whether e records the end of a rollback (the older digest healthy again, held there)
// rather than a promotion: an entry for the held digest written after the hold began.
func isRollbackEnd(a *ferryv1.StageStatus, e ferryv1.StageHistoryEntry) bool {
	return a.Hold != nil && a.Hold.Digest == e.Digest && (a.Hold.Since == nil || !e.Time.Before(a.Hold.Since))
}

// promotedBefore is the digest promoted in the stage before e, from the entries after it.
func promotedBefore(history []ferryv1.StageHistoryEntry, e ferryv1.StageHistoryEntry) string {
	seen := false
	for _, h := range history {
		if seen && h.Outcome == ferryv1.OutcomePromoted && h.Digest != e.Digest {
			return h.Digest
		}
		seen = seen || equality.Semantic.DeepEqual(h, e)
	}
	return ""
}

// lastRolledBack is the newest entry of a digest the stage rolled back from.
func lastRolledBack(history []ferryv1.StageHistoryEntry) *ferryv1.StageHistoryEntry {
	for i := range history {
		if history[i].Outcome == ferryv1.OutcomeRolledBack {
			return &history[i]
		}
	}
	return nil
}
