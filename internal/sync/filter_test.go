package sync

import "testing"

func TestVolatileKindsStayOutOfTheCache(t *testing.T) {
	for _, k := range []struct {
		group, kind string
		excluded    bool
	}{
		{"", "Event", true}, {"events.k8s.io", "Event", true}, {"", "Endpoints", true},
		{"discovery.k8s.io", "EndpointSlice", true}, {"coordination.k8s.io", "Lease", true},
		{"apps", "ControllerRevision", true},
		{"ferry.dev", "Promotion", true},
		{"apps", "Deployment", false}, {"", "ConfigMap", false}, {"", "Pod", false}, {"apps", "ReplicaSet", false},
	} {
		if got := (cacheFilter{}).IsExcludedResource(k.group, k.kind, ""); got != k.excluded {
			t.Errorf("%s/%s excluded = %v, want %v", k.group, k.kind, got, k.excluded)
		}
	}
}

func TestClusterScopedKindsStayOutOfTheCache(t *testing.T) {
	f := cacheFilter{clusterScoped: map[string]bool{"/Node": true, "rbac.authorization.k8s.io/ClusterRole": true}}
	if !f.IsExcludedResource("", "Node", "") || !f.IsExcludedResource("rbac.authorization.k8s.io", "ClusterRole", "") {
		t.Error("a cluster-scoped kind is cached")
	}
	if f.IsExcludedResource("rbac.authorization.k8s.io", "Role", "") {
		t.Error("a namespaced kind is left out")
	}
}
