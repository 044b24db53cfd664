package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// referencesIndex indexes Promotions by the Secrets and ConfigMaps they refer to ("Secret/name"), so that a
// change to one of them brings exactly the Promotions that use it back to the reconciler.
const referencesIndex = "ferry.dev/references"

// PromotionReconciler reconciles Promotion objects.
type PromotionReconciler struct {
	client.Client
	// APIReader reads Secrets and ConfigMaps straight from the API server, so that Ferry never caches every
	// Secret in the cluster.
	APIReader client.Reader
	Recorder  events.EventRecorder
}

// +kubebuilder:rbac:groups=ferry.dev,resources=promotions,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=ferry.dev,resources=promotions/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ferry.dev,resources=promotions/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile runs the pipeline steps for one Promotion and records the outcome in its status.
func (r *PromotionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)
	var p ferryv1.Promotion
	if err := r.Get(ctx, req.NamespacedName, &p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := p.DeepCopy()
	defer func() {
		if err := r.patchStatus(ctx, before, &p, retErr); err != nil && retErr == nil {
			retErr = err
		}
	}()

	steps := []func(context.Context, *ferryv1.Promotion) error{r.validate}
	for _, step := range steps {
		if err := step(ctx, &p); err != nil {
			if stall, ok := asStalling(err); ok {
				log.Info("promotion stalled on bad input", "reason", stall.Reason, "field", stall.Field)
				return ctrl.Result{}, reconcile.TerminalError(err)
			}
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, nil
}

// validate is the first step: nothing happens for a spec that the CRD schema accepted but Ferry cannot use.
func (r *PromotionReconciler) validate(ctx context.Context, p *ferryv1.Promotion) error {
	if err := validateSpec(p); err != nil {
		return err
	}
	return validateReferences(ctx, r.APIReader, p)
}

// patchStatus computes conditions from the reconcile's outcome, emits an event when Ready changes, and patches
// the status subresource only when something changed.
func (r *PromotionReconciler) patchStatus(ctx context.Context, before, p *ferryv1.Promotion, err error) error {
	syncStageStatuses(p, metav1.Now())
	setConditions(p, err)
	if _, stalled := asStalling(err); err == nil || stalled {
		p.Status.ObservedGeneration = p.Generation
	}
	r.recordReadyChange(before, p)
	if equality.Semantic.DeepEqual(before.Status, p.Status) {
		return nil
	}
	if perr := r.Status().Patch(ctx, p, client.MergeFrom(before)); perr != nil {
		if apierrors.IsNotFound(perr) {
			return nil
		}
		return fmt.Errorf("patching status: %w", perr)
	}
	return nil
}

// recordReadyChange emits one event per change of the Ready condition; the event reason is the condition reason.
func (r *PromotionReconciler) recordReadyChange(before, after *ferryv1.Promotion) {
	old := apimeta.FindStatusCondition(before.Status.Conditions, ferryv1.ConditionReady)
	now := apimeta.FindStatusCondition(after.Status.Conditions, ferryv1.ConditionReady)
	if now == nil || (old != nil && old.Status == now.Status && old.Reason == now.Reason && old.Message == now.Message) {
		return
	}
	eventType := corev1.EventTypeNormal
	if now.Status != metav1.ConditionTrue {
		eventType = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(after, nil, eventType, now.Reason, "Reconcile", "%s", now.Message)
}

// SetupWithManager registers the reconciler, its index and its watches.
func (r *PromotionReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &ferryv1.Promotion{}, referencesIndex, indexReferences); err != nil {
		return fmt.Errorf("indexing Promotion references: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&ferryv1.Promotion{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.promotionsReferring(ferryv1.SecretKind)),
			builder.OnlyMetadata).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.promotionsReferring(ferryv1.ConfigMapKind)),
			builder.OnlyMetadata).
		Complete(r)
}

func indexReferences(obj client.Object) []string {
	p, ok := obj.(*ferryv1.Promotion)
	if !ok {
		return nil
	}
	var keys []string
	for _, ref := range references(p) {
		keys = append(keys, referenceKey(ref.kind, ref.name))
	}
	return keys
}

func referenceKey(kind ferryv1.ObjectKind, name string) string { return string(kind) + "/" + name }

// promotionsReferring maps a Secret or ConfigMap to the Promotions in its namespace that refer to it.
func (r *PromotionReconciler) promotionsReferring(kind ferryv1.ObjectKind) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		var list ferryv1.PromotionList
		if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()),
			client.MatchingFields{referencesIndex: referenceKey(kind, obj.GetName())}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing Promotions that refer to an object", "kind", kind, "name", obj.GetName())
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, p := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
		}
		return reqs
	}
}
