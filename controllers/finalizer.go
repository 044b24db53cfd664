package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// ReasonPullRequestsClosed is the event of a deleted Promotion's pull requests being closed.
const ReasonPullRequestsClosed = "PullRequestsClosed"

// ensureFinalizer keeps a Promotion from disappearing while it has a pull request open, so that deleting it
// closes the pull request instead of leaving a stale approval request behind.
func (r *PromotionReconciler) ensureFinalizer(ctx context.Context, p *ferryv1.Promotion) error {
	if controllerutil.ContainsFinalizer(p, ferryv1.Finalizer) {
		return nil
	}
	if err := r.patchMetadata(ctx, p, func() { controllerutil.AddFinalizer(p, ferryv1.Finalizer) }); err != nil {
		return fmt.Errorf("adding finalizer: %w", err)
	}
	return nil
}

// patchMetadata changes the Promotion's metadata with a patch that fails if the object changed since it was
// read. The status this reconcile holds in memory is set aside during the patch and put back untouched — the
// same slices, so pointers into them stay valid — since the patch's answer carries the stored status.
func (r *PromotionReconciler) patchMetadata(ctx context.Context, p *ferryv1.Promotion, mutate func()) error {
	held := p.Status
	p.Status = ferryv1.PromotionStatus{}
	defer func() { p.Status = held }()
	patch := client.MergeFromWithOptions(p.DeepCopy(), client.MergeFromWithOptimisticLock{})
	mutate()
	return r.Patch(ctx, p, patch)
}

// finalize closes the pull requests a deleted Promotion left open, then lets it go. When the forge cannot be
// reached with the Promotion's own credentials (its Secret is gone, say), the pull requests are named in an
// event for a person to close, rather than blocking the deletion forever.
func (r *PromotionReconciler) finalize(ctx context.Context, s *scope) error {
	if !controllerutil.ContainsFinalizer(s.p, ferryv1.Finalizer) {
		return nil
	}
	if err := r.validate(ctx, s); err == nil {
		for i := range s.p.Spec.Stages {
			if s.stage(i).PullRequest == nil || s.stage(i).Phase != ferryv1.PhaseAwaitingApproval {
				continue
			}
			if err := r.abandonInFlight(ctx, s, i, "the Promotion was deleted"); err != nil {
				return err
			}
		}
		r.event(s.p, corev1.EventTypeNormal, ReasonPullRequestsClosed, "closed the open pull requests of the deleted Promotion")
	} else {
		for _, st := range s.p.Status.Stages {
			if st.PullRequest != nil {
				r.event(s.p, corev1.EventTypeWarning, ReasonPullRequestsClosed, "could not close %s (%v); close it by hand", st.PullRequest.URL, err)
			}
		}
	}
	patch := client.MergeFrom(s.p.DeepCopy())
	controllerutil.RemoveFinalizer(s.p, ferryv1.Finalizer)
	return client.IgnoreNotFound(r.Patch(ctx, s.p, patch))
}
