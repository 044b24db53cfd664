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
		{"apps", "Deployment", false}, {"", "ConfigMap", false}, {"", "Pod", false}, {"apps", "ReplicaSet", false},
	} {
		if got := (volatileKinds{}).IsExcludedResource(k.group, k.kind, ""); got != k.excluded {
			t.Errorf("%s/%s excluded = %v, want %v", k.group, k.kind, got, k.excluded)
		}
	}
}
