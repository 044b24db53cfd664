package sync

import (
	"fmt"
	"github.com/argoproj/argo-cd/gitops-engine/pkg/health"

	"github.com/argoproj/argo-cd/gitops-engine/pkg/cache"
	"github.com/argoproj/argo-cd/gitops-engine/pkg/utils/kube"
	"github.com/argoproj/argo-cd/gitops-engine/pkg/utils/tracing"
	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Metadata Ferry writes on every object it applies.
const (
	// OwnerLabel marks an object as applied by Ferry for one stage; its value is the caller's owner string
	// (conventionally "<promotion>.<stage>"). Only objects carrying the label with the same value are ever pruned.
	OwnerLabel = "ferry.dev/stage"
	// RevisionAnnotation records the Git revision an object was last applied from.
	RevisionAnnotation = "ferry.dev/revision"
	// FieldManager is the field manager name of Ferry's server-side dry runs.
	FieldManager = "ferry"
)

// Option configures a Target.
type Option func(*Target)

// WithLogger sends gitops-engine's logs to log (they are discarded by default).
func WithLogger(log logr.Logger) Option { return func(t *Target) { t.log = log } }

// Target is one namespace of one cluster that stages are applied to. It keeps a gitops-engine cluster cache of the
// namespace (list once, then watch), so it is meant to live as long as the stages it serves; Close stops it.
// A Target is safe for concurrent use by several stages (owners); two applies for the same owner must not overlap.
type Target struct {
	config    *rest.Config
	namespace string
	log       logr.Logger
	kubectl   *kube.KubectlCmd
	cache     cache.ClusterCache
	client    client.Client
}

// NewTarget prepares a target for namespace in the cluster cfg points at. The cluster is first contacted by the
// first Apply, Health or Drift.
func NewTarget(cfg *rest.Config, namespace string, opts ...Option) (*Target, error) {
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return nil, fmt.Errorf("namespace %q: %s", namespace, errs[0])
	}
	t := &Target{config: rest.CopyConfig(cfg), namespace: namespace, log: logr.Discard()}
	if t.config.QPS == 0 && t.config.RateLimiter == nil {
		// The cache lists every kind of the namespace at start; client-go's default of 5 requests a second would
		// make that take seconds.
		t.config.QPS, t.config.Burst = 50, 100
	}
	for _, opt := range opts {
		opt(t)
	}
	c, err := client.New(t.config, client.Options{})
	if err != nil {
		return nil, fmt.Errorf("creating a client for %s: %w", cfg.Host, err)
	}
	t.client = c
	t.kubectl = &kube.KubectlCmd{Log: t.log, Tracer: tracing.NopTracer{}}
	// Listing every kind of the namespace draws deprecation warnings (v1 Endpoints) that say nothing about the
	// stage's manifests; the cache's requests are kept quiet, applies still warn.
	quiet := rest.CopyConfig(t.config)
	quiet.WarningHandler = rest.NoWarnings{}
	t.cache = cache.NewClusterCache(quiet,
		cache.SetNamespaces([]string{namespace}),
		cache.SetClusterResources(false),
		cache.SetKubectl(t.kubectl),
		cache.SetLogr(t.log),
		cache.SetPopulateResourceInfoHandler(populateOwner),
		// Ferry's role lists only the kinds stages may contain: kinds it may not list are skipped, not fatal.
		cache.SetRespectRBAC(cache.RespectRbacNormal),
		cache.SetSettings(cache.Settings{ResourceHealthOverride: noHealthOverride{}, ResourcesFilter: volatileKinds{}}),
	)
	return t, nil
}

// Namespace is the namespace the target applies to.
func (t *Target) Namespace() string { return t.namespace }

// Close stops the cache's watches.
func (t *Target) Close() { t.cache.Invalidate() }

// populateOwner remembers the owner label of every cached object and keeps full manifests only of Ferry's own
// objects, so the cache of a busy namespace stays small.
func populateOwner(un *unstructured.Unstructured, _ bool) (any, bool) {
	owner := un.GetLabels()[OwnerLabel]
	return owner, owner != ""
}

// ownedBy selects cached objects labelled for owner.
func ownedBy(owner string) func(r *cache.Resource) bool {
	return func(r *cache.Resource) bool {
		v, _ := r.Info.(string)
		return v == owner
	}
}

// validateOwner makes sure the owner can be a label value, since it is one.
func validateOwner(owner string) error {
	if owner == "" {
		return fmt.Errorf("owner: required")
	}
	if errs := validation.IsValidLabelValue(owner); len(errs) > 0 {
		return fmt.Errorf("owner %q: %s", owner, errs[0])
	}
	return nil
}

// volatileKinds keeps out of the cache the kinds that change all the time and that no stage declares in Git —
// events, endpoints, leases, controller revisions — which otherwise make up most of a busy namespace's cache.
type volatileKinds struct{}

func (volatileKinds) IsExcludedResource(group, kind, _ string) bool {
	switch group + "/" + kind {
	case "/Event", "events.k8s.io/Event", "/Endpoints", "discovery.k8s.io/EndpointSlice",
		"coordination.k8s.io/Lease", "apps/ControllerRevision":
		return true
	}
	return false
}

// noHealthOverride keeps gitops-engine's own health assessments.
type noHealthOverride struct{}

func (noHealthOverride) GetResourceHealth(*unstructured.Unstructured) (*health.HealthStatus, error) {
	return nil, nil
}
