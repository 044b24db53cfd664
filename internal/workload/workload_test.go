package workload

import (
	"slices"
	"testing"
)

func TestPodSpecPath(t *testing.T) {
	template := []string{"spec", "template", "spec"}
	for _, c := range []struct {
		group, kind string
		want        []string
	}{
		{"apps", "Deployment", template},
		{"", "Pod", []string{"spec"}},
		{"batch", "CronJob", []string{"spec", "jobTemplate", "spec", "template", "spec"}},
		{"", "ReplicationController", template},
		{"", "Deployment", nil},            // a Deployment is in apps
		{"example.com", "Deployment", nil}, // nor a look-alike custom kind
		{"", "ConfigMap", nil},
	} {
		got, ok := PodSpecPath(c.group, c.kind)
		if !slices.Equal(got, c.want) || ok != (c.want != nil) {
			t.Errorf("PodSpecPath(%q, %q) = %v, %v; want %v", c.group, c.kind, got, ok, c.want)
		}
	}
	if got, ok := PodSpecPathOfKind("StatefulSet"); !ok || !slices.Equal(got, template) {
		t.Errorf("PodSpecPathOfKind(StatefulSet) = %v, %v", got, ok)
	}
	if _, ok := PodSpecPathOfKind("Service"); ok {
		t.Error("a Service has a pod spec")
	}
}
