package sync

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// applyWeb applies a two-replica Deployment and a ConfigMap and returns the declared references.
func applyWeb(t *testing.T, tgt *Target, extra ...string) []ObjectRef {
	t.Helper()
	docs := append([]string{deployment("web", "registry.example.com/shop@sha256:"+strings.Repeat("a", 64)), configMap("settings")}, extra...)
	res, err := tgt.Apply(testContext(t), ApplyRequest{Owner: "shop.dev", Revision: "r1", Objects: decode(t, docs...)})
	if err != nil {
		t.Fatal(err)
	}
	return res.Declared
}

// writeDeploymentStatus writes the Deployment's status through the status subresource, as the deployment
// controller would: the plain test API server runs no controllers.
func writeDeploymentStatus(t *testing.T, ns string, status map[string]any) {
	t.Helper()
	live, err := getLive(t, deploymentGVK, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	status["observedGeneration"] = live.GetGeneration()
	if err := unstructured.SetNestedMap(live.Object, status, "status"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Status().Update(context.Background(), live); err != nil {
		t.Fatalf("writing Deployment status: %v", err)
	}
}

func rolledOut(available int64) map[string]any {
	return map[string]any{"replicas": int64(2), "updatedReplicas": int64(2), "readyReplicas": available, "availableReplicas": available}
}

func TestHealthProgressingUntilStatusIsWritten(t *testing.T) {
	tgt, ns := newTarget(t)
	ctx := testContext(t)
	refs := applyWeb(t, tgt)

	report, err := tgt.Health(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	if report.Status != Progressing || report.Worst.Ref.Kind != "Deployment" || !strings.Contains(report.Worst.Message, "observed deployment generation") {
		t.Fatalf("fresh Deployment: %s", report)
	}

	writeDeploymentStatus(t, ns, rolledOut(1))
	report, err = tgt.Health(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	if report.Status != Progressing || !strings.Contains(report.Worst.Message, "1 of 2 updated replicas are available") {
		t.Fatalf("one replica available: %s", report)
	}

	done := make(chan struct{})
	var waited HealthReport
	var waitErr error
	go func() {
		defer close(done)
		waited, waitErr = tgt.WaitHealthy(ctx, refs, time.Minute)
	}()
	writeDeploymentStatus(t, ns, rolledOut(2))
	<-done
	if waitErr != nil || waited.Status != Healthy || len(waited.Resources) != 2 {
		t.Fatalf("WaitHealthy = %s, %v", waited, waitErr)
	}
}

func TestHealthDegradedWhenProgressDeadlineExceeded(t *testing.T) {
	tgt, ns := newTarget(t)
	ctx := testContext(t)
	refs := applyWeb(t, tgt)
	status := rolledOut(0)
	status["conditions"] = []any{map[string]any{
		"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
		"message": `ReplicaSet "web-1" has timed out progressing.`,
	}}
	writeDeploymentStatus(t, ns, status)

	report, err := tgt.WaitHealthy(ctx, refs, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if report.Status != Degraded || report.Worst.Ref.Name != "web" || !strings.Contains(report.Worst.Message, "exceeded its progress deadline") {
		t.Fatalf("report = %s", report)
	}
	if !strings.Contains(report.String(), "Degraded: Deployment.apps "+ns+"/web") {
		t.Fatalf("report reads %q", report.String())
	}
}

func TestWaitHealthyTimesOutWithTypedError(t *testing.T) {
	tgt, _ := newTarget(t)
	refs := applyWeb(t, tgt)
	report, err := tgt.WaitHealthy(testContext(t), refs, 300*time.Millisecond)
	if !IsHealthTimeout(err) {
		t.Fatalf("error = %v, want a *HealthTimeoutError", err)
	}
	if report.Status != Progressing || !strings.Contains(err.Error(), "Progressing: Deployment.apps") {
		t.Fatalf("report %s, error %v", report, err)
	}
}

func TestHealthMissingAndSuspended(t *testing.T) {
	tgt, ns := newTarget(t)
	ctx := testContext(t)
	paused := strings.Replace(deployment("paused", "nginx"), "spec:\n  replicas", "spec:\n  paused: true\n  replicas", 1)
	refs := applyWeb(t, tgt, paused)
	writeDeploymentStatus(t, ns, rolledOut(2))

	report, err := tgt.Health(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	if report.Status != Suspended || report.Worst.Ref.Name != "paused" {
		t.Fatalf("with a paused Deployment: %s", report)
	}

	gone := ObjectRef{Version: "v1", Kind: "ConfigMap", Namespace: ns, Name: "deleted"}
	report, err = tgt.Health(ctx, append(refs, gone))
	if err != nil {
		t.Fatal(err)
	}
	if report.Status != Missing || report.Worst.Ref != gone {
		t.Fatalf("with a missing object: %s", report)
	}
}
