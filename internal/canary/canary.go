package canary

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Labels on the copies.
const (
	// TrackLabel is on a copy's metadata, selector and pod template; its value is TrackCanary or TrackBaseline.
	TrackLabel = "ferry.dev/track"
	// CanaryOfLabel holds the stage owner (the value of sync.OwnerLabel on the stable Deployment) on a copy's
	// metadata; Observe and Remove select copies by it.
	CanaryOfLabel = "ferry.dev/canary-of"
	TrackCanary   = "canary"
	TrackBaseline = "baseline"
)

// FieldManager is the server-side apply field manager of the copies.
const FieldManager = "ferry-canary"

var deploymentGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}

// Request asks for the copies of one Deployment of a stage.
type Request struct {
	Namespace string
	// Owner is the stage owner label value (sync.OwnerLabel); it becomes CanaryOfLabel.
	Owner string
	// Revision is the Git commit the canary comes from. Both copies carry it in sync.RevisionAnnotation: it names
	// the canary run they belong to (the baseline runs the previous pod template, but for this run).
	Revision string
	// Canary is the Deployment as Git declares it at the new commit: it already runs the new digest. Baseline is the
	// same Deployment as it runs now in the cluster (read live, previous digest), or nil for no baseline.
	Canary, Baseline *unstructured.Unstructured
	// Replicas is the size of each copy; canary and baseline get the same. At least 1.
	Replicas int32
}

// Copy is one copy as the API server reports it.
type Copy struct {
	Name, Track string
	// Desired is spec.replicas; Ready, Updated and Available come from the Deployment's status.
	Desired, Ready, Updated, Available int32
	// Image is what the copy's pod template runs: its containers' images, init containers first, comma-separated
	// (a single image for the usual one-container Deployment).
	Image string
	// Revision is the copy's sync.RevisionAnnotation: the commit of the canary run it belongs to.
	Revision string
}

// Status is the state of a set of copies.
type Status struct {
	Copies []Copy
	// Ready is true when there is at least one copy and every copy has all its desired replicas updated and
	// ready, as observed by the Deployment controller at the copy's current generation.
	Ready   bool
	Message string
}

// Engine applies copies to one cluster.
type Engine struct {
	c client.Client
}

// New returns an Engine that works through c. c must read Deployments live, not from a cache: Ensure reads the
// stable Deployment's uid right before it refers to it. (A controller-runtime manager's client reads unstructured
// objects live unless told otherwise.)
func New(c client.Client) *Engine { return &Engine{c: c} }

// Ensure creates or updates the copies of req (see the package documentation) and returns their status. It
// changes nothing when they are already as requested. A baseline copy of the same Deployment left by an earlier
// request that asked for one is deleted when req has no Baseline.
func (e *Engine) Ensure(ctx context.Context, req Request) (Status, error) {
	if err := req.validate(); err != nil {
		return Status{}, err
	}
	stable, err := e.stable(ctx, req.Namespace, req.Canary.GetName())
	if err != nil {
		return Status{}, err
	}
	copies, err := buildCopies(req, stable)
	if err != nil {
		return Status{}, err
	}
	for _, cp := range copies {
		if err := e.apply(ctx, cp); err != nil {
			return Status{}, fmt.Errorf("applying %s: %w", cp.GetName(), err)
		}
	}
	if err := e.deleteStale(ctx, req, stable, copies); err != nil {
		return Status{}, err
	}
	// apply left the API server's answer, status included, in each copy.
	return statusOf(copies), nil
}

// Observe reports the copies of owner in namespace as they are, without changing them: the status of a canary after
// a restart of the controller.
func (e *Engine) Observe(ctx context.Context, namespace, owner string) (Status, error) {
	copies, err := e.list(ctx, namespace, owner)
	if err != nil {
		return Status{}, err
	}
	return statusOf(copies), nil
}

// Remove deletes every copy of owner in namespace and reports whether there were any. Background propagation: the
// copy goes at once, the garbage collector removes its ReplicaSets and pods after it. Removing nothing is not an
// error.
func (e *Engine) Remove(ctx context.Context, namespace, owner string) (removed bool, err error) {
	copies, err := e.list(ctx, namespace, owner)
	if err != nil {
		return false, err
	}
	var errs []error
	for _, cp := range copies {
		gone, err := e.delete(ctx, cp)
		removed = removed || gone
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// Share returns the canary replicas for a step's weight (percent, 1..100) of total replicas: ceil(weight*total/100),
// at least 1, so that even the smallest step sends the new digest some traffic. Weights outside 1..100 are clamped.
func Share(weight, total int32) int32 {
	weight = min(max(weight, 1), 100)
	total = max(total, 1)
	share := (int64(weight)*int64(total) + 99) / 100
	return int32(max(share, 1))
}

// validate checks what the API server would otherwise reject later or, worse, accept wrongly.
func (r Request) validate() error {
	if errs := validation.IsDNS1123Label(r.Namespace); len(errs) > 0 {
		return fmt.Errorf("namespace %q: %s", r.Namespace, errs[0])
	}
	if r.Owner == "" {
		return errors.New("owner: required")
	}
	if errs := validation.IsValidLabelValue(r.Owner); len(errs) > 0 {
		return fmt.Errorf("owner %q: %s", r.Owner, errs[0])
	}
	if r.Replicas < 1 {
		return fmt.Errorf("replicas: %d, must be at least 1 (Remove the copies to stop the canary)", r.Replicas)
	}
	if err := checkSource("canary", r.Canary); err != nil {
		return err
	}
	if r.Baseline == nil {
		return nil
	}
	if err := checkSource("baseline", r.Baseline); err != nil {
		return err
	}
	if r.Baseline.GetName() != r.Canary.GetName() {
		return fmt.Errorf("baseline: Deployment %q is not the canary's Deployment %q", r.Baseline.GetName(), r.Canary.GetName())
	}
	return nil
}

// checkSource requires a named apps/v1 Deployment that is not itself a copy.
func checkSource(field string, obj *unstructured.Unstructured) error {
	if obj == nil {
		return fmt.Errorf("%s: required", field)
	}
	if gvk := obj.GroupVersionKind(); gvk != deploymentGVK {
		return fmt.Errorf("%s: %s %q is not an apps/v1 Deployment", field, gvk.Kind, obj.GetName())
	}
	if obj.GetName() == "" {
		return fmt.Errorf("%s: the Deployment has no name", field)
	}
	if track, ok := obj.GetLabels()[TrackLabel]; ok {
		return fmt.Errorf("%s: Deployment %q is itself a %s copy (label %s)", field, obj.GetName(), track, TrackLabel)
	}
	return nil
}

// stable reads the stable Deployment the copies run beside.
func (e *Engine) stable(ctx context.Context, namespace, name string) (*unstructured.Unstructured, error) {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(deploymentGVK)
	err := e.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("no Deployment %q runs in namespace %s to run a canary beside: the stage must be synced before its canary starts", name, namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the stable Deployment %s/%s: %w", namespace, name, err)
	}
	return obj, nil
}

// apply server-side applies a copy, taking over fields another manager may have set on it (someone scaling it by
// hand), and leaves the API server's answer in obj.
func (e *Engine) apply(ctx context.Context, obj *unstructured.Unstructured) error {
	return e.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj),
		client.FieldOwner(FieldManager), client.ForceOwnership)
}

// list returns the copies of owner in namespace.
func (e *Engine) list(ctx context.Context, namespace, owner string) ([]*unstructured.Unstructured, error) {
	if owner == "" {
		// An empty value would select every copy of every stage in the namespace.
		return nil, errors.New("owner: required")
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(deploymentGVK.GroupVersion().WithKind("DeploymentList"))
	err := e.c.List(ctx, list, client.InNamespace(namespace),
		client.MatchingLabels{CanaryOfLabel: owner}, client.HasLabels{TrackLabel})
	if err != nil {
		return nil, fmt.Errorf("listing the canary copies of %s in %s: %w", owner, namespace, err)
	}
	out := make([]*unstructured.Unstructured, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}

// deleteStale deletes the copies of the stable Deployment that req no longer asks for: the baseline of an earlier
// request, when this one has none. Copies of the stage's other Deployments are left alone.
func (e *Engine) deleteStale(ctx context.Context, req Request, stable *unstructured.Unstructured, keep []*unstructured.Unstructured) error {
	copies, err := e.list(ctx, req.Namespace, req.Owner)
	if err != nil {
		return err
	}
	var errs []error
	for _, cp := range copies {
		if !ownedBy(cp, stable) || slices.ContainsFunc(keep, func(k *unstructured.Unstructured) bool { return k.GetName() == cp.GetName() }) {
			continue
		}
		_, err := e.delete(ctx, cp)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// delete deletes one copy, reporting false when it was gone already.
func (e *Engine) delete(ctx context.Context, obj *unstructured.Unstructured) (bool, error) {
	err := e.c.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("deleting %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return true, nil
}

// ownedBy tells whether obj has an ownerReference to owner.
func ownedBy(obj, owner *unstructured.Unstructured) bool {
	return slices.ContainsFunc(obj.GetOwnerReferences(), func(ref metav1.OwnerReference) bool { return ref.UID == owner.GetUID() })
}
