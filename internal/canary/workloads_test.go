package canary

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestWorkloads(t *testing.T) {
	web := toUnstructured(t, deployment("web", repo+"@"+digestB))
	tagged := toUnstructured(t, deployment("tagged", repo+":1.2.0"))
	other := toUnstructured(t, deployment("other", "registry.example.com/cart@"+digestB))
	initOnly := deployment("init-only", "registry.example.com/cart:1")
	initOnly.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "seed", Image: repo + "@" + digestA}}
	service := toUnstructured(t, &corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}, ObjectMeta: metav1.ObjectMeta{Name: "web"}})
	objs := []*unstructured.Unstructured{service, web, other, tagged, toUnstructured(t, initOnly)}

	got, err := Workloads(objs, repo)
	if err != nil {
		t.Fatal(err)
	}
	if names := objectNames(got); strings.Join(names, ",") != "web,tagged,init-only" {
		t.Errorf("picked %v, want web, tagged and init-only (an init container runs the image)", names)
	}
}

func TestWorkloadsNormalisesRepositories(t *testing.T) {
	objs := []*unstructured.Unstructured{toUnstructured(t, deployment("nginx", "index.docker.io/library/nginx:1.27"))}
	got, err := Workloads(objs, "nginx")
	if err != nil || len(got) != 1 {
		t.Fatalf("Workloads(nginx) = %v, %v; want the Deployment running index.docker.io/library/nginx", objectNames(got), err)
	}
}

func TestWorkloadsRefusesOtherKinds(t *testing.T) {
	web := toUnstructured(t, deployment("web", repo+"@"+digestB))
	db := &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       appsv1.StatefulSetSpec{Template: deployment("db", repo+":2").Spec.Template},
	}
	agent := &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec:       appsv1.DaemonSetSpec{Template: deployment("agent", repo+"@"+digestA).Spec.Template},
	}
	_, err := Workloads([]*unstructured.Unstructured{web, toUnstructured(t, db), toUnstructured(t, agent)}, repo)
	if err == nil {
		t.Fatal("a StatefulSet and a DaemonSet running the image were accepted")
	}
	for _, want := range []string{"StatefulSet/db", "DaemonSet/agent", "only apps/v1 Deployments"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestWorkloadsNone(t *testing.T) {
	objs := []*unstructured.Unstructured{toUnstructured(t, deployment("other", "registry.example.com/cart:1"))}
	if _, err := Workloads(objs, repo); err == nil || !strings.Contains(err.Error(), "no Deployment of the stage runs "+repo) {
		t.Errorf("no workload running the image: err = %v", err)
	}
	if _, err := Workloads(nil, "Not A Repository"); err == nil {
		t.Error("an invalid repository was accepted")
	}
}

func objectNames(objs []*unstructured.Unstructured) []string {
	var names []string
	for _, o := range objs {
		names = append(names, o.GetName())
	}
	return names
}
