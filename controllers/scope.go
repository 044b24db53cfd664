package controllers

import (
	"fmt"
	"math/rand/v2"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// scope is what one reconcile of one Promotion works with: the object, the engine inputs built from its
// references, the clock, and the shortest wait any step asked for.
type scope struct {
	p *ferryv1.Promotion
	// before is the Promotion as last written, for status patches.
	before *ferryv1.Promotion
	refs   referenceData
	in     *engineInputs
	now    metav1.Time
	// wait is the shortest time any step asked to be looked at again; waiting is a WaitingError of a step.
	wait    time.Duration
	waiting error
	// drift lists, per settled stage, workloads that do not run the digest Git declares.
	drift []string
	// started is when the reconcile began (wall clock, whatever now says); moves counts the phase changes it
	// made. Together they bound the work of one reconcile (see yieldAfterWork).
	started time.Time
	moves   int
	// yielded says the work budget ran out: the remaining stages wait for the next reconcile.
	yielded bool
}

// workBudget is how long one reconcile keeps moving stages before it hands its worker to the next Promotion and
// comes back at once: one Promotion promoting three stages in a row (copy, push, sync each) would otherwise hold
// a worker for seconds while others wait.
const workBudget = 300 * time.Millisecond

// yieldDelay is how soon a reconcile that used up its work budget comes back.
const yieldDelay = 10 * time.Millisecond

// yieldAfterWork reports whether this reconcile has moved stages for longer than its budget, and if so asks to
// be reconciled again shortly. A reconcile that has moved nothing never yields, so slow reads cannot make it
// spin without progress.
func (s *scope) yieldAfterWork() bool {
	if s.moves == 0 || time.Since(s.started) < workBudget {
		return false
	}
	s.waitAtMost(yieldDelay)
	return true
}

// waitAtMost asks for the next reconcile no later than d from now.
func (s *scope) waitAtMost(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	if s.wait == 0 || d < s.wait {
		s.wait = d
	}
}

// requeueAfter is the jittered delay before the next reconcile: the shortest wait a step asked for, else the
// polling interval. Jitter spreads many Promotions' polls so they don't hit registries together.
func (s *scope) requeueAfter() time.Duration {
	d := s.wait
	if d == 0 {
		d = s.pollInterval()
	}
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

// pollInterval is how often the source is asked for new digests without a push notification.
func (s *scope) pollInterval() time.Duration {
	if s.p.Spec.Interval != nil && s.p.Spec.Interval.Duration > 0 {
		return s.p.Spec.Interval.Duration
	}
	return 5 * time.Minute
}

// stage returns the status entry of stage i (status is kept in spec order by syncStageStatuses).
func (s *scope) stage(i int) *ferryv1.StageStatus { return &s.p.Status.Stages[i] }

// promotionID names the Promotion in Git trailers, branch names and metrics labels.
func (s *scope) promotionID() string { return s.p.Namespace + "/" + s.p.Name }

// setPhase moves a stage to a phase with a message a person can act on.
func (s *scope) setPhase(i int, phase ferryv1.StagePhase, format string, args ...any) {
	st := s.stage(i)
	if st.Phase != phase {
		st.Since = &s.now
	}
	st.Phase = phase
	st.Message = fmt.Sprintf(format, args...)
}

// record puts an entry at the head of the stage's history, keeping spec.historyLimit entries. The pull request
// that approved (or rejected) the entry's digest is kept with it: once the digest's time in the stage ends, the
// stage's pull request status is cleared and the history is the only place that still links to it.
func (s *scope) record(i int, e ferryv1.StageHistoryEntry) {
	st := s.stage(i)
	e.Time = s.now
	if pr := st.PullRequest; e.PullRequestURL == "" && pr != nil && pr.Digest == e.Digest {
		e.PullRequestURL = pr.URL
	}
	limit := 10
	if s.p.Spec.HistoryLimit != nil {
		limit = int(*s.p.Spec.HistoryLimit)
	}
	st.History = append([]ferryv1.StageHistoryEntry{e}, st.History...)
	if len(st.History) > limit {
		st.History = st.History[:limit]
	}
}

// sourceOf says where stage i takes digest from: the source repository for the first stage, the previous
// stage's registry after that. The same digest moves; nothing is rebuilt.
func (s *scope) sourceOf(i int, digest string) string {
	if i == 0 {
		return s.p.Spec.Source.Image + "@" + digest
	}
	return s.p.Spec.Stages[i-1].Registry.Repository + "@" + digest
}

// A gate is one thing a stage's door checks before the stage takes a digest: it returns why it blocks, or "".
type gate func(s *scope, i int, digest string) string

// stageGates are checked in order for the digest offered to a stage (see door).
var stageGates = []gate{passedUpstream, notFailedHere, notHeldOff}

// door is the digest stage i may take now, or "" with the reason the first gate that blocks gives. The offer is
// the verified candidate for the first stage, the previous stage's digest after that.
func (s *scope) door(i int) (digest, blocked string) {
	digest = s.offered(i)
	if digest == "" {
		return "", ""
	}
	for _, g := range stageGates {
		if why := g(s, i, digest); why != "" {
			return "", why
		}
	}
	return digest, ""
}

// offered is the digest stage i is offered: the verified candidate, or what the previous stage runs.
func (s *scope) offered(i int) string {
	if i == 0 {
		if c := s.p.Status.Candidate; c != nil && c.Verified {
			return c.Digest
		}
		return ""
	}
	return s.stage(i - 1).Digest
}

// passedUpstream: a later stage takes a digest only once the previous stage promoted it — healthy, its canary and
// analysis passed, soaked. A first stage takes the verified candidate.
func passedUpstream(s *scope, i int, digest string) string {
	if i == 0 {
		return ""
	}
	prev := s.stage(i - 1)
	if prev.Phase != ferryv1.PhasePromoted || prev.Digest != digest {
		return fmt.Sprintf("waiting for stage %s to promote %s (%s)", prev.Name, digest, prev.Phase)
	}
	return ""
}

// notFailedHere: a digest that failed or was rejected in this stage needs a newer one to replace it.
func notFailedHere(s *scope, i int, digest string) string {
	for _, h := range s.stage(i).History {
		if h.Digest == digest && (h.Outcome == ferryv1.OutcomeFailed || h.Outcome == ferryv1.OutcomeRejected) {
			return fmt.Sprintf("%s was %s in this stage; a newer digest is needed", digest, h.Outcome)
		}
	}
	return ""
}

// notHeldOff: a digest the stage was rolled back from stays out while the stage is held.
func notHeldOff(s *scope, i int, digest string) string {
	st := s.stage(i)
	if st.Hold == nil {
		return ""
	}
	for _, h := range st.History {
		if h.Digest == digest && h.Outcome == ferryv1.OutcomeRolledBack {
			return fmt.Sprintf("%s was rolled back; the stage is held on %s until a newer digest arrives or %s is set",
				digest, st.Hold.Digest, ferryv1.ClearHoldAnnotation)
		}
	}
	return ""
}

// waitFor records, unless a step already did, that the Promotion waits for something that will pass without a
// change to its spec: Ready is False with the reason, and the reconcile goes on.
func (s *scope) waitFor(reason, format string, args ...any) {
	if s.waiting == nil {
		s.waiting = &WaitingError{Reason: reason, Err: fmt.Errorf(format, args...)}
	}
}
