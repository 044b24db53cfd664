package controllers

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// rolloutController plays kube-controller-manager's deployment controller for the test API server, which runs
// none: it writes each Deployment's status the way a finished rollout does, or a rollout past its progress
// deadline for images marked bad. gitops-engine's health checks read exactly these fields.
type rolloutController struct {
	c   client.Client
	mu  sync.Mutex
	bad map[string]bool // image digests whose rollout fails
}

func startRolloutController(t testing.TB, c client.Client, namespaces ...string) *rolloutController {
	t.Helper()
	rc := &rolloutController{c: c, bad: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for _, ns := range namespaces {
				rc.pass(ctx, ns)
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return rc
}

// failRollouts makes rollouts of images with digest fail from now on.
func (rc *rolloutController) failRollouts(digest string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.bad[digest] = true
}

func (rc *rolloutController) isBad(image string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for d := range rc.bad {
		if strings.HasSuffix(image, "@"+d) {
			return true
		}
	}
	return false
}

// pass brings every Deployment of ns whose spec changed to its rolled-out (or failed) status.
func (rc *rolloutController) pass(ctx context.Context, ns string) {
	var list appsv1.DeploymentList
	if err := rc.c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return
	}
	for i := range list.Items {
		d := &list.Items[i]
		if d.Status.ObservedGeneration == d.Generation {
			continue
		}
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		now := metav1.Now()
		progressing := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue,
			Reason: "NewReplicaSetAvailable", LastUpdateTime: now, LastTransitionTime: now}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: replicas,
			UpdatedReplicas: replicas, ReadyReplicas: replicas, AvailableReplicas: replicas}
		if rc.isBad(d.Spec.Template.Spec.Containers[0].Image) {
			progressing.Status, progressing.Reason = corev1.ConditionFalse, "ProgressDeadlineExceeded"
			progressing.Message = "ReplicaSet has timed out progressing."
			d.Status.ReadyReplicas, d.Status.AvailableReplicas, d.Status.UnavailableReplicas = 0, 0, replicas
		}
		d.Status.Conditions = []appsv1.DeploymentCondition{progressing}
		_ = rc.c.Status().Update(ctx, d)
	}
}
