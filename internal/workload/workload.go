// Package workload knows where Kubernetes workloads keep their pods: the one table that pinning images in
// manifests (internal/gitops/pin) and comparing running images with declared ones (internal/sync) both read.
package workload

// podSpecs lists the built-in kinds that carry a pod spec, by API group, with the path to it.
var podSpecs = []struct {
	group, kind string
	path        []string
}{
	{"", "Pod", []string{"spec"}},
	{"", "ReplicationController", []string{"spec", "template", "spec"}},
	{"apps", "Deployment", []string{"spec", "template", "spec"}},
	{"apps", "StatefulSet", []string{"spec", "template", "spec"}},
	{"apps", "DaemonSet", []string{"spec", "template", "spec"}},
	{"apps", "ReplicaSet", []string{"spec", "template", "spec"}},
	{"batch", "Job", []string{"spec", "template", "spec"}},
	{"batch", "CronJob", []string{"spec", "jobTemplate", "spec", "template", "spec"}},
}

// PodSpecPath is where objects of group and kind keep their pod spec; false for kinds without one.
func PodSpecPath(group, kind string) ([]string, bool) {
	for _, w := range podSpecs {
		if w.group == group && w.kind == kind {
			return w.path, true
		}
	}
	return nil, false
}

// PodSpecPathOfKind is PodSpecPath by kind alone, for manifests read as text, where the group is not resolved.
func PodSpecPathOfKind(kind string) ([]string, bool) {
	for _, w := range podSpecs {
		if w.kind == kind {
			return w.path, true
		}
	}
	return nil, false
}
