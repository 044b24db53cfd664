package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/argoproj/argo-cd/gitops-engine/pkg/cache"
	gesync "github.com/argoproj/argo-cd/gitops-engine/pkg/sync"
	"github.com/argoproj/argo-cd/gitops-engine/pkg/sync/common"
	"github.com/argoproj/argo-cd/gitops-engine/pkg/utils/kube"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ApplyRequest is one sync of a stage: its rendered objects at a revision.
type ApplyRequest struct {
	// Owner identifies the stage; it becomes the value of OwnerLabel, so it must be a valid label value.
	Owner string
	// Revision is recorded in RevisionAnnotation on every object (a Git commit, for instance).
	Revision string
	// Objects are the rendered manifests. They are not modified.
	Objects []*unstructured.Unstructured
	// Prune deletes objects labelled for Owner that are no longer among Objects. Without it they are reported
	// as PruneSkipped.
	Prune bool
	// Adopt lets the apply take over existing objects that carry no OwnerLabel. Without it such an object is an
	// error and nothing is applied. Objects labelled for another owner are never taken over.
	Adopt bool
}

// Action is what an apply did to one object.
type Action string

// Actions.
const (
	ActionCreated      Action = "Created"
	ActionConfigured   Action = "Configured"
	ActionUnchanged    Action = "Unchanged"
	ActionPruned       Action = "Pruned"
	ActionPruneSkipped Action = "PruneSkipped"
	ActionFailed       Action = "Failed"
)

// ObjectResult is the outcome for one object.
type ObjectResult struct {
	Ref     ObjectRef
	Action  Action
	Message string
}

// ApplyResult is the outcome of an apply.
type ApplyResult struct {
	// Changed is false when the cluster already matched the request: nothing was written.
	Changed bool
	// Objects lists every declared object and every object that was (or would have been) pruned, in a stable order.
	Objects []ObjectResult
	// Declared are the declared objects as applied (namespace filled in); pass them to Health and Drift.
	Declared []ObjectRef
}

// Apply syncs the objects into the target namespace with gitops-engine. Everything is checked before anything is
// written: that each kind is served and namespaced, that no object names another namespace, that no existing
// object belongs to another owner (or to none, unless Adopt), and a server-side dry run of every object. When the
// live objects already match, Apply writes nothing and reports Changed false.
func (t *Target) Apply(ctx context.Context, req ApplyRequest) (*ApplyResult, error) {
	if err := validateOwner(req.Owner); err != nil {
		return nil, err
	}
	if req.Revision == "" {
		return nil, errors.New("revision: required")
	}
	if err := t.cache.EnsureSynced(); err != nil {
		return nil, fmt.Errorf("reading namespace %s: %w", t.namespace, err)
	}
	targets, err := t.prepare(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("nothing was applied: %w", err)
	}
	live, err := t.liveObjects(ctx, targets, req.Owner)
	if err != nil {
		return nil, err
	}
	if err := checkOwnership(targets, live, req); err != nil {
		return nil, fmt.Errorf("nothing was applied: %w", err)
	}
	refs := refsByKey(targets, live)
	reconciled := gesync.Reconcile(targets, live, t.namespace, t.cache)
	res := &ApplyResult{Declared: declared(targets)}
	if unchanged, results := t.unchanged(reconciled, refs, req.Prune); unchanged {
		res.Objects = results
		return res, nil
	}
	if err := t.dryRun(ctx, targets); err != nil {
		return nil, fmt.Errorf("server-side dry run failed, nothing was applied: %w", err)
	}
	syncResults, err := t.sync(ctx, req, reconciled)
	res.Objects = objectResults(syncResults, refs)
	res.Changed = anyChange(res.Objects)
	if res.Changed {
		t.awaitOwnWrites(ctx, live, res.Objects)
	}
	return res, err
}

// prepare copies the objects into the target namespace and stamps them with owner and revision.
func (t *Target) prepare(ctx context.Context, req ApplyRequest) ([]*unstructured.Unstructured, error) {
	var errs []error
	targets := make([]*unstructured.Unstructured, 0, len(req.Objects))
	for _, o := range req.Objects {
		obj := o.DeepCopy()
		if err := t.checkScope(ctx, obj); err != nil {
			errs = append(errs, err)
			continue
		}
		obj.SetNamespace(t.namespace)
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[OwnerLabel] = req.Owner
		obj.SetLabels(labels)
		annotations := obj.GetAnnotations()
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[RevisionAnnotation] = req.Revision
		obj.SetAnnotations(annotations)
		targets = append(targets, obj)
	}
	if err := checkDuplicates(targets); err != nil {
		errs = append(errs, err)
	}
	return targets, errors.Join(errs...)
}

// checkScope refuses kinds the cluster does not serve, cluster-scoped kinds, and objects naming another
// namespace. The API server's discovery is the authority; when it knows a kind the cache has not seen (a CRD
// installed since the cache listed the namespace), the cache is rebuilt so that the kind is watched.
func (t *Target) checkScope(ctx context.Context, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	mapping, err := t.client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("%s: kind %s is not served by the cluster (is its CustomResourceDefinition installed?): %w",
			describe(obj), gvk, err)
	}
	if mapping.Scope.Name() != "namespace" {
		return fmt.Errorf("%s is cluster-scoped: a stage applies only namespaced objects, into namespace %q",
			describe(obj), t.namespace)
	}
	if ns := obj.GetNamespace(); ns != "" && ns != t.namespace {
		return fmt.Errorf("%s declares namespace %q, but the stage applies to namespace %q", describe(obj), ns, t.namespace)
	}
	if _, err := t.cache.IsNamespaced(gvk.GroupKind()); err != nil {
		t.cache.Invalidate()
		if err := t.cache.EnsureSynced(); err != nil {
			return fmt.Errorf("re-reading namespace %s after a new kind %s appeared: %w", t.namespace, gvk, err)
		}
	}
	return ctx.Err()
}

// liveObjects reads fresh from the API server every declared object that exists, and every other object the
// cache knows as the owner's in this namespace (the prune candidates). The cache keeps no manifests, only who owns
// what at which resource version, so its memory does not grow with the stages' objects; and a watch may lag a
// change made a moment ago (a `kubectl set image`): deciding "nothing to do" or "not ours" from a stale copy
// would skip a needed apply.
func (t *Target) liveObjects(ctx context.Context, targets []*unstructured.Unstructured, owner string) (map[kube.ResourceKey]*unstructured.Unstructured, error) {
	live := map[kube.ResourceKey]*unstructured.Unstructured{}
	declared := map[kube.ResourceKey]bool{}
	read := func(key kube.ResourceKey, gvk schema.GroupVersionKind, name string) error {
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(gvk)
		err := t.client.Get(ctx, client.ObjectKey{Namespace: t.namespace, Name: name}, obj)
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return fmt.Errorf("reading %s %s/%s: %w", gvk.Kind, t.namespace, name, err)
		}
		live[key] = obj
		return nil
	}
	for _, tgt := range targets {
		key := kube.GetResourceKey(tgt)
		declared[key] = true
		if err := read(key, tgt.GroupVersionKind(), tgt.GetName()); err != nil {
			return nil, err
		}
	}
	for key, r := range t.cache.FindResources(t.namespace, ownedBy(owner, t.namespace)) {
		// Objects another object owns (a ReplicaSet of a Deployment) go with their owner, never on their own.
		if declared[key] || len(r.OwnerRefs) > 0 {
			continue
		}
		if err := read(key, r.Ref.GroupVersionKind(), r.Ref.Name); err != nil {
			return nil, err
		}
	}
	return live, nil
}

// cacheLag bounds how long Apply waits for its own writes to reach the cache.
const cacheLag = 10 * time.Second

// awaitOwnWrites waits (briefly, best effort) until the cache shows what this apply wrote: every declared object
// at a resourceVersion other than the one it had before the apply (or present at all, if it is new) and every
// pruned object gone. The next apply then finds its prune candidates in the cache even when it follows at once.
// It does not wait for the exact version written: a status update right after the write (the deployment
// controller's, say) moves the object past it, and the cache may never show that version.
func (t *Target) awaitOwnWrites(ctx context.Context, live map[kube.ResourceKey]*unstructured.Unstructured, results []ObjectResult) {
	want := map[kube.ResourceKey]cacheWant{}
	for _, r := range results {
		key := kube.NewResourceKey(r.Ref.Group, r.Ref.Kind, r.Ref.Namespace, r.Ref.Name)
		switch r.Action {
		case ActionPruned:
			want[key] = cacheWant{gone: true}
		case ActionCreated, ActionConfigured:
			w := cacheWant{}
			if l := live[key]; l != nil {
				w.notVersion = l.GetResourceVersion()
			}
			want[key] = w
		}
	}
	deadline := time.NewTimer(cacheLag)
	defer deadline.Stop()
	ticker := time.NewTicker(25 * time.Millisecond)
	defer ticker.Stop()
	for !t.cacheShows(want) {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			t.log.Info("cache did not catch up with the apply", "namespace", t.namespace, "after", cacheLag)
			return
		case <-ticker.C:
		}
	}
}

// cacheWant is what the cache must show of one object after an apply.
type cacheWant struct {
	gone       bool   // pruned: absent
	notVersion string // updated: present at any version but this one ("" for a new object: just present)
}

func (t *Target) cacheShows(want map[kube.ResourceKey]cacheWant) bool {
	found := t.cache.FindResources(t.namespace, func(r *cache.Resource) bool {
		_, ok := want[r.ResourceKey()]
		return ok
	})
	for key, w := range want {
		r := found[key]
		if w.gone != (r == nil) || (r != nil && w.notVersion != "" && r.ResourceVersion == w.notVersion) {
			return false
		}
	}
	return true
}

// checkOwnership refuses to overwrite objects that are not the owner's.
func checkOwnership(targets []*unstructured.Unstructured, live map[kube.ResourceKey]*unstructured.Unstructured, req ApplyRequest) error {
	var errs []error
	for _, tgt := range targets {
		l := live[kube.GetResourceKey(tgt)]
		if l == nil {
			continue
		}
		switch owner := l.GetLabels()[OwnerLabel]; owner {
		case req.Owner:
		case "":
			if !req.Adopt {
				errs = append(errs, fmt.Errorf("%s already exists and was not applied by Ferry (adopt it to take it over)", describe(tgt)))
			}
		default:
			errs = append(errs, fmt.Errorf("%s belongs to stage %q (label %s)", describe(tgt), owner, OwnerLabel))
		}
	}
	return errors.Join(errs...)
}

// unchanged diffs every declared object with its live copy (gitops-engine's three-way diff). When nothing differs
// and nothing is left to prune, the apply is a no-op and the per-object results say so.
func (t *Target) unchanged(r gesync.ReconciliationResult, refs map[kube.ResourceKey]ObjectRef, prune bool) (bool, []ObjectResult) {
	if len(r.Hooks) > 0 {
		return false, nil
	}
	var results []ObjectResult
	for i, target := range r.Target {
		liveObj := r.Live[i]
		switch {
		case target == nil && prune:
			return false, nil
		case target == nil:
			results = append(results, ObjectResult{Ref: refs[kube.GetResourceKey(liveObj)], Action: ActionPruneSkipped, Message: "ignored (requires pruning)"})
		case liveObj == nil:
			return false, nil
		default:
			if modified, err := diffObjects(target, liveObj, t.log); err != nil || modified {
				return false, nil
			}
			results = append(results, ObjectResult{Ref: refs[kube.GetResourceKey(target)], Action: ActionUnchanged, Message: "unchanged"})
		}
	}
	sortResults(results)
	return true, results
}

// dryRun sends every object to the API server as a server-side apply dry run with strict field validation, so
// that invalid values, unknown fields, immutable-field changes and admission refusals surface before any write.
func (t *Target) dryRun(ctx context.Context, targets []*unstructured.Unstructured) error {
	var errs []error
	for _, obj := range targets {
		data, err := json.Marshal(obj.Object)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: encoding: %w", describe(obj), err))
			continue
		}
		err = t.client.Patch(ctx, obj.DeepCopy(), client.RawPatch(types.ApplyPatchType, data),
			client.DryRunAll, client.ForceOwnership, client.FieldOwner(FieldManager), client.FieldValidation("Strict"))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", describe(obj), err))
		}
	}
	return errors.Join(errs...)
}

// backgroundDeletion deletes a pruned object at once and lets the garbage collector remove its dependents, like
// kubectl delete does; foreground deletion would leave the object visible until its dependents are gone.
var backgroundDeletion = metav1.DeletePropagationBackground

// syncPoll is how often a multi-step sync (hooks, waves) is advanced.
const syncPoll = 250 * time.Millisecond

// sync runs gitops-engine's sync to completion.
func (t *Target) sync(ctx context.Context, req ApplyRequest, r gesync.ReconciliationResult) ([]common.ResourceSyncResult, error) {
	// kubectl's client-side validation is off: it fetches and parses the API server's OpenAPI document on every
	// apply (most of a sync's memory and time), and dryRun has already had the server validate every object
	// strictly.
	syncCtx, cleanup, err := gesync.NewSyncContext(req.Revision, r, t.config, t.config, t.kubectl, t.namespace,
		gesync.WithPrune(req.Prune), gesync.WithPrunePropagationPolicy(&backgroundDeletion), gesync.WithLogr(t.log),
		gesync.WithManifestValidation(false))
	if err != nil {
		return nil, fmt.Errorf("starting sync: %w", err)
	}
	defer cleanup()
	ticker := time.NewTicker(syncPoll)
	defer ticker.Stop()
	for {
		syncCtx.Sync()
		phase, message, results := syncCtx.GetState()
		if phase.Completed() {
			if !phase.Successful() {
				return results, fmt.Errorf("sync of revision %s into namespace %s: %s%s", req.Revision, t.namespace, message, failures(results))
			}
			return results, nil
		}
		select {
		case <-ctx.Done():
			syncCtx.Terminate()
			_, _, results = syncCtx.GetState()
			return results, fmt.Errorf("sync of revision %s into namespace %s: %w", req.Revision, t.namespace, ctx.Err())
		case <-ticker.C:
		}
	}
}

// failures lists the objects that failed, for the error message.
func failures(results []common.ResourceSyncResult) string {
	var b strings.Builder
	for _, r := range results {
		if r.Status == common.ResultCodeSyncFailed {
			fmt.Fprintf(&b, "; %s: %s", r.ResourceKey.String(), r.Message)
		}
	}
	return b.String()
}

// objectResults turns gitops-engine's results into actions. kubectl apply says "created", "configured" or
// "unchanged" at the end of its message.
func objectResults(results []common.ResourceSyncResult, refs map[kube.ResourceKey]ObjectRef) []ObjectResult {
	out := make([]ObjectResult, 0, len(results))
	for _, r := range results {
		res := ObjectResult{Ref: refs[r.ResourceKey], Message: r.Message}
		if res.Ref.Name == "" {
			res.Ref = ObjectRef{Group: r.ResourceKey.Group, Version: r.Version, Kind: r.ResourceKey.Kind, Namespace: r.ResourceKey.Namespace, Name: r.ResourceKey.Name}
		}
		switch {
		case r.Status == common.ResultCodeSyncFailed:
			res.Action = ActionFailed
		case r.Status == common.ResultCodePruned:
			res.Action = ActionPruned
		case r.Status == common.ResultCodePruneSkipped:
			res.Action = ActionPruneSkipped
		case strings.HasSuffix(r.Message, " unchanged"):
			res.Action = ActionUnchanged
		case strings.HasSuffix(r.Message, " created"):
			res.Action = ActionCreated
		default:
			res.Action = ActionConfigured
		}
		out = append(out, res)
	}
	sortResults(out)
	return out
}

func anyChange(results []ObjectResult) bool {
	for _, r := range results {
		switch r.Action {
		case ActionCreated, ActionConfigured, ActionPruned:
			return true
		}
	}
	return false
}

func sortResults(results []ObjectResult) {
	sort.Slice(results, func(i, j int) bool { return results[i].Ref.String() < results[j].Ref.String() })
}

// refsByKey remembers each object's full reference (with version), which gitops-engine's keys lack.
func refsByKey(targets []*unstructured.Unstructured, live map[kube.ResourceKey]*unstructured.Unstructured) map[kube.ResourceKey]ObjectRef {
	refs := make(map[kube.ResourceKey]ObjectRef, len(targets)+len(live))
	for key, l := range live {
		refs[key] = RefOf(l)
	}
	for _, tgt := range targets {
		refs[kube.GetResourceKey(tgt)] = RefOf(tgt)
	}
	return refs
}

func declared(targets []*unstructured.Unstructured) []ObjectRef {
	refs := make([]ObjectRef, 0, len(targets))
	for _, tgt := range targets {
		refs = append(refs, RefOf(tgt))
	}
	return refs
}
