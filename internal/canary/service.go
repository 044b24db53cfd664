package canary

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var serviceGVK = schema.GroupVersionKind{Version: "v1", Kind: "Service"}

// CanaryServiceName is the name of the canary Service Ferry runs beside the stable Service stable while a route
// carries the canary's weight: "<stable>-canary", shortened like a copy's name when that is too long.
func CanaryServiceName(stable string) string { return copyName(stable, TrackCanary) }

// getService reads a Service live (as unstructured, so that a manager's client does not start a cache of every
// Service in the cluster) and converts it to the typed struct. It returns nil and no error when there is none.
func (e *Engine) getService(ctx context.Context, namespace, name string) (*corev1.Service, error) {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(serviceGVK)
	err := e.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Service %s/%s: %w", namespace, name, err)
	}
	svc := &corev1.Service{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, svc); err != nil {
		return nil, fmt.Errorf("reading Service %s/%s: %w", namespace, name, err)
	}
	return svc, nil
}

// stableService reads the stable Service a route's canary runs beside and checks that a canary Service can be made
// from it: it must select pods by labels, which the canary pods share.
func (e *Engine) stableService(ctx context.Context, namespace, name, route string) (*corev1.Service, error) {
	svc, err := e.getService(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	if svc == nil {
		return nil, fmt.Errorf("no Service %q in namespace %s: HTTPRoute %s must route to the stable Service for its canary to get a weight", name, namespace, route)
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil, fmt.Errorf("Service %s is of type ExternalName: it selects no pods, so there is no canary of it to route to", name)
	}
	if len(svc.Spec.Selector) == 0 {
		return nil, fmt.Errorf("Service %s has no selector: Ferry cannot make a canary Service that selects only the canary pods", name)
	}
	if track, ok := svc.Labels[TrackLabel]; ok {
		return nil, fmt.Errorf("Service %s is itself a %s Service (label %s), not a stable one", name, track, TrackLabel)
	}
	if len(svc.Spec.Ports) == 0 {
		return nil, fmt.Errorf("Service %s has no ports", name)
	}
	return svc, nil
}

// buildCanaryService is the canary Service of stable for owner: the stable Service's ports, its selector plus
// TrackLabel=canary, so that it selects the canary copy's pods and nothing else (not the stable pods, which lack the
// label, nor the baseline's, which carry another value), an ownerReference to the stable Service, and only Ferry's
// labels — not the stable Service's, so that nothing that selects Services by label (a ServiceMonitor) picks the
// canary Service up as a second way to the same pods.
func buildCanaryService(stable *corev1.Service, owner string) *unstructured.Unstructured {
	selector := maps.Clone(stable.Spec.Selector)
	selector[TrackLabel] = TrackCanary
	var ports []any
	for _, p := range stable.Spec.Ports {
		port := map[string]any{"port": int64(p.Port)}
		if p.Name != "" {
			port["name"] = p.Name
		}
		if p.Protocol != "" {
			port["protocol"] = string(p.Protocol)
		}
		switch {
		case p.TargetPort.StrVal != "":
			port["targetPort"] = p.TargetPort.StrVal
		case p.TargetPort.IntVal != 0:
			port["targetPort"] = int64(p.TargetPort.IntVal)
		}
		if p.AppProtocol != nil {
			port["appProtocol"] = *p.AppProtocol
		}
		ports = append(ports, port)
	}
	spec := map[string]any{
		// Only a backend of the route: never a node port or a load balancer of its own, whatever the stable one is.
		"type":     string(corev1.ServiceTypeClusterIP),
		"selector": toAnyMap(selector),
		"ports":    ports,
	}
	if stable.Spec.SessionAffinity != "" {
		spec["sessionAffinity"] = string(stable.Spec.SessionAffinity)
	}
	svc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": serviceGVK.GroupVersion().String(),
		"kind":       serviceGVK.Kind,
		"spec":       spec,
	}}
	svc.SetNamespace(stable.Namespace)
	svc.SetName(CanaryServiceName(stable.Name))
	svc.SetLabels(map[string]string{CanaryOfLabel: owner, TrackLabel: TrackCanary})
	svc.SetOwnerReferences([]metav1.OwnerReference{{
		APIVersion: serviceGVK.GroupVersion().String(),
		Kind:       serviceGVK.Kind,
		Name:       stable.Name,
		UID:        stable.UID,
	}})
	return svc
}

func toAnyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ensureCanaryService applies the canary Service of stable. A Service of that name that is not the canary Service
// of owner is someone else's, and is left alone with an error.
func (e *Engine) ensureCanaryService(ctx context.Context, stable *corev1.Service, owner string) error {
	want := buildCanaryService(stable, owner)
	live, err := e.getService(ctx, stable.Namespace, want.GetName())
	if err != nil {
		return err
	}
	if live != nil && live.Labels[CanaryOfLabel] != owner {
		return fmt.Errorf("Service %s exists and is not the canary Service of %s (label %s=%q): Ferry will not take it over",
			live.Name, owner, CanaryOfLabel, live.Labels[CanaryOfLabel])
	}
	if err := e.apply(ctx, want); err != nil {
		return fmt.Errorf("applying the canary Service %s: %w", want.GetName(), err)
	}
	return nil
}

// deleteCanaryService deletes the canary Service of stable if it is owner's, and leaves any other Service of that
// name alone.
func (e *Engine) deleteCanaryService(ctx context.Context, namespace, owner, stable string) error {
	name := CanaryServiceName(stable)
	live, err := e.getService(ctx, namespace, name)
	if err != nil || live == nil {
		return err
	}
	if live.Labels[CanaryOfLabel] != owner {
		return nil
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(serviceGVK)
	obj.SetNamespace(namespace)
	obj.SetName(name)
	// The Service read, not one of the same name made since.
	err = e.c.Delete(ctx, obj, client.Preconditions{UID: &live.UID})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the canary Service %s/%s: %w", namespace, name, err)
	}
	return nil
}
