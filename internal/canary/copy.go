package canary

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ferrycd/ferry/internal/sync"
)

// maxNameLength keeps a copy's name a valid DNS label, like the names of the Services and metrics labels people
// derive from Deployment names.
const maxNameLength = 63

// buildCopies builds the canary copy and, when asked, the baseline copy of req, each owned by stable.
func buildCopies(req Request, stable *unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	sources := []struct {
		track string
		obj   *unstructured.Unstructured
	}{{TrackCanary, req.Canary}, {TrackBaseline, req.Baseline}}
	var out []*unstructured.Unstructured
	for _, s := range sources {
		if s.obj == nil {
			continue
		}
		cp, err := buildCopy(req, s.obj, s.track, stable)
		if err != nil {
			return nil, fmt.Errorf("%s copy of %s: %w", s.track, s.obj.GetName(), err)
		}
		out = append(out, cp)
	}
	return out, nil
}

// buildCopy turns source into the track's copy. source is not modified.
func buildCopy(req Request, source *unstructured.Unstructured, track string, stable *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	spec, err := copySpec(source)
	if err != nil {
		return nil, err
	}
	cp := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": deploymentGVK.GroupVersion().String(),
		"kind":       deploymentGVK.Kind,
		"spec":       spec,
	}}
	cp.SetNamespace(req.Namespace)
	cp.SetName(copyName(source.GetName(), track))
	cp.SetLabels(copyLabels(source.GetLabels(), req.Owner, track))
	cp.SetAnnotations(copyAnnotations(source.GetAnnotations(), req.Revision))
	cp.SetOwnerReferences([]metav1.OwnerReference{ownerReference(stable)})
	if err := addTrack(cp, track, "spec", "selector", "matchLabels"); err != nil {
		return nil, err
	}
	if err := addTrack(cp, track, "spec", "template", "metadata", "labels"); err != nil {
		return nil, err
	}
	if err := unstructured.SetNestedField(cp.Object, int64(req.Replicas), "spec", "replicas"); err != nil {
		return nil, err
	}
	return cp, nil
}

// copySpec is source's spec without what the API server or the Deployment controller fill in for the object
// itself, so that applying it twice is the same apply.
func copySpec(source *unstructured.Unstructured) (map[string]any, error) {
	spec, _, err := unstructured.NestedMap(source.Object, "spec") // a deep copy
	if err != nil {
		return nil, err
	}
	if _, found := spec["selector"]; !found {
		// apps/v1 requires one, and the copy's must differ from the stable one's by the track label.
		return nil, fmt.Errorf("spec.selector: the Deployment has none")
	}
	unstructured.RemoveNestedField(spec, "template", "metadata", "creationTimestamp")
	// A new paused Deployment never creates its ReplicaSet: a copy of a paused stable Deployment would never start.
	delete(spec, "paused")
	return spec, nil
}

// addTrack adds TrackLabel to the label map at path.
//
// Why the copies' selectors differ from the stable Deployment's while the stable selector still matches the copies'
// pods: a Deployment, and its ReplicaSets, only adopt ReplicaSets and pods that have no controller yet; once the
// copy's ReplicaSet has created a pod it carries that ReplicaSet's controller reference, and ownerReferences decide
// ownership, not selectors. The track label in the copy's selector keeps the copy from ever adopting stable pods
// (which lack it), and the stable ReplicaSets select by pod-template-hash as well, which differs. That the stable
// selector matches the copies' pods is the point: the Service selects the same labels, and that is how the canary
// gets its share of the traffic.
func addTrack(obj *unstructured.Unstructured, track string, path ...string) error {
	labels, found, err := unstructured.NestedStringMap(obj.Object, path...)
	if err != nil {
		return fmt.Errorf("%s: %w", strings.Join(path, "."), err)
	}
	if !found {
		labels = map[string]string{}
	}
	labels[TrackLabel] = track
	return unstructured.SetNestedStringMap(obj.Object, labels, path...)
}

// copyLabels are the source's labels without sync's owner label — so that the stage's prune never takes a copy for
// one of the stage's own objects — plus the track and the owner the copy belongs to.
func copyLabels(source map[string]string, owner, track string) map[string]string {
	labels := maps.Clone(source)
	if labels == nil {
		labels = map[string]string{}
	}
	delete(labels, sync.OwnerLabel)
	labels[TrackLabel] = track
	labels[CanaryOfLabel] = owner
	return labels
}

// copyAnnotations are the source's annotations without those that describe the source object's history rather
// than its intent: the Deployment controller's rollout revision (which it sets on the copy itself; applying the
// stable value would fight it) and kubectl's record of the last client-side apply.
func copyAnnotations(source map[string]string, revision string) map[string]string {
	annotations := map[string]string{}
	for k, v := range source {
		if strings.HasPrefix(k, "deployment.kubernetes.io/") || k == "kubectl.kubernetes.io/last-applied-configuration" {
			continue
		}
		annotations[k] = v
	}
	delete(annotations, sync.RevisionAnnotation)
	if revision != "" {
		annotations[sync.RevisionAnnotation] = revision
	}
	return annotations
}

// ownerReference points at the stable Deployment so that the garbage collector removes the copies with it. It is
// not a controller reference: the stable Deployment does not manage the copies, and a controller reference would
// claim it does.
func ownerReference(stable *unstructured.Unstructured) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: deploymentGVK.GroupVersion().String(),
		Kind:       deploymentGVK.Kind,
		Name:       stable.GetName(),
		UID:        stable.GetUID(),
	}
}

// copyName is "<name>-<track>", cut to maxNameLength with a hash of the whole name when longer, so that two long
// names sharing a prefix still get different copies and the track stays readable at the end.
func copyName(name, track string) string {
	full := name + "-" + track
	if len(full) <= maxNameLength {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	suffix := "-" + hex.EncodeToString(sum[:4]) + "-" + track
	// A name part may not end in "." before the "-" that follows it.
	return strings.TrimRight(name[:maxNameLength-len(suffix)], ".-") + suffix
}
