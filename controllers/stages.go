package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// Event reasons of stage transitions.
const (
	ReasonPromotionStarted = "PromotionStarted"
	ReasonCopied           = "Copied"
	ReasonCommitted        = "Committed"
	ReasonPullRequest      = "PullRequestOpened"
	ReasonApproved         = "Approved"
	ReasonRejected         = "Rejected"
	ReasonSuperseded       = "Superseded"
	ReasonSynced           = "Synced"
	ReasonHealthy          = "Healthy"
	ReasonPromoted         = "Promoted"
	ReasonStageFailed      = "StageFailed"
	ReasonRolledBack       = "RolledBack"
	ReasonHoldReleased     = "HoldReleased"
)

// maxStepsPerReconcile bounds how many phase changes one stage makes in one reconcile; status is checkpointed
// after each, so a crash resumes at the step that was running.
const maxStepsPerReconcile = 8

// stageStep advances one stage by one phase. It reports whether the stage moved, so that the caller can
// checkpoint status and try the next phase at once.
type stageStep func(ctx context.Context, s *scope, i int) (moved bool, err error)

// promoteStages walks the stages in order, moving each as far as it can go now. A peer failing for one stage (its
// registry, its cluster) does not keep the others from their health checks and rollbacks: the failure is returned
// once every stage had its turn.
func (r *PromotionReconciler) promoteStages(ctx context.Context, s *scope) error {
	r.expectSyncTargets(ctx, s)
	var retry error
	for i := range s.p.Spec.Stages {
		if err := r.promoteStage(ctx, s, i); err != nil {
			if _, ok := asRetrying(err); !ok {
				return err
			}
			if retry == nil {
				retry = err
			}
		}
		if s.yielded {
			return retry
		}
	}
	return retry
}

// promoteStage moves stage i as far as it can go now, then records its digest and drift.
func (r *PromotionReconciler) promoteStage(ctx context.Context, s *scope, i int) error {
	for n := 0; n < maxStepsPerReconcile; n++ {
		if s.yieldAfterWork() {
			s.yielded = true
			return nil
		}
		moved, err := r.stepFor(s, i)(ctx, s, i)
		if err != nil {
			return fmt.Errorf("stage %s: %w", s.p.Spec.Stages[i].Name, err)
		}
		if !moved {
			break
		}
		s.moves++
		if err := r.checkpoint(ctx, s); err != nil {
			return err
		}
	}
	if d := s.stage(i).Digest; d != "" {
		r.metrics().SetStageDigest(s.metricsStage(i), d) // also after a restart, not only on change
	}
	if err := r.checkDrift(ctx, s, i); err != nil {
		return fmt.Errorf("stage %s: %w", s.p.Spec.Stages[i].Name, err)
	}
	return nil
}

// checkDrift compares what a settled stage runs with what Git declares for it; drift is reported (condition,
// metric), not corrected: a person decides whether the cluster or Git is right.
func (r *PromotionReconciler) checkDrift(ctx context.Context, s *scope, i int) error {
	st := s.stage(i)
	settled := st.Phase == ferryv1.PhasePromoted || st.Phase == ferryv1.PhaseRolledBack
	if r.Engines.Sync == nil || st.InFlightDigest != "" || st.Digest == "" || !settled {
		return nil
	}
	h, err := r.health(ctx, s, i, st.Digest)
	if err != nil {
		return err
	}
	for _, d := range h.Drift {
		s.drift = append(s.drift, st.Name+": "+d)
	}
	return nil
}

// stepFor picks the step that moves stage i out of its current phase.
func (r *PromotionReconciler) stepFor(s *scope, i int) stageStep {
	st := s.stage(i)
	if st.InFlightDigest == "" {
		return r.startStage
	}
	switch st.Phase {
	case ferryv1.PhaseCopying:
		return r.copyStage
	case ferryv1.PhaseWriting, ferryv1.PhaseRollingBack:
		return r.writeStage
	case ferryv1.PhaseAwaitingApproval:
		return r.awaitApproval
	case ferryv1.PhaseSyncing:
		return r.syncStage
	case ferryv1.PhaseCanary:
		return r.canaryStage
	case ferryv1.PhaseProgressing:
		return r.awaitHealthy
	case ferryv1.PhaseSoaking:
		return r.soakStage
	}
	// A digest in flight in any other phase was left by an older version: start it again from the copy,
	// which is idempotent.
	return r.copyStage
}

// startStage takes the digest offered to stage i, unless the stage already runs it or refuses it.
func (r *PromotionReconciler) startStage(_ context.Context, s *scope, i int) (bool, error) {
	st := s.stage(i)
	digest, blocked := s.door(i)
	if digest == st.Digest && blocked == "" {
		return false, nil // runs it already
	}
	if digest == "" {
		if blocked != "" && s.offered(i) != st.Digest {
			st.Message = blocked
		}
		return false, nil
	}
	if st.Hold != nil {
		r.event(s.p, corev1.EventTypeNormal, ReasonHoldReleased, "stage %s: newer digest %s releases the hold on %s",
			st.Name, digest, st.Hold.Digest)
		st.Hold = nil
	}
	st.InFlightDigest, st.InFlightSince = digest, &s.now
	st.InFlightSource = s.sourceOf(i, digest)
	s.setPhase(i, ferryv1.PhaseCopying, "Copying %s into %s.", st.InFlightSource, s.p.Spec.Stages[i].Registry.Repository)
	r.event(s.p, corev1.EventTypeNormal, ReasonPromotionStarted, "stage %s: promoting %s from %s", st.Name, digest, st.InFlightSource)
	return true, nil
}

// finishDigest ends the in-flight digest's time in stage i with an outcome and goes back to showing the digest
// that runs there.
func (r *PromotionReconciler) finishDigest(s *scope, i int, outcome ferryv1.Outcome, reason string) {
	st := s.stage(i)
	s.record(i, ferryv1.StageHistoryEntry{
		Digest: st.InFlightDigest, CommitSHA: st.LastCommit, Outcome: outcome, Reason: reason,
		Source: st.InFlightSource, Signers: candidateSigners(s), Approver: approver(st),
	})
	r.recordOutcome(s, i, outcome)
	st.InFlightDigest, st.InFlightSource, st.InFlightSince, st.PullRequest = "", "", nil, nil
	phase := ferryv1.PhaseIdle
	if st.Digest != "" {
		phase = ferryv1.PhasePromoted
	}
	if outcome == ferryv1.OutcomeFailed {
		phase = ferryv1.PhaseFailed
	}
	s.setPhase(i, phase, "%s", reason)
}

func candidateSigners(s *scope) []string {
	if c := s.p.Status.Candidate; c != nil {
		return c.Signers
	}
	return nil
}

func approver(st *ferryv1.StageStatus) string {
	if st.PullRequest != nil && st.PullRequest.Approver != "" {
		return st.PullRequest.Approver
	}
	if st.Hold != nil && st.Hold.Digest == st.InFlightDigest {
		return st.Hold.RequestedBy
	}
	return "automatic"
}
