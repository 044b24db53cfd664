package controllers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	gosync "sync"
	"time"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/sync"
)

// Ferry reads, watches and annotates the Kustomizations its stages name, and annotates their GitRepositories; with
// a tenant's ServiceAccount (spec.serviceAccountName) that account needs the same verbs in those namespaces.
// +kubebuilder:rbac:groups=kustomize.toolkit.fluxcd.io,resources=kustomizations,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=source.toolkit.fluxcd.io,resources=gitrepositories,verbs=patch

// Flux's resources, read without Flux's Go API modules: those of the releases Ferry is tested with
// (kustomize-controller v1.9.6) require k8s.io/apimachinery v0.36.4, newer than Ferry's pinned v0.36.1. The few
// fields Ferry reads (fluxKustomization) are stable in the v1 API.
var (
	fluxKustomizationsGVR  = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
	fluxGitRepositoriesGVR = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}
)

const (
	// fluxRequestAnnotation is Flux's documented way to ask for a reconcile now (what `flux reconcile` sets): any
	// new value makes the controller reconcile, and it records the value in status.lastHandledReconcileAt.
	fluxRequestAnnotation = "reconcile.fluxcd.io/requestedAt"
	// fluxCallTimeout caps one read or patch when the reconcile's own deadline is further away.
	fluxCallTimeout = 30 * time.Second
	// fluxMessageMax bounds a condition message kept or reported: a failed build can quote a whole kustomize
	// error, a failed health check every object it waited for.
	fluxMessageMax = 1024
)

// Ready reasons with which kustomize-controller reports that the revision it attempted failed: the commit itself
// does not build, apply, prune or become healthy. Any other reason (the source not fetched yet, a dependency not
// ready, a health check cancelled by a newer request) is something still on its way.
var fluxFailedReasons = map[string]bool{
	"BuildFailed": true, "ReconciliationFailed": true, "HealthCheckFailed": true, "PruneFailed": true,
}

// FluxSyncer is the Syncer of stages in sync.mode Flux: a Flux Kustomization already applies the stage's path
// from the repository Ferry pins. Ferry asks it (and its GitRepository) to reconcile at once after each commit and
// reads whether it applied that commit and found it healthy. It keeps one watch of Kustomizations per cluster
// identity and namespace that a stage names (externalWatches), so that a change of a Kustomization's status wakes
// its stage at once.
type FluxSyncer struct {
	*externalWatches

	unaskedMu gosync.Mutex
	// unasked holds the owners whose Apply found no Kustomization, with the revision it was for: once the
	// Kustomization exists, Health asks it to reconcile, since no Apply will come again for that commit.
	unasked map[string]string
}

// fluxKustomizations is how Ferry watches Flux's Kustomizations: the cache keeps the fields Ferry reads
// (pruneFluxObject) — not the inventory of everything a Kustomization applied — and only a change of status, spec
// or generation wakes a stage (fluxStatusChanged).
var fluxKustomizations = &externalKind{gvr: fluxKustomizationsGVR, controller: "Flux", kind: "Kustomization",
	prune: pruneFluxObject, changed: fluxStatusChanged}

// NewFluxSyncer returns a Syncer for stages in mode Flux, watching nothing yet.
func NewFluxSyncer() *FluxSyncer {
	return &FluxSyncer{externalWatches: newExternalWatches(), unasked: map[string]string{}}
}

// fluxKindRefused says a stage names a Flux kind this controller does not follow.
type fluxKindRefused struct{ Ref ExternalRef }

func (e *fluxKindRefused) Error() string {
	return fmt.Sprintf("%s is not supported by this controller: it follows Flux Kustomizations only (a Kustomization "+
		"may apply a path whose manifests include the HelmRelease), so %s cannot sync this stage", e.Ref.Kind, e.Ref)
}

// fluxServes refuses a target whose object Ferry cannot follow, rather than pinning commits nobody reports on.
func fluxServes(t SyncTarget) error {
	if t.External.Kind != string(ferryv1.FluxKustomization) {
		return &fluxKindRefused{Ref: t.External}
	}
	if t.External.Name == "" || t.External.Namespace == "" {
		return fmt.Errorf("no Flux Kustomization named for the stage")
	}
	return nil
}

// externalStall is the stall of stage i that err from FluxSyncer means, or nil: a kind this controller refuses names
// spec.stages[i].sync.flux.kind, and a missing object the field that names it (externalMissingStall).
func externalStall(p *ferryv1.Promotion, i int, err error) *StallingError {
	var refused *fluxKindRefused
	if errors.As(err, &refused) {
		return &StallingError{Reason: ReasonNotSupported, Field: fmt.Sprintf("spec.stages[%d].sync.flux.kind", i), Err: refused}
	}
	return externalMissingStall(p, i, err)
}

// Apply asks the stage's Kustomization, and first its GitRepository, to reconcile now, so that Flux fetches and
// applies revision without waiting for their intervals. A Kustomization that already applied revision is not
// asked again. A missing Kustomization is left to Health, which stalls the stage naming it.
func (f *FluxSyncer) Apply(ctx context.Context, t SyncTarget, _, revision string) ([]sync.ObjectRef, error) {
	if err := fluxServes(t); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, fluxCallTimeout)
	defer cancel()
	c, err := f.use(t, fluxKustomizations)
	if err != nil {
		return nil, err
	}
	u, err := c.get(ctx, fluxKustomizations, t.External) // fresh: a cache a moment behind could hold a sourceRef just changed
	var missing *ExternalMissing
	if errors.As(err, &missing) {
		f.setUnasked(t.Owner, revision)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	k, err := fluxKustomizationOf(u)
	if err != nil {
		return nil, err
	}
	f.setUnasked(t.Owner, "")
	return nil, requestFluxReconcile(ctx, c, t.External, k, revision)
}

// Objects names nothing: Flux renders the stage, and Ferry reads its health from the Kustomization.
func (f *FluxSyncer) Objects(SyncTarget, string) ([]sync.ObjectRef, error) { return nil, nil }

// Render is refused: what a stage in mode Flux declares is Flux's to render (only canaries render, and they need
// sync.mode Ferry).
func (f *FluxSyncer) Render(t SyncTarget, _ string) ([]*unstructured.Unstructured, error) {
	return nil, fmt.Errorf("Flux %s renders this stage (sync.mode Flux); Ferry does not", t.External)
}

// Health reads the stage's Kustomization: healthy only once Flux reports Ferry's commit (t.Revision) applied and
// Ready — a Kustomization Ready at an older commit says nothing of Ferry's. Drift is Flux's to find and correct
// (it applies the path again at every interval), so none is reported here.
func (f *FluxSyncer) Health(ctx context.Context, t SyncTarget, _ []sync.ObjectRef, _ string) (Health, error) {
	if err := fluxServes(t); err != nil {
		return Health{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, fluxCallTimeout)
	defer cancel()
	c, k, err := readAs(ctx, f.externalWatches, t, fluxKustomizations, fluxKustomizationOf)
	if err != nil {
		return Health{}, err
	}
	if f.takeUnasked(t.Owner, t.Revision) {
		if err := requestFluxReconcile(ctx, c, t.External, k, t.Revision); err != nil {
			f.setUnasked(t.Owner, t.Revision) // asked again at the next look
			return Health{}, err
		}
	}
	return k.assess(t.External, t.Revision), nil
}

// Expect starts watching the Kustomizations targets name, so that their changes wake the stages from now on.
func (f *FluxSyncer) Expect(targets []SyncTarget) error {
	for _, t := range targets {
		if fluxServes(t) != nil {
			continue // refused when the stage syncs; nothing to watch
		}
		if _, err := f.use(t, fluxKustomizations); err != nil {
			return err
		}
	}
	return nil
}

// Forget stops tracking owner's Kustomization, and any request it still owes it; a watch no stage needs any more
// is stopped.
func (f *FluxSyncer) Forget(owner string) {
	f.externalWatches.Forget(owner)
	f.unaskedMu.Lock()
	defer f.unaskedMu.Unlock()
	delete(f.unasked, owner)
}

// Close stops every watch.
func (f *FluxSyncer) Close() {
	f.externalWatches.Close()
	f.unaskedMu.Lock()
	defer f.unaskedMu.Unlock()
	clear(f.unasked)
}

func (f *FluxSyncer) setUnasked(owner, revision string) {
	if owner == "" {
		return
	}
	f.unaskedMu.Lock()
	defer f.unaskedMu.Unlock()
	if revision == "" {
		delete(f.unasked, owner)
		return
	}
	f.unasked[owner] = revision
}

// takeUnasked says whether owner's Kustomization was missing when revision was applied, and clears it.
func (f *FluxSyncer) takeUnasked(owner, revision string) bool {
	f.unaskedMu.Lock()
	defer f.unaskedMu.Unlock()
	if f.unasked[owner] != revision || revision == "" {
		return false
	}
	delete(f.unasked, owner)
	return true
}

// requestFluxReconcile asks Flux to reconcile the Kustomization ref now for revision: its GitRepository first, so that it
// fetches the branch Ferry just pushed to, then the Kustomization, which also reconciles on its own once the
// GitRepository has a new artifact. Nothing is asked of one that already applied revision.
func requestFluxReconcile(ctx context.Context, c *externalCluster, ref ExternalRef, k *fluxKustomization, revision string) error {
	if k.appliedReady(revision) {
		return nil
	}
	at := time.Now().UTC().Format(time.RFC3339Nano)
	if src, ok := k.gitRepository(); ok {
		// A GitRepository that is missing is reported by the Kustomization's Ready condition, which Health shows.
		if err := annotateFluxRequest(ctx, c.client, fluxGitRepositoriesGVR, src, at); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("asking Flux GitRepository %s to fetch: %w", src, err)
		}
	}
	err := annotateFluxRequest(ctx, c.client, fluxKustomizationsGVR, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, at)
	if apierrors.IsNotFound(err) {
		return fluxKustomizations.missing(ref, err)
	}
	if err != nil {
		return fmt.Errorf("asking Flux %s to reconcile: %w", ref, err)
	}
	return nil
}

// annotateFluxRequest sets Flux's reconcile request annotation on an object: a merge patch of one annotation, so that
// nothing else Flux or a person set is touched.
func annotateFluxRequest(ctx context.Context, client dynamic.Interface, gvr schema.GroupVersionResource, obj types.NamespacedName, at string) error {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, fluxRequestAnnotation, at)
	_, err := client.Resource(gvr).Namespace(obj.Namespace).Patch(ctx, obj.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: "ferry"})
	return err
}

// fluxKustomization is the part of a Flux Kustomization (kustomize.toolkit.fluxcd.io/v1) that Ferry reads. Its
// fields follow github.com/fluxcd/kustomize-controller/api v1.9.6, api/v1/kustomization_types.go
// (Kustomization, KustomizationSpec.SourceRef and Suspend, KustomizationStatus) and the meta.Condition conditions
// of github.com/fluxcd/pkg/apis/meta.
type fluxKustomization struct {
	Metadata fluxMeta   `json:"metadata"`
	Spec     fluxSpec   `json:"spec"`
	Status   fluxStatus `json:"status"`
}

type fluxMeta struct {
	Name            string `json:"name"`
	Namespace       string `json:"namespace"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	Generation      int64  `json:"generation,omitempty"`
}

type fluxSpec struct {
	SourceRef fluxSourceRef `json:"sourceRef"`
	Suspend   bool          `json:"suspend,omitempty"`
}

// fluxSourceRef names the source a Kustomization applies: GitRepository, OCIRepository, Bucket or
// ExternalArtifact; its namespace is the Kustomization's when empty.
type fluxSourceRef struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

type fluxStatus struct {
	ObservedGeneration    int64           `json:"observedGeneration,omitempty"`
	LastAppliedRevision   string          `json:"lastAppliedRevision,omitempty"`
	LastAttemptedRevision string          `json:"lastAttemptedRevision,omitempty"`
	Conditions            []fluxCondition `json:"conditions,omitempty"`
}

// fluxCondition is a status condition without its times, which Ferry does not judge by.
type fluxCondition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// fluxKustomizationOf reads the fields Ferry uses from an object, with its messages bounded.
func fluxKustomizationOf(u *unstructured.Unstructured) (*fluxKustomization, error) {
	var k fluxKustomization
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &k); err != nil {
		return nil, fmt.Errorf("reading Flux Kustomization %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	for i := range k.Status.Conditions {
		k.Status.Conditions[i].Message = cutFluxMessage(k.Status.Conditions[i].Message)
	}
	return &k, nil
}

// pruneFluxObject is the watch's transform: what the cache keeps of a Kustomization is what Ferry reads of it.
func pruneFluxObject(obj any) (any, error) { return pruneAs(obj, fluxKustomizationOf) }

// fluxStatusChanged says whether an update changed what Ferry judges a stage by: a new request annotation or the
// inventory alone wakes no stage.
func fluxStatusChanged(old, obj any) bool {
	return changedAs(old, obj, fluxKustomizationOf, func(a, b *fluxKustomization) bool {
		return !reflect.DeepEqual(a.Status, b.Status) || a.Metadata.Generation != b.Metadata.Generation || a.Spec != b.Spec
	})
}

// gitRepository names the Kustomization's source when it is a GitRepository, the only source Ferry's commits
// reach; other sources are left to their own intervals.
func (k *fluxKustomization) gitRepository() (types.NamespacedName, bool) {
	ref := k.Spec.SourceRef
	if ref.Kind != "GitRepository" || ref.Name == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: orDefault(ref.Namespace, k.Metadata.Namespace), Name: ref.Name}, true
}

func (k *fluxKustomization) condition(t string) *fluxCondition {
	for i := range k.Status.Conditions {
		if k.Status.Conditions[i].Type == t {
			return &k.Status.Conditions[i]
		}
	}
	return nil
}

// appliedReady says whether Flux applied revision, found it healthy, and has seen the spec as it is now.
func (k *fluxKustomization) appliedReady(revision string) bool {
	ready := k.condition("Ready")
	return ready != nil && ready.Status == string(metav1.ConditionTrue) && sameFluxCommit(k.Status.LastAppliedRevision, revision) &&
		k.Status.ObservedGeneration == k.Metadata.Generation
}

// assess judges the Kustomization for Ferry's commit revision.
func (k *fluxKustomization) assess(ref ExternalRef, revision string) Health {
	ready, stalled := k.condition("Ready"), k.condition("Stalled")
	switch {
	case stalled != nil && stalled.Status == string(metav1.ConditionTrue):
		// Flux gave up on the object itself (an invalid spec, access denied): no retry of Flux's will fix it.
		return Health{Degraded: true, Message: fmt.Sprintf("Flux %s is stalled: %s", ref, describeFluxCondition(stalled))}
	case k.appliedReady(revision):
		return Health{Healthy: true, Message: fmt.Sprintf("Flux %s applied %s and is Ready", ref, k.Status.LastAppliedRevision)}
	case sameFluxCommit(k.Status.LastAttemptedRevision, revision) && ready != nil &&
		ready.Status == string(metav1.ConditionFalse) && fluxFailedReasons[ready.Reason]:
		return Health{Degraded: true, Message: fmt.Sprintf("Flux %s failed at %s: %s", ref,
			shortFluxRevision(k.Status.LastAttemptedRevision), describeFluxCondition(ready))}
	}
	return Health{Message: k.waiting(ref, revision, ready)}
}

// waiting says what the stage waits for: where Flux is, the commit it should reach, and why it is not there yet.
func (k *fluxKustomization) waiting(ref ExternalRef, revision string, ready *fluxCondition) string {
	at := "has applied nothing yet"
	if k.Status.LastAppliedRevision != "" {
		at = "at " + shortFluxRevision(k.Status.LastAppliedRevision)
	}
	msg := fmt.Sprintf("Flux %s %s, waiting for %s", ref, at, shortSHA(revision))
	switch {
	case k.Spec.Suspend:
		msg += " (it is suspended: spec.suspend is true, so Flux applies nothing until it is resumed)"
	case ready != nil:
		msg += " (Ready " + describeFluxCondition(ready) + ")"
	}
	return msg
}

func describeFluxCondition(c *fluxCondition) string {
	if c.Type == "Ready" {
		return fmt.Sprintf("%s, %s: %s", c.Status, c.Reason, c.Message)
	}
	return fmt.Sprintf("%s: %s", c.Reason, c.Message)
}

// sameFluxCommit says whether a Flux revision names the Git commit sha. Flux writes "<branch>@sha1:<sha>" (or
// "sha1:<sha>" for a pinned commit, "<branch>/<sha>" before Flux 2.0).
func sameFluxCommit(fluxRevision, sha string) bool {
	if fluxRevision == "" || sha == "" {
		return false
	}
	commit := fluxRevision
	if i := strings.LastIndex(commit, ":"); i >= 0 {
		commit = commit[i+1:]
	} else if i := strings.LastIndex(commit, "/"); i >= 0 {
		commit = commit[i+1:]
	}
	return strings.EqualFold(commit, sha)
}

// shortFluxRevision shortens the commit of a Flux revision for messages ("main@sha1:0123456789ab").
func shortFluxRevision(rev string) string {
	if i := strings.LastIndex(rev, ":"); i >= 0 {
		return rev[:i+1] + shortSHA(rev[i+1:])
	}
	return rev
}

// cutFluxMessage bounds a message Flux wrote, on a rune boundary.
func cutFluxMessage(s string) string {
	if len(s) <= fluxMessageMax {
		return s
	}
	cut := fluxMessageMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

var _ Syncer = (*FluxSyncer)(nil)
