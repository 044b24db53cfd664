package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/audit"
	"github.com/ferrycd/ferry/internal/metrics"
)

// Reasons of rollbacks.
const (
	ReasonRollingBack       = "RollingBack"
	ReasonRollbackRequested = "RollbackRequested"
	ReasonHealthFailed      = "HealthFailed"
	ReasonInvalidRollback   = "InvalidRollbackRequest"
	ReasonHoldCleared       = "HoldCleared"
)

const rollbackField = "metadata.annotations[" + ferryv1.RollbackAnnotation + "]"

// unhealthy fails the in-flight digest and, when the stage's policy allows and an earlier healthy digest exists,
// rolls the stage back to it by committing that digest to Git.
func (r *PromotionReconciler) unhealthy(s *scope, i int, reason string) bool {
	st := s.stage(i)
	previous := st.Digest
	wasRollback := st.Hold != nil && st.Hold.Digest == st.InFlightDigest
	policy := s.p.Spec.Stages[i].Rollback.OnHealthFailure
	if wasRollback || previous == "" || (policy != nil && !*policy) {
		r.failDigest(s, i, reason)
		return true
	}
	r.event(s.p, corev1.EventTypeWarning, ReasonHealthFailed, "stage %s: %s failed: %s; rolling back to %s", st.Name, st.InFlightDigest, reason, previous)
	r.finishDigest(s, i, ferryv1.OutcomeRolledBack, "health failed: "+reason)
	r.startRollback(s, i, previous, ReasonHealthFailed, "ferry")
	return true
}

// startRollback puts the stage on its way back to target, held there until a newer digest arrives.
func (r *PromotionReconciler) startRollback(s *scope, i int, target, reason, by string) {
	st := s.stage(i)
	st.Hold = &ferryv1.HoldStatus{Digest: target, Reason: reason, RequestedBy: by, Since: &s.now}
	st.InFlightDigest, st.InFlightSince = target, &s.now
	st.InFlightSource = s.p.Spec.Stages[i].Registry.Repository + "@" + target
	s.setPhase(i, ferryv1.PhaseRollingBack, "Rolling back to %s (%s, by %s): committing it to Git.", target, reason, by)
	r.metrics().CountRollback(s.metricsStage(i), rollbackReason(reason))
	r.event(s.p, corev1.EventTypeWarning, ReasonRollingBack, "stage %s: rolling back to %s (%s, requested by %s)", st.Name, target, reason, by)
}

// rollbackRequest carries out the on-call annotation ferry.dev/rollback: "<stage>" or "<stage>=sha256:…". The
// request is recorded in status (with who asked) before the annotation is removed, so a crash between the two
// loses nothing and does nothing twice.
func (r *PromotionReconciler) rollbackRequest(ctx context.Context, s *scope) error {
	value, ok := s.p.Annotations[ferryv1.RollbackAnnotation]
	if !ok {
		return r.clearHoldRequest(ctx, s)
	}
	i, target, err := s.rollbackTarget(value)
	if err != nil {
		return err
	}
	st := s.stage(i)
	if st.InFlightDigest != target || st.Hold == nil || st.Hold.Digest != target {
		if err := r.abandonInFlight(ctx, s, i, "superseded by a rollback to "+target); err != nil {
			return err
		}
		by := r.annotationSetter(ctx, s.p, ferryv1.RollbackAnnotation)
		if st.Digest != "" && st.Digest != target {
			// The digest rolled back from ends its time here: held stages refuse it until a newer one arrives.
			s.record(i, ferryv1.StageHistoryEntry{Digest: st.Digest, CommitSHA: st.LastCommit, Outcome: ferryv1.OutcomeRolledBack,
				Reason: "rolled back on request of " + by, Approver: by})
			r.metrics().CountPromotion(s.metricsStage(i), metrics.ResultRolledBack)
		}
		r.startRollback(s, i, target, ReasonRollbackRequested, by)
		if err := r.checkpoint(ctx, s); err != nil {
			return err
		}
	}
	return r.removeAnnotation(ctx, s.p, ferryv1.RollbackAnnotation)
}

// rollbackTarget parses the annotation and picks the digest: the one given, which must be in the stage's
// history, or the newest digest before the current one that was promoted there.
func (s *scope) rollbackTarget(value string) (int, string, error) {
	stageName, digest, _ := strings.Cut(strings.TrimSpace(value), "=")
	i := s.stageIndex(stageName)
	if i < 0 {
		return 0, "", stalling(ReasonInvalidRollback, rollbackField, "stage %q does not exist in spec.stages", stageName)
	}
	st := s.stage(i)
	// Without a digest, "previous" skips digests this stage already rolled back from or failed with.
	troubled := map[string]bool{}
	for _, h := range st.History {
		if h.Outcome != ferryv1.OutcomePromoted {
			troubled[h.Digest] = true
		}
	}
	for _, h := range st.History {
		if h.Digest == st.Digest || h.Outcome != ferryv1.OutcomePromoted {
			continue
		}
		if h.Digest == digest || (digest == "" && !troubled[h.Digest]) {
			return i, h.Digest, nil
		}
	}
	if digest != "" {
		return 0, "", stalling(ReasonInvalidRollback, rollbackField, "%s was never promoted in stage %q (see `ferry history %s --stage %s`)", digest, stageName, s.p.Name, stageName)
	}
	return 0, "", stalling(ReasonInvalidRollback, rollbackField, "stage %q has no earlier promoted digest to roll back to", stageName)
}

func (s *scope) stageIndex(name string) int {
	for i, st := range s.p.Spec.Stages {
		if st.Name == name {
			return i
		}
	}
	return -1
}

// abandonInFlight ends a promotion under way in stage i, closing its pull request, so a rollback takes its place.
func (r *PromotionReconciler) abandonInFlight(ctx context.Context, s *scope, i int, why string) error {
	st := s.stage(i)
	if st.InFlightDigest == "" {
		return nil
	}
	if st.Phase == ferryv1.PhaseCanary {
		if err := r.removeCopies(ctx, s, i); err != nil {
			return err
		}
	}
	if st.PullRequest != nil && st.Phase == ferryv1.PhaseAwaitingApproval {
		provider, repo, err := r.forge(s, i)
		if err != nil {
			return err
		}
		if err := provider.ClosePullRequest(ctx, repo, int(st.PullRequest.Number), "Closed by Ferry: "+why+"."); err != nil {
			return forgeError(i, err)
		}
	}
	r.finishDigest(s, i, ferryv1.OutcomeSuperseded, why)
	return nil
}

// clearHoldRequest carries out ferry.dev/clear-hold: "<stage>".
func (r *PromotionReconciler) clearHoldRequest(ctx context.Context, s *scope) error {
	value, ok := s.p.Annotations[ferryv1.ClearHoldAnnotation]
	if !ok {
		return nil
	}
	i := s.stageIndex(strings.TrimSpace(value))
	if i < 0 {
		return stalling(ReasonInvalidRollback, "metadata.annotations["+ferryv1.ClearHoldAnnotation+"]", "stage %q does not exist in spec.stages", value)
	}
	if st := s.stage(i); st.Hold != nil {
		r.event(s.p, corev1.EventTypeNormal, ReasonHoldCleared, "stage %s: hold on %s cleared by %s", st.Name, st.Hold.Digest, r.annotationSetter(ctx, s.p, ferryv1.ClearHoldAnnotation))
		st.Hold = nil
		if err := r.checkpoint(ctx, s); err != nil {
			return err
		}
	}
	return r.removeAnnotation(ctx, s.p, ferryv1.ClearHoldAnnotation)
}

// removeAnnotation deletes a request annotation, and its companion naming who asked (see audit.go), with a
// patch that fails if the object changed since it was read, so a newer request set meanwhile is never dropped.
func (r *PromotionReconciler) removeAnnotation(ctx context.Context, p *ferryv1.Promotion, key string) error {
	remove := func() {
		delete(p.Annotations, key)
		delete(p.Annotations, audit.Companion(key))
	}
	if err := r.patchMetadata(ctx, p, remove); err != nil {
		return fmt.Errorf("removing annotation %s: %w", key, err)
	}
	return nil
}
