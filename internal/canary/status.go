package canary

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ferrycd/ferry/internal/sync"
	"github.com/ferrycd/ferry/internal/workload"
)

// statusOf sums up copies as the API server returned them, listed by name.
func statusOf(objs []*unstructured.Unstructured) Status {
	objs = slices.SortedFunc(slices.Values(objs), func(a, b *unstructured.Unstructured) int {
		return strings.Compare(a.GetName(), b.GetName())
	})
	st := Status{Ready: len(objs) > 0}
	var waiting []string
	for _, obj := range objs {
		cp := copyOf(obj)
		st.Copies = append(st.Copies, cp)
		if reason := notReady(obj, cp); reason != "" {
			st.Ready = false
			waiting = append(waiting, cp.Name+": "+reason)
		}
	}
	switch {
	case len(objs) == 0:
		st.Message = "no canary copies"
	case st.Ready:
		st.Message = "ready: " + summary(st.Copies)
	default:
		st.Message = "waiting for " + strings.Join(waiting, "; ")
	}
	return st
}

// copyOf reads one copy's state.
func copyOf(obj *unstructured.Unstructured) Copy {
	field := func(path ...string) int32 {
		v, _, _ := unstructured.NestedInt64(obj.Object, path...)
		return int32(v)
	}
	path, _ := workload.PodSpecPath(deploymentGVK.Group, deploymentGVK.Kind)
	return Copy{
		Name:      obj.GetName(),
		Track:     obj.GetLabels()[TrackLabel],
		Desired:   field("spec", "replicas"),
		Ready:     field("status", "readyReplicas"),
		Updated:   field("status", "updatedReplicas"),
		Available: field("status", "availableReplicas"),
		Image:     strings.Join(slices.Compact(podImages(obj, path)), ","),
		Revision:  obj.GetAnnotations()[sync.RevisionAnnotation],
	}
}

// notReady says what a copy still waits for, "" when nothing. A status the Deployment controller wrote for an
// earlier generation (before a resize, say) says nothing about the current spec, so it counts as not ready.
func notReady(obj *unstructured.Unstructured, cp Copy) string {
	observed, _, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
	switch {
	case observed < obj.GetGeneration():
		return fmt.Sprintf("generation %d not observed yet", obj.GetGeneration())
	case cp.Updated != cp.Desired:
		return fmt.Sprintf("%d of %d replicas updated", cp.Updated, cp.Desired)
	case cp.Ready != cp.Desired:
		return fmt.Sprintf("%d of %d replicas ready", cp.Ready, cp.Desired)
	}
	return ""
}

// summary is "shop-canary 2/2, shop-baseline 2/2".
func summary(copies []Copy) string {
	parts := make([]string, 0, len(copies))
	for _, cp := range copies {
		parts = append(parts, fmt.Sprintf("%s %d/%d", cp.Name, cp.Ready, cp.Desired))
	}
	return strings.Join(parts, ", ")
}
