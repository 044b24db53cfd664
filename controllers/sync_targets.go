package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// expectSyncTargets tells the sync engine where this Promotion's stages sync to — and, on the first reconcile,
// where every Promotion's local-cluster stages do — so that a cluster's cache starts watching all those
// namespaces at once. Otherwise it would list every namespace again each time a stage reaches a new one, holding
// up every sync in that cluster meanwhile. A target that cannot be built is left to its stage's sync step, which
// reports it.
func (r *PromotionReconciler) expectSyncTargets(ctx context.Context, s *scope) {
	if r.Engines.Sync == nil {
		return
	}
	var targets []SyncTarget
	r.fleetExpected.Do(func() { targets = r.localFleetTargets(ctx) })
	for i := range s.p.Spec.Stages {
		if t, err := r.syncTarget(s, i); err == nil && len(validation.IsDNS1123Label(t.Namespace)) == 0 {
			targets = append(targets, t)
		}
	}
	if err := r.Engines.Sync.Expect(targets); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "announcing the namespaces stages sync to")
	}
}

// localFleetTargets lists the local-cluster targets of every Promotion this controller knows of (remote clusters
// need their kubeconfig Secrets, and are announced as their Promotions are reconciled).
func (r *PromotionReconciler) localFleetTargets(ctx context.Context) []SyncTarget {
	var list ferryv1.PromotionList
	if err := r.List(ctx, &list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing Promotions to announce their stage namespaces")
		return nil
	}
	var targets []SyncTarget
	for _, p := range list.Items {
		for _, stage := range p.Spec.Stages {
			local := stage.Sync.KubeconfigSecretRef == nil && stage.Manifest.Format != ferryv1.ManifestHelmValues
			if local && len(validation.IsDNS1123Label(stage.Sync.Namespace)) == 0 {
				targets = append(targets, SyncTarget{Config: r.LocalConfig, Namespace: stage.Sync.Namespace})
			}
		}
	}
	return targets
}
