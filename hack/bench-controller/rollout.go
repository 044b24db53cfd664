package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	ferrysync "github.com/ferrycd/ferry/internal/sync"
)

// rollouts stands in for kube-controller-manager and the kubelets that envtest does not run: when Ferry applies
// a Deployment, it reports the rollout as complete (every replica updated and available), so that stages become
// healthy and move on as they would on a cluster with capacity. It touches only Deployments Ferry applied.
type rollouts struct {
	clients   kubernetes.Interface
	completed atomic.Int64
	failures  atomic.Int64
}

// runRollouts watches Ferry's Deployments until ctx ends. It runs in the benchmark process, so its work does not
// count against the controller's memory (it does share the CPU, as a controller-manager would).
func runRollouts(ctx context.Context, cfg *rest.Config) (*rollouts, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the rollout simulator's client: %w", err)
	}
	r := &rollouts{clients: cs}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 10*time.Minute,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = ferrysync.OwnerLabel }))
	inf := factory.Apps().V1().Deployments().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.complete(ctx, obj) },
		UpdateFunc: func(_, obj any) { r.complete(ctx, obj) },
	}); err != nil {
		return nil, err
	}
	factory.Start(ctx.Done())
	return r, nil
}

// complete marks a Deployment's current generation as rolled out. A conflict needs no retry: the write that
// caused it brings a newer version through the watch.
func (r *rollouts) complete(ctx context.Context, obj any) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok || rolledOut(d) {
		return
	}
	d = d.DeepCopy()
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas,
		ReadyReplicas: replicas, AvailableReplicas: replicas,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"},
		},
	}
	if _, err := r.clients.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		r.failures.Add(1)
		return
	}
	r.completed.Add(1)
}

func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.AvailableReplicas == want && s.Replicas == want
}
