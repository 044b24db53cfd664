package sync

import (
	"context"
	"fmt"
	"slices"
	gosync "sync"
	"time"

	"github.com/argoproj/argo-cd/gitops-engine/pkg/health"

	"github.com/argoproj/argo-cd/gitops-engine/pkg/cache"
	"github.com/argoproj/argo-cd/gitops-engine/pkg/utils/kube"
	"github.com/argoproj/argo-cd/gitops-engine/pkg/utils/tracing"
	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/discovery"
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

// Option configures a Cluster.
type Option func(*Cluster)

// WithLogger sends gitops-engine's logs to log (they are discarded by default).
func WithLogger(log logr.Logger) Option { return func(c *Cluster) { c.log = log } }

// Cluster is what Ferry keeps for one cluster it applies stages to: one client and one gitops-engine cluster
// cache. Sharing it keeps the cost of the discovery data, OpenAPI schemas and clients to one copy per cluster
// rather than one per stage namespace.
//
// The cache watches each namespaced kind once for the whole cluster when Ferry may list Deployments in every
// namespace (the ClusterRoleBinding config/rbac ships): a few dozen watches, however many stage namespaces
// there are, and no listing again when a stage reaches a new namespace. Otherwise (Ferry confined to its stage
// namespaces by RoleBindings) it watches each kind in each namespace a Target was asked for. Either way kinds Ferry
// may not list are skipped, and it keeps full manifests only of Ferry's own objects.
// It lives as long as the stages it serves; Close stops it.
type Cluster struct {
	config  *rest.Config
	log     logr.Logger
	kubectl *kube.KubectlCmd
	client  client.Client

	mu         gosync.Mutex
	namespaces []string
	// allNamespaces is decided when the cache is first made: whether it watches the whole cluster.
	allNamespaces bool
	cache         cache.ClusterCache

	// changed are called with the owner of every object of Ferry's the cache sees change. They have a lock of
	// their own: the cache calls them while holding its own, which Watch may be waiting for under mu.
	changedMu gosync.RWMutex
	changed   []func(owner string)
}

// OnOwnerChange calls fn with the owner label value of every object labelled by an Apply (OwnerLabel) that the
// cache sees created, changed or deleted — a Deployment's rollout progressing, someone editing it — so a caller
// can look at that stage at once instead of polling. fn runs on the cache's watch goroutine and must not block.
func (c *Cluster) OnOwnerChange(fn func(owner string)) {
	c.changedMu.Lock()
	defer c.changedMu.Unlock()
	c.changed = append(c.changed, fn)
}

// ownedResourceUpdated tells the OnOwnerChange callbacks about a change the cache saw.
func (c *Cluster) ownedResourceUpdated(newRes, oldRes *cache.Resource, _ map[kube.ResourceKey]*cache.Resource) {
	res := newRes
	if res == nil {
		res = oldRes
	}
	owner, _ := res.Info.(string)
	if owner == "" {
		return
	}
	c.changedMu.RLock()
	defer c.changedMu.RUnlock()
	for _, fn := range c.changed {
		fn(owner)
	}
}

// NewCluster prepares the state for the cluster cfg points at. The cluster is first contacted by the first
// Apply, Health or Drift of one of its Targets.
func NewCluster(cfg *rest.Config, opts ...Option) (*Cluster, error) {
	c := &Cluster{config: rest.CopyConfig(cfg), log: logr.Discard()}
	if c.config.QPS == 0 && c.config.RateLimiter == nil {
		// The cache lists every kind of each namespace at start; client-go's default of 5 requests a second would
		// make that take seconds.
		c.config.QPS, c.config.Burst = 50, 100
	}
	for _, opt := range opts {
		opt(c)
	}
	cl, err := client.New(c.config, client.Options{})
	if err != nil {
		return nil, fmt.Errorf("creating a client for %s: %w", cfg.Host, err)
	}
	c.client = cl
	c.kubectl = &kube.KubectlCmd{Log: c.log, Tracer: tracing.NopTracer{}}
	return c, nil
}

// Target returns the target for namespace, adding the namespace to what the cache watches when it is new (the
// cache then lists again at its next use).
func (c *Cluster) Target(namespace string) (*Target, error) {
	if err := c.Watch(namespace); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return &Target{Cluster: c, namespace: namespace, cache: c.cache}, nil
}

// Watch adds namespaces to what the cache watches, all at once. A cache confined to namespaces lists every one
// of them again at its next use after a change, so a caller that knows the namespaces it will sync to passes them
// together rather than making the cache list again for each; a cache of the whole cluster has them already.
func (c *Cluster) Watch(namespaces ...string) error {
	for _, ns := range namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("namespace %q: %s", ns, errs[0])
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	added := false
	for _, ns := range namespaces {
		if !slices.Contains(c.namespaces, ns) {
			c.namespaces = append(c.namespaces, ns)
			added = true
		}
	}
	if len(c.namespaces) > 0 && (added || c.cache == nil) {
		c.watchNamespaces()
	}
	return nil
}

// watchNamespaces makes the cache cover c.namespaces, creating it the first time. Never an empty list in
// namespaced mode: to gitops-engine that would mean every namespace.
func (c *Cluster) watchNamespaces() {
	if c.cache != nil {
		if !c.allNamespaces {
			c.cache.Invalidate(cache.SetNamespaces(slices.Clone(c.namespaces)))
		}
		return
	}
	// Listing every kind draws deprecation warnings (v1 Endpoints) that say nothing about the stage's
	// manifests; the cache's requests are kept quiet, applies still warn.
	quiet := rest.CopyConfig(c.config)
	quiet.WarningHandler = rest.NoWarnings{}
	filter := cacheFilter{clusterScoped: map[string]bool{}}
	opts := []cache.UpdateSettingsFunc{
		cache.SetClusterResources(false),
		cache.SetKubectl(c.kubectl),
		cache.SetLogr(c.log),
		cache.SetPopulateResourceInfoHandler(populateOwner),
		// Ferry's role lists only the kinds stages may contain: kinds it may not list are skipped, not fatal.
		cache.SetRespectRBAC(cache.RespectRbacNormal),
	}
	c.allNamespaces = c.mayListEverywhere()
	if c.allNamespaces {
		// gitops-engine watches cluster-scoped kinds too when it watches every namespace; stages hold only
		// namespaced objects, so those kinds are left out.
		filter.clusterScoped = clusterScopedKinds(quiet)
	} else {
		opts = append(opts, cache.SetNamespaces(slices.Clone(c.namespaces)))
	}
	opts = append(opts, cache.SetSettings(cache.Settings{ResourceHealthOverride: noHealthOverride{}, ResourcesFilter: filter}))
	c.cache = cache.NewClusterCache(quiet, opts...)
	c.cache.OnResourceUpdated(c.ownedResourceUpdated)
}

// mayListEverywhere asks the API server whether Ferry may list and watch Deployments in every namespace.
func (c *Cluster) mayListEverywhere() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, verb := range []string{"list", "watch"} {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: "apps", Resource: "deployments"},
		}}
		if err := c.client.Create(ctx, review); err != nil || !review.Status.Allowed {
			if err != nil {
				c.log.Info("cannot tell whether Ferry may watch the whole cluster; watching stage namespaces only", "error", err.Error())
			}
			return false
		}
	}
	return true
}

// clusterScopedKinds lists the cluster-scoped kinds the API server serves ("group/Kind"). A partial discovery
// failure (an aggregated API that is down) still returns what was found.
func clusterScopedKinds(cfg *rest.Config) map[string]bool {
	kinds := map[string]bool{}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return kinds
	}
	lists, _ := dc.ServerPreferredResources()
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range list.APIResources {
			if !r.Namespaced {
				kinds[gv.Group+"/"+r.Kind] = true
			}
		}
	}
	return kinds
}

// Close stops the cache's watches.
func (c *Cluster) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cache != nil {
		c.cache.Invalidate()
	}
}

// Target is one namespace of a Cluster that stages are applied to. It is safe for concurrent use by several
// stages (owners); two applies for the same owner must not overlap.
type Target struct {
	*Cluster
	namespace string
	cache     cache.ClusterCache
	// own is set when the Target made its Cluster alone (NewTarget), so that Close stops it.
	own bool
}

// NewTarget prepares a target for namespace with a Cluster of its own, for callers that apply to one namespace.
func NewTarget(cfg *rest.Config, namespace string, opts ...Option) (*Target, error) {
	c, err := NewCluster(cfg, opts...)
	if err != nil {
		return nil, err
	}
	t, err := c.Target(namespace)
	if err != nil {
		return nil, err
	}
	t.own = true
	return t, nil
}

// Namespace is the namespace the target applies to.
func (t *Target) Namespace() string { return t.namespace }

// Close stops the cache of a Target made by NewTarget; Targets of a shared Cluster leave it running.
func (t *Target) Close() {
	if t.own {
		t.Cluster.Close()
	}
}

// populateOwner remembers the owner label of every cached object and keeps no manifest: Apply reads the objects
// it needs fresh from the API server, so the cache holds a few hundred bytes per object however big it is.
func populateOwner(un *unstructured.Unstructured, _ bool) (any, bool) {
	return un.GetLabels()[OwnerLabel], false
}

// ownedBy selects cached objects labelled for owner in namespace. A cache of the whole cluster also holds the
// owner's objects in other namespaces (where a stage used to sync, say); those are never touched from here.
func ownedBy(owner, namespace string) func(r *cache.Resource) bool {
	return func(r *cache.Resource) bool {
		v, _ := r.Info.(string)
		return v == owner && r.Ref.Namespace == namespace
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

// cacheFilter keeps out of the cache what no stage declares: cluster-scoped kinds, Ferry's own Promotions, and the
// kinds that change all the time — events, endpoints, leases, controller revisions — which otherwise make up most
// of a busy namespace's cache.
type cacheFilter struct {
	clusterScoped map[string]bool
}

func (f cacheFilter) IsExcludedResource(group, kind, _ string) bool {
	switch group + "/" + kind {
	case "/Event", "events.k8s.io/Event", "/Endpoints", "discovery.k8s.io/EndpointSlice",
		"coordination.k8s.io/Lease", "apps/ControllerRevision":
		return true
	}
	return group == "ferry.dev" || f.clusterScoped[group+"/"+kind]
}

// noHealthOverride keeps gitops-engine's own health assessments.
type noHealthOverride struct{}

func (noHealthOverride) GetResourceHealth(*unstructured.Unstructured) (*health.HealthStatus, error) {
	return nil, nil
}
