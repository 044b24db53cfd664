package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/webhook"
)

// sourceIndex indexes Promotions by their normalised source repository, so that a registry notification wakes
// exactly the Promotions that follow it.
const sourceIndex = "ferry.dev/source"

func indexSource(obj client.Object) []string {
	p, ok := obj.(*ferryv1.Promotion)
	if !ok {
		return nil
	}
	repo, err := webhook.Normalise(p.Spec.Source.Image)
	if err != nil {
		return nil
	}
	return []string{repo}
}

// Pushed tells the reconciler that repository received a push (from internal/webhook) and reports whether the
// wake-up was queued. It never blocks: when too many wake-ups wait, it refuses this one and counts it
// (ferry_webhook_notifications_dropped_total); the webhook then answers the registry 503 with Retry-After, so the
// registry retries, and polling finds the digest at the next interval in any case.
func (r *PromotionReconciler) Pushed(repository string) bool {
	if r.pushes.send(repository) {
		return true
	}
	r.metrics().CountWebhookDrop()
	return false
}

// pushSource turns notifications into reconcile requests for the Promotions following the repository.
func (r *PromotionReconciler) pushSource() source.Source {
	return r.pushes.source(func(ctx context.Context, repository string) []reconcile.Request {
		var list ferryv1.PromotionList
		if err := r.List(ctx, &list, client.MatchingFields{sourceIndex: repository}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing Promotions for a registry notification", "repository", repository)
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, p := range list.Items {
			key := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
			r.pushed.Store(key, struct{}{}) // the next reconcile asks the source at once
			reqs = append(reqs, reconcile.Request{NamespacedName: key})
		}
		return reqs
	})
}
