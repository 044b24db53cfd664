package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/lru"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/analysis"
	"github.com/ferrycd/ferry/internal/idle"
	"github.com/ferrycd/ferry/internal/metrics"
	"github.com/ferrycd/ferry/internal/notify"
	"github.com/ferrycd/ferry/internal/text"
	"github.com/ferrycd/ferry/internal/webhook"
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
	// Engines carry out the side effects. With no Git engine the reconciler validates Promotions and stops there.
	Engines Engines
	// LocalConfig reaches the cluster Ferry runs in, for stages without a kubeconfig Secret.
	LocalConfig *rest.Config
	// Metrics records the SLIs of promotions; nil records nothing.
	Metrics *metrics.Recorder
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// DegradedGrace is how long after a sync a Degraded workload is given before it fails the digest (15 s
	// when zero): the rollout it replaces may still be reporting its own failure.
	DegradedGrace time.Duration
	// Concurrency is how many Promotions are reconciled at once (1 when zero). One Promotion is never
	// reconciled twice at the same time; the engines are safe for concurrent use by different Promotions.
	Concurrency int
	// DefaultServiceAccount is impersonated, in the Promotion's namespace, for Promotions that name no
	// spec.serviceAccountName; empty keeps the controller's own identity for them.
	DefaultServiceAccount string
	// NoCrossNamespaceSync refuses stages that sync into a namespace other than their Promotion's own.
	NoCrossNamespaceSync bool
	// ReconcileTimeout bounds one reconcile (defaultReconcileTimeout when zero): a peer that never answers costs
	// one timeout, then the reconcile is retried, rather than holding a worker for ever.
	ReconcileTimeout time.Duration
	// AuditWebhook: the audit webhook records who asks (see audit.go); else the field manager, unauthenticated.
	AuditWebhook bool
	// Notifier delivers spec.notifications off the reconciler's path (see notify.go); nil builds one with defaults.
	Notifier *notify.Dispatcher
	// ApprovalPollInterval is how often an open pull request, or an analysis held for a person, is looked at
	// when no forge event arrives (DefaultApprovalPollInterval when zero).
	ApprovalPollInterval time.Duration

	// pushes carries registry notifications (see Pushed); forges carries forge events (see ForgeChanged).
	pushes signals[string]
	forges signals[webhook.ForgeChange]
	// notified carries the Promotions a finished delivery concerns (see notificationDone).
	notifyOnce sync.Once
	notified   signals[string]
	// seen remembers the Promotions whose metrics were initialised by this process.
	seen sync.Map
	// discovered remembers when each Promotion's source was last asked (a discovery); pushed marks the
	// Promotions a registry notification asks to look at once.
	discovered, pushed sync.Map
	// renderedObjects remembers what stage paths render to, by commit (see declaredObjects).
	renderedOnce    sync.Once
	renderedObjects *lru.Cache
	// fleetExpected announces every Promotion's stage namespaces once (see expectSyncTargets).
	fleetExpected sync.Once
	// owners maps stage owners (see stageOwner) to their Promotions; changes carries the owners of applied
	// objects the sync engine saw change.
	owners  sync.Map
	changes signals[string]
	// queriers and stageClients share Prometheus clients and stage-cluster clients, by server and identity, and
	// let go of those unused for clientIdleTTL (see shared); canaryObjects remembers the Deployments a commit's
	// canary copies (see canaryWorkloads).
	sharedOnce    sync.Once
	queriers      *idle.Pool[analysis.Querier]
	stageClients  *idle.Pool[client.Client]
	canaryOnce    sync.Once
	canaryObjects *lru.Cache
}

// +kubebuilder:rbac:groups=ferry.dev,resources=promotions,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=ferry.dev,resources=promotions/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ferry.dev,resources=promotions/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=impersonate

// step is one step of the pipeline; the first error ends the reconcile.
type step func(context.Context, *scope) error

// Reconcile runs the pipeline for one Promotion — validate, carry out an on-call rollback request, discover and
// verify the newest digest, then move every stage as far as it can go — and records the outcome in its status.
// A suspended Promotion is only validated.
func (r *PromotionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)
	// The status is still written when the reconcile's time is up, with a little time of its own.
	statusCtx := context.WithoutCancel(ctx)
	ctx, cancel := context.WithTimeout(ctx, r.reconcileTimeout())
	defer cancel()
	var p ferryv1.Promotion
	if err := r.Get(ctx, req.NamespacedName, &p); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.initMetrics(&p)
	s := &scope{p: &p, now: metav1.NewTime(r.now()), before: p.DeepCopy(), started: time.Now()}
	if !p.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, s)
	}
	syncStageStatuses(&p, s.now)
	r.settleNotifications(s)
	defer func() {
		outcome := retErr
		if outcome == nil {
			outcome = s.waiting
		}
		patchCtx, cancel := context.WithTimeout(statusCtx, statusPatchTimeout)
		defer cancel()
		if err := r.patchStatus(patchCtx, s, outcome); err != nil && retErr == nil {
			retErr = err
		}
		r.sendNotifications(patchCtx, s)
	}()

	steps := []step{r.validate}
	if r.Engines.Git != nil && !p.Spec.Suspend {
		steps = append(steps, r.rollbackRequest, r.analysisRequests, r.discover, r.promoteStages)
	}
	var deferred error // a peer that fails (a source registry down) must not stop the stages under way
	for _, run := range steps {
		err := run(ctx, s)
		if stall, ok := asStalling(err); ok {
			log.Info("promotion stalled on bad input", "reason", stall.Reason, "field", stall.Field)
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		if _, ok := asWaiting(err); ok {
			s.waiting = err // stages already under way still move
			continue
		}
		if _, ok := asRetrying(err); ok && deferred == nil {
			deferred = err // health checks and rollbacks go on; the failure is retried with backoff after them
			continue
		}
		if err != nil {
			return endStep(ctx, err)
		}
	}
	if deferred != nil {
		return ctrl.Result{}, deferred
	}
	if len(steps) == 1 {
		return ctrl.Result{}, nil // validation only: nothing to poll
	}
	return ctrl.Result{RequeueAfter: s.requeueAfter()}, nil
}

// forget drops what this process remembers of a deleted Promotion: its metrics series, when its source was last
// asked, which stage owners are its (and the sync engine's hold on their clusters), and that its metrics were
// initialised.
func (r *PromotionReconciler) forget(key types.NamespacedName) {
	r.metrics().Forget(metrics.Promotion{Namespace: key.Namespace, Name: key.Name})
	r.notifier().Forget(key.String())
	r.discovered.Delete(key)
	r.pushed.Delete(key)
	r.owners.Range(func(owner, promotion any) bool {
		if promotion == key {
			r.owners.Delete(owner)
			if r.Engines.Sync != nil {
				r.Engines.Sync.Forget(owner.(string))
			}
		}
		return true
	})
	prefix := key.Namespace + "/" + key.Name + "/" // seen keys end with the UID; names cannot hold a "/"
	r.seen.Range(func(seen, _ any) bool {
		if strings.HasPrefix(seen.(string), prefix) {
			r.seen.Delete(seen)
		}
		return true
	})
}

// Deadlines of a reconcile.
const (
	defaultReconcileTimeout = 3 * time.Minute
	statusPatchTimeout      = 30 * time.Second
)

func (r *PromotionReconciler) reconcileTimeout() time.Duration {
	if r.ReconcileTimeout > 0 {
		return r.ReconcileTimeout
	}
	return defaultReconcileTimeout
}

func (r *PromotionReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// validate is the first step: nothing happens for a spec that the CRD schema accepted but Ferry cannot use.
func (r *PromotionReconciler) validate(ctx context.Context, s *scope) error {
	if err := validateSpec(s.p); err != nil {
		return err
	}
	refs, err := loadReferences(ctx, r.APIReader, s.p)
	if err != nil {
		return err
	}
	s.refs = refs
	in, err := buildInputs(s.p, refs)
	if err != nil {
		return err
	}
	if err := in.policy.Validate(); err != nil {
		return stalling(ReasonInvalidReference, "spec.verification", "%v", err)
	}
	s.in = in
	return refuseNotActedOn(s.p)
}

// checkpoint writes status when it changed — in the middle of a reconcile, so that a crash resumes from the
// step that was running rather than from the start of the stage, and at its end.
func (r *PromotionReconciler) checkpoint(ctx context.Context, s *scope) error {
	s.p.Status.Summary = summary(s.p.Status.Stages)
	boundText(&s.p.Status)
	r.queueNotifications(s)
	if equality.Semantic.DeepEqual(s.before.Status, s.p.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, s.p, client.MergeFrom(s.before)); err != nil {
		return fmt.Errorf("recording status: %w", err)
	}
	s.before = s.p.DeepCopy()
	return nil
}

// patchStatus computes conditions from the reconcile's outcome, emits an event when Ready changes, and patches
// the status subresource only when something changed.
func (r *PromotionReconciler) patchStatus(ctx context.Context, s *scope, err error) error {
	p := s.p
	setConditions(p, err, r.Engines.Git != nil)
	setDriftCondition(p, s.drift, err == nil || s.waiting == err)
	if _, stalled := asStalling(err); err == nil || stalled {
		p.Status.ObservedGeneration = p.Generation
	}
	// s.before is a copy of its own, so its Ready condition is still the one before this reconcile.
	r.recordReadyChange(apimeta.FindStatusCondition(s.before.Status.Conditions, ferryv1.ConditionReady), p)
	if perr := r.checkpoint(ctx, s); perr != nil && !apierrors.IsNotFound(perr) {
		return perr
	}
	return nil
}

// event records a transition on the Promotion; the reason is a condition or step reason.
func (r *PromotionReconciler) event(p *ferryv1.Promotion, eventType, reason, format string, args ...any) {
	r.Recorder.Eventf(p, nil, eventType, reason, "Promote", "%s", text.Cut(fmt.Sprintf(format, args...), maxEventNote))
}

// maxEventNote keeps an event's note under the API server's limit of 1 KiB, so that a long error never loses the
// event.
const maxEventNote = 1000

// recordReadyChange emits one event per change of the Ready condition; the event reason is the condition reason.
func (r *PromotionReconciler) recordReadyChange(old *metav1.Condition, after *ferryv1.Promotion) {
	now := apimeta.FindStatusCondition(after.Status.Conditions, ferryv1.ConditionReady)
	if now == nil || (old != nil && old.Status == now.Status && old.Reason == now.Reason && old.Message == now.Message) {
		return
	}
	eventType := corev1.EventTypeNormal
	if now.Status != metav1.ConditionTrue {
		eventType = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(after, nil, eventType, now.Reason, "Reconcile", "%s", text.Cut(now.Message, maxEventNote))
}

// SetupWithManager registers the reconciler, its index and its watches.
func (r *PromotionReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &ferryv1.Promotion{}, referencesIndex, indexReferences); err != nil {
		return fmt.Errorf("indexing Promotion references: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &ferryv1.Promotion{}, sourceIndex, indexSource); err != nil {
		return fmt.Errorf("indexing Promotion sources: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &ferryv1.Promotion{}, gitRepositoryIndex, indexGitRepository); err != nil {
		return fmt.Errorf("indexing Promotion Git repositories: %w", err)
	}
	if r.Engines.Sync != nil {
		r.Engines.Sync.OnChange(r.stageChanged)
	}
	if err := mgr.Add(r.notifier()); err != nil {
		return fmt.Errorf("adding the notification dispatcher: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&ferryv1.Promotion{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.promotionsReferring(ferryv1.SecretKind)),
			builder.OnlyMetadata).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.promotionsReferring(ferryv1.ConfigMapKind)),
			builder.OnlyMetadata).
		WatchesRawSource(r.pushSource()).
		WatchesRawSource(r.forgeSource()).
		WatchesRawSource(r.changeSource()).
		WatchesRawSource(r.notifiedSource()).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Concurrency, 1)}).
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
