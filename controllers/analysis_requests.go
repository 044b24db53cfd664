package controllers

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// analysisRequests carries out ferry.dev/approve and ferry.dev/abort, each set to a stage name: approve lets a
// held analysis go on, abort fails the one under way so the stage rolls back. Like the rollback annotation, the
// request is recorded in status, with who asked, before the annotation is removed.
func (r *PromotionReconciler) analysisRequests(ctx context.Context, s *scope) error {
	for _, key := range []string{ferryv1.AbortAnnotation, ferryv1.ApproveAnnotation} {
		value, ok := s.p.Annotations[key]
		if !ok {
			continue
		}
		i := s.stageIndex(strings.TrimSpace(value))
		if i < 0 {
			return stalling(ReasonInvalidRollback, "metadata.annotations["+key+"]", "stage %q does not exist in spec.stages", value)
		}
		r.carryOut(s, i, key, r.annotationSetter(ctx, s.p, key))
		if err := r.checkpoint(ctx, s); err != nil {
			return err
		}
		if err := r.removeAnnotation(ctx, s.p, key); err != nil {
			return err
		}
	}
	return nil
}

// carryOut applies an approve or abort request of who to stage i's analysis under way, or says there is none.
func (r *PromotionReconciler) carryOut(s *scope, i int, key, who string) {
	st := s.stage(i)
	a := st.Analysis
	if st.InFlightDigest == "" || a == nil || a.Digest != st.InFlightDigest || a.Phase == ferryv1.AnalysisPassed || a.Phase == ferryv1.AnalysisFailed {
		r.event(s.p, corev1.EventTypeWarning, ReasonAnalysisHeld, "stage %s: %s by %s ignored: no analysis under way", st.Name, key, who)
		return
	}
	if key == ferryv1.AbortAnnotation {
		a.Phase, a.AbortedBy, a.Message = ferryv1.AnalysisFailed, who, "aborted by "+who
		r.event(s.p, corev1.EventTypeWarning, ReasonAnalysisAborted, "stage %s: analysis of %s aborted by %s", st.Name, a.Digest, who)
		return
	}
	// An approval starts the step's evidence afresh — the missing-data budget, the outage clock and the tallies —
	// and accepts a Marginal comparison; measured failures after it still fail the run.
	a.Phase, a.ApprovedBy, a.ApprovedAt, a.HeldSince = ferryv1.AnalysisRunning, who, &s.now, nil
	a.Approvals++
	a.Taken, a.Missing, a.Tallies, a.OutageSince = 0, 0, nil, nil
	r.event(s.p, corev1.EventTypeNormal, ReasonAnalysisApproved, "stage %s: analysis of %s approved by %s", st.Name, a.Digest, who)
}
