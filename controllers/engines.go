package controllers

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/analysis"
	"github.com/ferrycd/ferry/internal/gitops"
	"github.com/ferrycd/ferry/internal/idle"
	"github.com/ferrycd/ferry/internal/scm"
	"github.com/ferrycd/ferry/internal/sync"
)

// Engines are the side-effect owners the pipeline drives. Each knows nothing of Promotions; the reconciler turns
// a Promotion into their plain inputs. Registry and signature work needs no long-lived state and is created per
// reconcile from the Promotion's credentials.
type Engines struct {
	// Git pins digests in Git; its workspace cache is shared by every Promotion.
	Git *gitops.Engine
	// NewSCM opens a forge's pull-request API for a stage approved by pull request (scm.New by default).
	NewSCM func(scm.Config) (scm.Provider, error)
	// Sync applies a stage's Git path to its cluster and reports health. Nil leaves promoted stages at Syncing.
	Sync Syncer
	// WorkDir holds temporary checkouts of stage paths for Sync.
	WorkDir string
	// Prometheus opens a Prometheus server for analyses (analysis.NewPrometheus by default).
	Prometheus func(analysis.Config) (analysis.Querier, error)
	// StageClient opens a client of a stage's cluster for canary copies (client.New by default).
	StageClient func(*rest.Config) (client.Client, error)
}

// SyncTarget is where a stage is applied.
type SyncTarget struct {
	// Config reaches the stage's cluster: the local one, or a remote one from a kubeconfig Secret.
	Config *rest.Config
	// Namespace receives the stage's resources.
	Namespace string
	// Owner labels what Ferry applied for this stage ("<namespace>.<promotion>.<stage>"), so prune touches
	// nothing else.
	Owner  string
	Prune  bool
	Format ferryv1.ManifestFormat

	// Mode is who applies the stage (empty or Ferry: the Syncer itself). In the external modes, External names
	// the object that syncs the stage, in the cluster Config reaches, and Revision is the commit the stage is
	// pinned at: the external controller must report that commit applied, not an older one.
	Mode     ferryv1.SyncMode
	External ExternalRef
	Revision string

	// Helm says how a HelmValues stage's chart is rendered (nil for the other formats), Release is its default
	// release name ("<promotion>-<stage>"), and Field the stage's spec path ("spec.stages[i]"), which a chart that
	// does not render stalls on.
	Helm    *ferryv1.HelmValuesSpec
	Release string
	Field   string
}

// ExternalRef names the Argo CD Application or Flux object that syncs a stage.
type ExternalRef struct {
	// Kind is Application (Argo CD), Kustomization or HelmRelease (Flux).
	Kind, Namespace, Name string
}

// syncedByFerry says whether Ferry applies the target itself (mode Ferry) rather than Argo CD or Flux.
func (t SyncTarget) syncedByFerry() bool { return t.Mode == "" || t.Mode == ferryv1.SyncFerry }

func (e ExternalRef) String() string { return e.Kind + " " + e.Namespace + "/" + e.Name }

// Health is how a synced stage looks.
type Health struct {
	// Healthy: every resource is healthy. Degraded: one has failed and will not recover on its own.
	Healthy, Degraded bool
	// Message names the least healthy resource and why.
	Message string
	// Drift lists workloads that do not run the declared image, one sentence each.
	Drift []string
}

// Syncer applies rendered stage files and observes health.
type Syncer interface {
	// Apply renders the files in dir and applies them, and names the objects applied (as Objects does);
	// applying the same revision twice changes nothing.
	Apply(ctx context.Context, t SyncTarget, dir, revision string) ([]sync.ObjectRef, error)
	// Objects renders the files in dir and names the objects they declare, as applied to t.Namespace.
	Objects(t SyncTarget, dir string) ([]sync.ObjectRef, error)
	// Render renders the files in dir into the objects they declare, as Apply would apply them.
	Render(t SyncTarget, dir string) ([]*unstructured.Unstructured, error)
	// Health assesses the objects, and whether their workloads run declaredImage ("repository@sha256:…").
	Health(ctx context.Context, t SyncTarget, objects []sync.ObjectRef, declaredImage string) (Health, error)
	// Expect announces targets that stages will sync to, so that a cluster's watches of their namespaces start
	// together rather than one namespace at a time.
	Expect(targets []SyncTarget) error
	// OnChange calls fn with the SyncTarget.Owner of applied objects seen to change in a cluster (a rollout
	// progressing, an edit by hand), so that the stage is looked at at once rather than at its next poll. fn must
	// not block.
	OnChange(fn func(owner string))
	// Forget says the stage labelled owner is gone (its Promotion deleted), so that what is kept for its cluster
	// can be let go of once no other stage uses it.
	Forget(owner string)
}

// Default waits between checks of things that change outside Ferry. A rollout's progress also wakes its
// Promotion at once (Syncer.OnChange), and a forge event a Promotion waiting on a pull request (ForgeChanged), so
// the polls are only the fallback.
const (
	DefaultApprovalPollInterval = 30 * time.Second
	healthPollInterval          = 15 * time.Second
)

// approvalPoll is how often an open pull request, or an analysis held for a person, is looked at without a forge
// event or an annotation waking it.
func (r *PromotionReconciler) approvalPoll() time.Duration {
	if r.ApprovalPollInterval > 0 {
		return r.ApprovalPollInterval
	}
	return DefaultApprovalPollInterval
}

// clientIdleTTL is how long a shared Prometheus or stage-cluster client is kept unused: a deleted Promotion or a
// rotated credential leaves its client behind that long, no longer.
const clientIdleTTL = 30 * time.Minute

// shared returns the reconciler's pools of shared clients, made on first use.
func (r *PromotionReconciler) shared() *PromotionReconciler {
	r.sharedOnce.Do(func() {
		r.queriers = idle.New[analysis.Querier](clientIdleTTL, nil, nil)
		r.stageClients = idle.New[client.Client](clientIdleTTL, nil, nil)
	})
	return r
}
