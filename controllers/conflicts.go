package controllers

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
)

// conflictRetry is how soon a reconcile that lost an optimistic-lock race runs again. The change that won the race
// brings the Promotion back through the watch anyway; this is the bound if that event was already consumed.
const conflictRetry = time.Second

// endStep is what a reconcile returns when a step failed with err. A write that lost an optimistic-lock race (the
// Promotion changed since it was read: an annotation set, the spec edited) is not a failure: it is retried
// shortly with the newer object and logged at debug level only, rather than returned — controller-runtime would
// log a returned error as "Reconciler error" and back off. Anything else is returned as it is.
func endStep(ctx context.Context, err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		ctrl.LoggerFrom(ctx).V(1).Info("the Promotion changed while it was reconciled; reconciling the newer version",
			"conflict", err.Error())
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return ctrl.Result{}, err
}
