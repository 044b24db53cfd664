package controllers

import (
	"context"
	"strings"

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

// gitRepositoryIndex indexes Promotions by the path of their Git repository on its forge ("owner/name", lower
// case), so that a forge event wakes exactly the Promotions whose approvals it may concern.
const gitRepositoryIndex = "ferry.dev/git-repository"

func indexGitRepository(obj client.Object) []string {
	p, ok := obj.(*ferryv1.Promotion)
	if !ok {
		return nil
	}
	repo, err := repoPath(p.Spec.Git.URL)
	if err != nil {
		return nil
	}
	return []string{strings.ToLower(repo)}
}

// ForgeChanged tells the reconciler what a forge event says changed (from internal/webhook) and reports whether
// the wake-up was queued. It never blocks; a refused wake-up is counted like a registry notification's
// (ferry_webhook_notifications_dropped_total).
func (r *PromotionReconciler) ForgeChanged(change webhook.ForgeChange) bool {
	if r.forges.send(change) {
		return true
	}
	r.metrics().CountWebhookDrop()
	return false
}

// forgeSource turns forge events into reconcile requests for the Promotions that wait on them.
func (r *PromotionReconciler) forgeSource() source.Source {
	return r.forges.source(
		func(ctx context.Context, change webhook.ForgeChange) []reconcile.Request {
			var list ferryv1.PromotionList
			if err := r.List(ctx, &list, client.MatchingFields{gitRepositoryIndex: change.Repository}); err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "listing Promotions for a forge event", "repository", change.Repository)
				return nil
			}
			var reqs []reconcile.Request
			for i := range list.Items {
				if waitsOn(&list.Items[i], change) {
					reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
				}
			}
			return reqs
		})
}

// waitsOn says whether p waits on what change reports: a pull request of p's that was closed or merged, or a push
// to p's branch while one of p's pull requests is open (a merge seen as a push). A wake-up only makes the
// reconciler ask the forge sooner, so an event that matches by mistake costs one look, never an action.
func waitsOn(p *ferryv1.Promotion, change webhook.ForgeChange) bool {
	branch := p.Spec.Git.Branch
	if branch == "" {
		branch = "main"
	}
	if branch != change.Branch {
		return false
	}
	for _, st := range p.Status.Stages {
		if st.PullRequest == nil {
			continue
		}
		if change.PullRequest == 0 || st.PullRequest.Number == change.PullRequest {
			return true
		}
	}
	return false
}
