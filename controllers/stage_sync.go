package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"k8s.io/utils/lru"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/sync"
)

// syncStage renders the stage path at the pinned commit and applies it to the stage's cluster.
func (r *PromotionReconciler) syncStage(ctx context.Context, s *scope, i int) (bool, error) {
	st := s.stage(i)
	if r.Engines.Sync == nil {
		st.Message = fmt.Sprintf("Pinned at commit %s; this controller has no sync engine, so the stage waits here.", shortSHA(st.LastCommit))
		return false, nil
	}
	if canaryWanted(s, i) {
		return r.startCanary(s, i), nil
	}
	if err := r.applyStage(ctx, s, i); err != nil {
		return false, err
	}
	s.setPhase(i, ferryv1.PhaseProgressing, "Applied commit %s; waiting for the rollout to become healthy.", shortSHA(st.LastCommit))
	return true, nil
}

// withCheckout writes the stage path at the stage's last commit into a temporary folder for fn.
func (r *PromotionReconciler) withCheckout(ctx context.Context, s *scope, i int, fn func(dir string) error) error {
	dir, err := os.MkdirTemp(r.Engines.WorkDir, "checkout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	files := filepath.Join(dir, "files")
	if _, err := r.Engines.Git.Checkout(ctx, s.in.git, s.stage(i).LastCommit, s.p.Spec.Stages[i].Path, files); err != nil {
		return gitError(i, err)
	}
	return r.stageError(s, i, fn(files))
}

// withStageFiles is withCheckout for a stage Ferry syncs. A stage Argo CD or Flux syncs reads Git itself, so fn
// gets no files ("") and nothing is checked out for it.
func (r *PromotionReconciler) withStageFiles(ctx context.Context, s *scope, i int, t SyncTarget, fn func(dir string) error) error {
	if !t.syncedByFerry() {
		return r.stageError(s, i, fn(""))
	}
	return r.withCheckout(ctx, s, i, fn)
}

// stageError names the stage path and commit in err, and the field at fault when the cluster refused it.
func (r *PromotionReconciler) stageError(s *scope, i int, err error) error {
	if err == nil {
		return nil
	}
	return r.clusterError(s, i, fmt.Errorf("stage %s at %s: %w", s.p.Spec.Stages[i].Path, shortSHA(s.stage(i).LastCommit), err))
}

// ReasonForbidden: the identity a Promotion acts with may not do what its spec asks in a stage's cluster.
const ReasonForbidden = "Forbidden"

// clusterError names the field at fault when the stage's cluster refuses the Promotion's identity — the tenant's
// ServiceAccount may not write where its stage points — and retries it with backoff, so that a RoleBinding added
// later is picked up without a change to the spec.
func (r *PromotionReconciler) clusterError(s *scope, i int, err error) error {
	if !apierrors.IsForbidden(err) {
		return err
	}
	who := "Ferry's own identity"
	if sa := r.serviceAccount(s.p); sa != "" && s.p.Spec.Stages[i].Sync.KubeconfigSecretRef == nil {
		who = "service account " + s.p.Namespace + "/" + sa
	}
	return retrying(ReasonForbidden, fmt.Errorf("spec.stages[%d].sync.namespace: %s may not do this in namespace %q: %w",
		i, who, s.p.Spec.Stages[i].Sync.Namespace, err))
}

// health assesses stage i as pinned at its last commit, and records drift.
func (r *PromotionReconciler) health(ctx context.Context, s *scope, i int, digest string) (Health, error) {
	target, err := r.syncTarget(s, i)
	if err != nil {
		return Health{}, err
	}
	objects, err := r.declaredObjects(ctx, s, i, target)
	if err != nil {
		return Health{}, err
	}
	h, err := r.Engines.Sync.Health(ctx, target, objects, s.p.Spec.Stages[i].Registry.Repository+"@"+digest)
	if stall := externalStall(s.p, i, err); stall != nil { // the external object is missing or of a refused kind
		return Health{}, stall
	}
	if apierrors.IsForbidden(err) {
		return Health{}, r.clusterError(s, i, err)
	}
	if err != nil {
		return Health{}, retrying(ReasonClusterUnavailable, fmt.Errorf("stage %s at %s: %w", s.p.Spec.Stages[i].Path, shortSHA(s.stage(i).LastCommit), err))
	}
	r.metrics().SetDrift(s.metricsStage(i), len(h.Drift) > 0)
	return h, nil
}

// declaredObjects names the objects stage i declares at its last commit. A commit never changes, so what its
// files render to is remembered: health polls and drift checks do not check out and render the path again.
func (r *PromotionReconciler) declaredObjects(ctx context.Context, s *scope, i int, target SyncTarget) ([]sync.ObjectRef, error) {
	key := renderKeyOf(s, i, target)
	if objects, ok := r.rendered().Get(key); ok {
		return objects.([]sync.ObjectRef), nil
	}
	var objects []sync.ObjectRef
	err := r.withStageFiles(ctx, s, i, target, func(dir string) (err error) {
		objects, err = r.Engines.Sync.Objects(target, dir)
		return err
	})
	if err != nil {
		return nil, err
	}
	r.rendered().Add(key, objects)
	return objects, nil
}

// renderKey identifies what a stage path renders to: the files at a commit, read in a format, placed in a
// namespace.
type renderKey struct {
	repository, commit, path, namespace string
	format                              ferryv1.ManifestFormat
	helm                                ferryv1.HelmValuesSpec // the chart, values file and release of a Helm stage
}

func renderKeyOf(s *scope, i int, target SyncTarget) renderKey {
	stage := &s.p.Spec.Stages[i]
	k := renderKey{repository: s.in.git.URL, commit: s.stage(i).LastCommit, path: stage.Path,
		format: stage.Manifest.Format, namespace: target.Namespace}
	if h := stage.Manifest.Helm; h != nil {
		k.helm = *h
	}
	return k
}

// renderedObjectsKept bounds the remembered renders: a few per stage (the running and the in-flight commit).
const renderedObjectsKept = 8192

func (r *PromotionReconciler) rendered() *lru.Cache {
	r.renderedOnce.Do(func() { r.renderedObjects = lru.New(renderedObjectsKept) })
	return r.renderedObjects
}

// syncTarget is where stage i is applied: the local cluster, or a remote one from its kubeconfig Secret.
func (r *PromotionReconciler) syncTarget(s *scope, i int) (SyncTarget, error) {
	stage := &s.p.Spec.Stages[i]
	t := SyncTarget{Config: r.LocalConfig, Namespace: stage.Sync.Namespace, Prune: stage.Sync.Prune,
		Format: stage.Manifest.Format, Owner: r.stageOwner(s.p, stage), Revision: s.stage(i).LastCommit,
		Helm: stage.Manifest.Helm, Release: s.p.Name + "-" + stage.Name, Field: fmt.Sprintf("spec.stages[%d]", i)}
	if err := r.externalTarget(s.p, i, &t); err != nil {
		return t, err
	}
	if r.NoCrossNamespaceSync && stage.Sync.Namespace != s.p.Namespace {
		return t, stalling(ReasonNotSupported, fmt.Sprintf("spec.stages[%d].sync.namespace", i),
			"%q is not the Promotion's namespace %q, and this controller refuses cross-namespace syncs", stage.Sync.Namespace, s.p.Namespace)
	}
	if sa := r.serviceAccount(s.p); sa != "" && stage.Sync.KubeconfigSecretRef == nil {
		t.Config = impersonating(r.LocalConfig, s.p.Namespace, sa)
	}
	if kc := stage.Sync.KubeconfigSecretRef; kc != nil {
		field := fmt.Sprintf("spec.stages[%d].sync.kubeconfigSecretRef", i)
		// Only inline credentials: exec plugins and file paths in a kubeconfig from a Secret are refused.
		cfg, err := sync.ConfigFromKubeconfig(s.refs[field][orDefault(kc.Key, keyKubeconfig)])
		if err != nil {
			return t, stalling(ReasonInvalidReference, field, "%v", err)
		}
		t.Config = cfg
	}
	return t, nil
}

// awaitHealthy watches the rollout of the in-flight digest. Healthy makes it the stage's digest; Degraded, or
// no health within sync.healthTimeout, fails it and — as the rollback policy says — rolls back through Git.
func (r *PromotionReconciler) awaitHealthy(ctx context.Context, s *scope, i int) (bool, error) {
	st := s.stage(i)
	stage := &s.p.Spec.Stages[i]
	h, err := r.health(ctx, s, i, st.InFlightDigest)
	if err != nil {
		return false, fmt.Errorf("assessing health: %w", err)
	}
	timeout := healthTimeout(stage)
	elapsed := s.now.Sub(st.Since.Time)
	grace := r.degradedGrace()
	switch {
	case h.Healthy:
		return r.healthy(s, i), nil
	case h.Degraded && elapsed < grace:
		// Right after a sync a workload may still show the failure of the rollout it replaces (a Deployment
		// keeps ProgressDeadlineExceeded until the controller picks up the new spec); judge it a little later.
		st.Message = fmt.Sprintf("Degraded right after the sync, judging again shortly: %s", h.Message)
		s.waitAtMost(grace - elapsed)
		return false, nil
	case h.Degraded || elapsed >= timeout:
		reason := h.Message
		if !h.Degraded {
			reason = fmt.Sprintf("not healthy after %s: %s", timeout, h.Message)
		}
		return r.unhealthy(s, i, reason), nil
	}
	st.Message = fmt.Sprintf("Waiting for health (%s of %s): %s", elapsed.Round(time.Second), timeout, h.Message)
	s.waitAtMost(min(healthPollInterval, timeout-elapsed))
	return false, nil
}

// defaultDegradedGrace is how long after a sync a Degraded workload is not yet taken as failed.
const defaultDegradedGrace = 15 * time.Second

func (r *PromotionReconciler) degradedGrace() time.Duration {
	if r.DegradedGrace > 0 {
		return r.DegradedGrace
	}
	return defaultDegradedGrace
}

// healthy makes the in-flight digest the stage's digest and starts its soak (or ends a rollback).
func (r *PromotionReconciler) healthy(s *scope, i int) bool {
	st := s.stage(i)
	st.Digest, st.HealthySince = st.InFlightDigest, &s.now
	r.metrics().SetStageDigest(s.metricsStage(i), st.Digest)
	if st.Hold != nil && st.Hold.Digest == st.InFlightDigest {
		r.metrics().ObserveTimeToRollback(s.metricsStage(i), s.since(st.Hold.Since))
		r.event(s.p, corev1.EventTypeNormal, ReasonRolledBack, "stage %s: rolled back to %s and healthy; held there until a newer digest arrives", st.Name, st.Digest)
		r.finishDigest(s, i, ferryv1.OutcomePromoted, "rolled back to this digest")
		s.setPhase(i, ferryv1.PhaseRolledBack, "Rolled back to %s (requested by %s); held until a newer digest arrives.", st.Digest, st.Hold.RequestedBy)
		return true
	}
	if c := s.p.Status.Candidate; c != nil && c.Digest == st.Digest {
		r.metrics().ObserveDiscoveredToHealthy(s.metricsStage(i), s.since(c.DiscoveredAt))
	}
	r.event(s.p, corev1.EventTypeNormal, ReasonHealthy, "stage %s: %s is healthy", st.Name, st.Digest)
	s.setPhase(i, ferryv1.PhaseSoaking, "%s is healthy; soaking before the next stage may take it.", st.Digest)
	return true
}

// soakStage holds a healthy digest for the stage's soak time before the next stage may take it; with an
// analysis, the soak is measured too.
func (r *PromotionReconciler) soakStage(ctx context.Context, s *scope, i int) (bool, error) {
	if s.p.Spec.Stages[i].Analysis != nil {
		return r.soakAnalysed(ctx, s, i)
	}
	st := s.stage(i)
	var soak time.Duration
	if g := s.p.Spec.Stages[i].Gates.Soak; g != nil {
		soak = g.Duration
	}
	if left := soak - s.now.Sub(st.HealthySince.Time); left > 0 {
		st.Message = fmt.Sprintf("%s is healthy; soaking for another %s.", st.Digest, left.Round(time.Second))
		s.waitAtMost(left)
		return false, nil
	}
	return r.promoted(s, i), nil
}

// promoted ends the in-flight digest's time in stage i as promoted: the next stage may take it.
func (r *PromotionReconciler) promoted(s *scope, i int) bool {
	st := s.stage(i)
	trimPassedRun(st.Analysis)
	r.event(s.p, corev1.EventTypeNormal, ReasonPromoted, "stage %s: promoted %s", st.Name, st.Digest)
	r.finishDigest(s, i, ferryv1.OutcomePromoted, "healthy and soaked")
	return true
}

// serviceAccount is the identity a Promotion acts with in the local cluster: its own spec.serviceAccountName, else
// the controller's default, else none (the controller's own).
func (r *PromotionReconciler) serviceAccount(p *ferryv1.Promotion) string {
	if p.Spec.ServiceAccountName != "" {
		return p.Spec.ServiceAccountName
	}
	return r.DefaultServiceAccount
}

// impersonating is cfg acting as the ServiceAccount name of namespace, as Flux does for a tenant's objects: the
// API server checks what the tenant may do, not what Ferry may do.
func impersonating(cfg *rest.Config, namespace, name string) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + namespace + ":" + name}
	return c
}
