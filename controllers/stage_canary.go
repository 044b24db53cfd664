package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/canary"
)

// Event reasons of canaries.
const (
	ReasonCanaryStarted  = "CanaryStarted"
	ReasonCanaryStep     = "CanaryStep"
	ReasonCanaryPassed   = "CanaryPassed"
	ReasonCopiesNotReady = "CanaryNotReady"
)

// canaryPollInterval is how often a canary waiting for its pods is looked at: the copies carry no stage owner
// label, so their rollouts do not wake the Promotion the way the stable workload's do.
const canaryPollInterval = 2 * time.Second

// canaryWanted reports whether stage i reaches its in-flight digest through a canary: the stage has canary steps,
// already runs a digest to compare with, and the digest in flight is a promotion, not a rollback (a rollback must
// not wait for a canary).
func canaryWanted(s *scope, i int) bool {
	st := s.stage(i)
	return s.p.Spec.Stages[i].Canary != nil && st.Digest != "" && st.Digest != st.InFlightDigest && !isRollback(st)
}

// isRollback reports whether the stage's in-flight digest is a rollback to the digest it is held on.
func isRollback(st *ferryv1.StageStatus) bool {
	return st.Hold != nil && st.Hold.Digest == st.InFlightDigest
}

// startCanary begins the canary of the in-flight digest at its first step. Git already declares the digest; the
// stage's commit is applied only once the last step passes, so the stable workload keeps the previous digest.
func (r *PromotionReconciler) startCanary(s *scope, i int) bool {
	st := s.stage(i)
	steps := s.p.Spec.Stages[i].Canary.Steps
	st.Analysis = &ferryv1.AnalysisStatus{Digest: st.InFlightDigest, Phase: ferryv1.AnalysisRunning, Run: ferryv1.RunCanary,
		Budget: missingBudget(s.p.Spec.Stages[i].Analysis)}
	r.enterStep(s, i, 0)
	r.event(s.p, corev1.EventTypeNormal, ReasonCanaryStarted, "stage %s: canary of %s at %d%% beside %s (%d steps)",
		st.Name, st.InFlightDigest, steps[0].Weight, st.Digest, len(steps))
	s.setPhase(i, ferryv1.PhaseCanary, "Canary step 1 of %d: starting %s at %d%% beside %s.", len(steps), st.InFlightDigest, steps[0].Weight, st.Digest)
	return true
}

// enterStep resets the step's clock and counts; measurements of earlier steps are kept for the record and the
// baseline comparison.
func (r *PromotionReconciler) enterStep(s *scope, i int, step int32) {
	a := s.stage(i).Analysis
	a.Step, a.Weight = &step, s.p.Spec.Stages[i].Canary.Steps[step].Weight
	a.StepRequestedAt, a.StepStartedAt, a.ApprovedAt, a.OutageSince = &s.now, nil, nil, nil
	a.Taken, a.Missing, a.Tallies = 0, 0, nil
}

// canaryStage moves a canary: copies sized for the step, measured for its pause, then the next step; the last
// step passing applies the stage's commit. A failed analysis rolls back through Git; a held one waits for a
// person. Everything it needs to resume is in status.
func (r *PromotionReconciler) canaryStage(ctx context.Context, s *scope, i int) (bool, error) {
	st := s.stage(i)
	a := st.Analysis
	if s.p.Spec.Stages[i].Canary == nil {
		// The canary was taken out of the spec while it ran: the stage goes straight to its commit.
		return r.finishCanary(ctx, s, i)
	}
	if a == nil || a.Digest != st.InFlightDigest || a.Run != ferryv1.RunCanary || a.Step == nil {
		return r.startCanary(s, i), nil
	}
	if last := int32(len(s.p.Spec.Stages[i].Canary.Steps)) - 1; *a.Step > last {
		r.enterStep(s, i, last) // steps were taken out of the spec while it ran
	}
	if done, moved, err := r.runEnded(ctx, s, i, func() (bool, error) { return r.finishCanary(ctx, s, i) }); done {
		return moved, err
	}
	ready, err := r.stepReady(ctx, s, i)
	if err != nil || !ready {
		return err == nil && a.Phase == ferryv1.AnalysisFailed, err
	}
	if err := r.routeStep(ctx, s, i); err != nil {
		return false, err
	}
	verdict, moved, err := r.analyse(ctx, s, i)
	if err != nil || verdict != stepPassed {
		return moved, err
	}
	return r.nextStep(s, i), nil
}

// stepReady ensures the step's copies and reports whether their pods are all ready; the step's clock starts then.
// Copies not ready within sync.healthTimeout fail the canary: the new digest does not even start.
func (r *PromotionReconciler) stepReady(ctx context.Context, s *scope, i int) (bool, error) {
	st := s.stage(i)
	a := st.Analysis
	status, err := r.stepCopies(ctx, s, i)
	if err != nil {
		return false, err
	}
	steps := s.p.Spec.Stages[i].Canary.Steps
	if status.Ready {
		if a.StepStartedAt == nil {
			a.StepStartedAt = &s.now
			r.event(s.p, corev1.EventTypeNormal, ReasonCanaryStep, "stage %s: canary step %d of %d at %d%% is ready; measuring",
				st.Name, *a.Step+1, len(steps), a.Weight)
		}
		return true, nil
	}
	timeout := healthTimeout(&s.p.Spec.Stages[i])
	elapsed := s.now.Sub(a.StepRequestedAt.Time)
	if elapsed >= timeout {
		a.Phase = ferryv1.AnalysisFailed
		a.Message = fmt.Sprintf("canary pods not ready after %s: %s", timeout, status.Message)
		r.event(s.p, corev1.EventTypeWarning, ReasonCopiesNotReady, "stage %s: %s", st.Name, a.Message)
		return false, nil
	}
	st.Message = fmt.Sprintf("Canary step %d of %d at %d%%: waiting for the copies' pods (%s of %s): %s",
		*a.Step+1, len(steps), a.Weight, elapsed.Round(time.Second), timeout, status.Message)
	s.waitAtMost(min(canaryPollInterval, timeout-elapsed))
	return false, nil
}

// nextStep moves the canary to its next step, or marks it passed after the last.
func (r *PromotionReconciler) nextStep(s *scope, i int) bool {
	st := s.stage(i)
	a := st.Analysis
	steps := s.p.Spec.Stages[i].Canary.Steps
	if int(*a.Step)+1 >= len(steps) {
		a.Phase, a.Message = ferryv1.AnalysisPassed, fmt.Sprintf("all %d canary steps passed", len(steps))
		return true
	}
	r.enterStep(s, i, *a.Step+1)
	s.setPhase(i, ferryv1.PhaseCanary, "Canary step %d of %d: %s at %d%%.", *a.Step+1, len(steps), st.InFlightDigest, a.Weight)
	return true
}

// finishCanary applies the stage's commit, so the stable workload takes the new digest, then removes the copies;
// the rollout is then watched for health like any sync. Applying first keeps the canary's capacity until the
// stable pods are replaced; after a crash between the two, both are run again (each is idempotent).
func (r *PromotionReconciler) finishCanary(ctx context.Context, s *scope, i int) (bool, error) {
	st := s.stage(i)
	if err := r.applyStage(ctx, s, i); err != nil {
		return false, err
	}
	if err := r.removeCopies(ctx, s, i); err != nil { // the route's weights too
		return false, err
	}
	r.event(s.p, corev1.EventTypeNormal, ReasonCanaryPassed, "stage %s: canary of %s passed; applied %s", st.Name, st.InFlightDigest, shortSHA(st.LastCommit))
	s.setPhase(i, ferryv1.PhaseProgressing, "Canary passed; applied commit %s, waiting for the rollout to become healthy.", shortSHA(st.LastCommit))
	return true, nil
}

// stepCopies returns the step's copies. Once the step has started, its copies were applied as it asks: a reading
// round only lists them (one request) and applies them again only when they are not as asked any more (deleted,
// scaled, or from another commit), rather than reading the stable Deployments and applying every copy again.
func (r *PromotionReconciler) stepCopies(ctx context.Context, s *scope, i int) (canary.Status, error) {
	if s.stage(i).Analysis.StepStartedAt != nil {
		engine, target, err := r.canaryEngine(s, i)
		if err != nil {
			return canary.Status{}, err
		}
		workloads, err := r.canaryWorkloads(ctx, s, i, target)
		if err != nil {
			return canary.Status{}, err
		}
		status, err := engine.Observe(ctx, target.Namespace, ownerLabel(target.Owner))
		if err == nil && status.Ready && copiesAsAsked(status, s, i, len(workloads)) {
			return status, nil
		}
	}
	return r.ensureCopies(ctx, s, i)
}

// copiesAsAsked reports whether the observed copies are those the step asks for: one canary (and one baseline)
// per workload, each of the step's size and from the stage's commit.
func copiesAsAsked(status canary.Status, s *scope, i, workloads int) bool {
	stage := &s.p.Spec.Stages[i]
	want := workloads
	if stage.Analysis != nil && stage.Analysis.Baseline != nil {
		want *= 2
	}
	if len(status.Copies) != want {
		return false
	}
	replicas := canary.Share(s.stage(i).Analysis.Weight, stage.Canary.Replicas)
	for _, c := range status.Copies {
		if c.Desired != replicas || c.Revision != s.stage(i).LastCommit {
			return false
		}
	}
	return true
}

// ensureCopies runs the step's canary copy (and baseline copy) of every Deployment of the stage that runs its image.
func (r *PromotionReconciler) ensureCopies(ctx context.Context, s *scope, i int) (canary.Status, error) {
	st := s.stage(i)
	stage := &s.p.Spec.Stages[i]
	target, err := r.syncTarget(s, i)
	if err != nil {
		return canary.Status{}, err
	}
	workloads, err := r.canaryWorkloads(ctx, s, i, target)
	if err != nil {
		return canary.Status{}, err
	}
	c, err := r.stageClient(target)
	if err != nil {
		return canary.Status{}, err
	}
	engine := canary.New(c)
	replicas := canary.Share(st.Analysis.Weight, stage.Canary.Replicas)
	var all canary.Status
	for _, w := range workloads {
		req := canary.Request{Namespace: target.Namespace, Owner: ownerLabel(target.Owner), Revision: st.LastCommit,
			Canary: w, Replicas: replicas}
		if stage.Analysis != nil && stage.Analysis.Baseline != nil {
			if req.Baseline, err = liveObject(ctx, c, target.Namespace, w); err != nil {
				return canary.Status{}, err
			}
		}
		status, err := engine.Ensure(ctx, req)
		if err != nil {
			return canary.Status{}, r.clusterError(s, i, fmt.Errorf("stage %s: canary copies: %w", st.Name, err))
		}
		all = mergeStatus(all, status)
	}
	return all, nil
}

func mergeStatus(all, one canary.Status) canary.Status {
	first := len(all.Copies) == 0
	all.Copies = append(all.Copies, one.Copies...)
	all.Ready = (first || all.Ready) && one.Ready
	if !one.Ready && all.Message == "" {
		all.Message = one.Message
	}
	return all
}

// liveObject reads the stable workload as it runs now: the baseline copies its pod template.
func liveObject(ctx context.Context, c client.Client, namespace string, w *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(w.GroupVersionKind())
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: w.GetName()}, live); err != nil {
		return nil, fmt.Errorf("reading the stable %s %s for the baseline: %w", w.GetKind(), w.GetName(), err)
	}
	return live, nil
}

// canaryWorkloads are the Deployments of the stage's commit that run its image, as Git declares them (on the
// new digest). A commit never changes, so they are remembered.
func (r *PromotionReconciler) canaryWorkloads(ctx context.Context, s *scope, i int, target SyncTarget) ([]*unstructured.Unstructured, error) {
	key := renderKeyOf(s, i, target)
	if objs, ok := r.canaryCache().Get(key); ok {
		return objs.([]*unstructured.Unstructured), nil
	}
	var objs []*unstructured.Unstructured
	err := r.withCheckout(ctx, s, i, func(dir string) (err error) {
		objs, err = r.Engines.Sync.Render(target, dir)
		return err
	})
	if err != nil {
		return nil, err
	}
	workloads, err := canary.Workloads(objs, s.p.Spec.Stages[i].Registry.Repository)
	if err != nil {
		return nil, stalling(ReasonInvalidSpec, fmt.Sprintf("spec.stages[%d].canary", i), "%v", err)
	}
	r.canaryCache().Add(key, workloads)
	return workloads, nil
}

// routeStep sends the step's weight of traffic to the canary through the stage's HTTPRoute, once the canary's
// pods are ready (a backend with no ready pods would answer its share with errors). It is idempotent.
func (r *PromotionReconciler) routeStep(ctx context.Context, s *scope, i int) error {
	tr := s.p.Spec.Stages[i].Canary.TrafficRouting
	if tr == nil {
		return nil
	}
	engine, target, err := r.canaryEngine(s, i)
	if err != nil {
		return err
	}
	err = engine.SetRoute(ctx, canary.RouteRequest{Namespace: target.Namespace, Owner: ownerLabel(target.Owner),
		Route: tr.HTTPRoute.Name, StableService: tr.HTTPRoute.Service, Weight: s.stage(i).Analysis.Weight})
	if err != nil {
		return stalling(ReasonInvalidSpec, fmt.Sprintf("spec.stages[%d].canary.trafficRouting.httpRoute", i), "%v", err)
	}
	return nil
}

// removeCopies gives the stage's HTTPRoute its own weights back, if the canary routed traffic, and deletes the
// canary and baseline copies, if any.
func (r *PromotionReconciler) removeCopies(ctx context.Context, s *scope, i int) error {
	engine, target, err := r.canaryEngine(s, i)
	if err != nil {
		return err
	}
	if cs := s.p.Spec.Stages[i].Canary; cs != nil && cs.TrafficRouting != nil {
		route := cs.TrafficRouting.HTTPRoute
		if err := engine.RestoreRoute(ctx, target.Namespace, ownerLabel(target.Owner), route.Name, route.Service); err != nil {
			return fmt.Errorf("stage %s: restoring HTTPRoute %s: %w", s.stage(i).Name, route.Name, err)
		}
	}
	if _, err := engine.Remove(ctx, target.Namespace, ownerLabel(target.Owner)); err != nil {
		return fmt.Errorf("stage %s: removing canary copies: %w", s.stage(i).Name, err)
	}
	return nil
}

// canaryEngine is the canary engine for stage i's cluster, and where the stage is applied.
func (r *PromotionReconciler) canaryEngine(s *scope, i int) (*canary.Engine, SyncTarget, error) {
	target, err := r.syncTarget(s, i)
	if err != nil {
		return nil, target, err
	}
	c, err := r.stageClient(target)
	if err != nil {
		return nil, target, err
	}
	return canary.New(c), target, nil
}

// applyStage applies the stage path at its last commit and remembers what it declares.
func (r *PromotionReconciler) applyStage(ctx context.Context, s *scope, i int) error {
	target, err := r.syncTarget(s, i)
	if err != nil {
		return err
	}
	st := s.stage(i)
	err = r.withStageFiles(ctx, s, i, target, func(dir string) error {
		objects, err := r.Engines.Sync.Apply(ctx, target, dir, st.LastCommit)
		if stall := externalStall(s.p, i, err); stall != nil {
			return stall
		}
		if err == nil {
			r.rendered().Add(renderKeyOf(s, i, target), objects)
		}
		return err
	})
	if err != nil {
		return err
	}
	r.event(s.p, corev1.EventTypeNormal, ReasonSynced, "stage %s: applied %s at %s to namespace %s", st.Name, s.p.Spec.Stages[i].Path, shortSHA(st.LastCommit), target.Namespace)
	return nil
}

func healthTimeout(stage *ferryv1.StageSpec) time.Duration {
	if stage.Sync.HealthTimeout != nil {
		return stage.Sync.HealthTimeout.Duration
	}
	return 10 * time.Minute
}

// canaryObjectsKept bounds the remembered canary workloads: a few per stage with a canary.
const canaryObjectsKept = 1024

func (r *PromotionReconciler) canaryCache() *lru.Cache {
	r.canaryOnce.Do(func() { r.canaryObjects = lru.New(canaryObjectsKept) })
	return r.canaryObjects
}

// stageClient is a client of the stage's cluster, shared by every stage with the same server and identity.
func (r *PromotionReconciler) stageClient(t SyncTarget) (client.Client, error) {
	open := r.Engines.StageClient
	if open == nil {
		open = func(cfg *rest.Config) (client.Client, error) { return client.New(cfg, client.Options{}) }
	}
	c, err := r.shared().stageClients.Get(clusterKey(t.Config), func() (client.Client, error) { return open(t.Config) })
	if err != nil {
		return nil, fmt.Errorf("connecting to the stage's cluster: %w", err)
	}
	return c, nil
}

// clusterKey names a cluster, the identity Ferry has there and how it trusts it — every field that changes who
// Ferry is or whom it talks to, so that two tenants' kubeconfigs never share a client; a hash, so that no
// credential is kept in it.
func clusterKey(cfg *rest.Config) string {
	return configKey(cfg.Host, cfg.APIPath, cfg.Username, cfg.Password, cfg.BearerToken, cfg.BearerTokenFile,
		cfg.Impersonate.UserName, strings.Join(cfg.Impersonate.Groups, ","), cfg.TLSClientConfig.ServerName,
		strconv.FormatBool(cfg.TLSClientConfig.Insecure), string(cfg.TLSClientConfig.CertData),
		string(cfg.TLSClientConfig.KeyData), string(cfg.TLSClientConfig.CAData))
}

// configKey hashes the parts of a connection's configuration into a key that holds no credential.
func configKey(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])
}
