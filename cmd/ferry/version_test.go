package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrycd/ferry/internal/testenv"
	"github.com/ferrycd/ferry/internal/version"
)

const testControllerImage = "registry.example/ferry-controller@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestVersionReadsTheControllersImageFromTheCluster runs `ferry version` against a real API server holding a
// controller Deployment pinned by digest and a pod whose kubelet reported the image it pulled.
func TestVersionReadsTheControllersImageFromTheCluster(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	ctx := context.Background()
	labels := map[string]string{"app.kubernetes.io/name": "ferry"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ferry-controller", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: testControllerImage}}},
			},
		},
	}
	if err := e.Client.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ferry-controller-1", Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: testControllerImage}}}}
	if err := e.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "manager", Image: testControllerImage, ImageID: testControllerImage}}
	if err := e.Client.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}

	kubeconfig := e.Kubeconfig(t, ns)
	out, err := runFerry(t, "version", "--kubeconfig", kubeconfig, "--controller-namespace", ns)
	if err != nil {
		t.Fatalf("ferry version: %v\n%s", err, out)
	}
	want := "controller " + ns + "/ferry-controller: image " + testControllerImage + "; pods run " + testControllerImage + "\n"
	if !strings.HasPrefix(out, "ferry ") || !strings.HasSuffix(out, want) {
		t.Fatalf("ferry version printed:\n%s\nwant it to end with:\n%s", out, want)
	}

	out, err = runFerry(t, "version", "--json", "--kubeconfig", kubeconfig, "--controller-namespace", ns)
	if err != nil {
		t.Fatal(err)
	}
	var v versionOutput
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if v.Version == "" || v.Controller == nil || v.Controller.Image != testControllerImage || len(v.Controller.Running) != 1 {
		t.Fatalf("ferry version --json = %s", out)
	}
}

func TestVersionWithoutAClusterSaysUnknown(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-kubeconfig")
	out, err := runFerry(t, "version", "--kubeconfig", missing)
	if err != nil {
		t.Fatalf("ferry version must succeed without a cluster: %v\n%s", err, out)
	}
	if !strings.Contains(out, "controller ferry-system/ferry-controller: image "+version.Unknown+" (") {
		t.Fatalf("ferry version printed %q, want the controller's image as unknown with the reason", out)
	}
	out, err = runFerry(t, "version", "--client")
	if err != nil || strings.Contains(out, "controller") || !strings.HasPrefix(out, "ferry ") {
		t.Fatalf("ferry version --client = %q, %v: want this build only", out, err)
	}
}
