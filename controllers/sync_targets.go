package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

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
		for i, stage := range p.Spec.Stages {
			local := stage.Sync.KubeconfigSecretRef == nil
			if !local || len(validation.IsDNS1123Label(stage.Sync.Namespace)) != 0 {
				continue
			}
			t := SyncTarget{Config: r.LocalConfig, Namespace: stage.Sync.Namespace, Owner: r.stageOwner(&p, &stage)}
			if r.externalTarget(&p, i, &t) == nil {
				targets = append(targets, t)
			}
		}
	}
	return targets
}

// stageOwner names what Ferry applies for a stage ("<namespace>.<promotion>.<stage>", the owner label's source),
// and remembers which Promotion it belongs to, so that a change to an applied object wakes that Promotion.
func (r *PromotionReconciler) stageOwner(p *ferryv1.Promotion, stage *ferryv1.StageSpec) string {
	owner := p.Namespace + "." + p.Name + "." + stage.Name
	r.owners.Store(owner, types.NamespacedName{Namespace: p.Namespace, Name: p.Name})
	return owner
}

// stageChanged is the sync engine's OnChange callback. It never blocks: when too many changes wait, this one is
// dropped, and the stage's next poll sees it.
func (r *PromotionReconciler) stageChanged(owner string) { r.changes.send(owner) }

// changeSource turns changes to applied objects into reconcile requests for their Promotions.
func (r *PromotionReconciler) changeSource() source.Source {
	return r.changes.source(func(_ context.Context, owner string) []reconcile.Request {
		key, ok := r.owners.Load(owner)
		if !ok {
			return nil
		}
		return []reconcile.Request{{NamespacedName: key.(types.NamespacedName)}}
	})
}
