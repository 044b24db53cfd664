package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/argoproj/argo-cd/gitops-engine/pkg/cache"
	"github.com/argoproj/argo-cd/gitops-engine/pkg/health"
	"github.com/argoproj/argo-cd/gitops-engine/pkg/utils/kube"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// HealthStatus is gitops-engine's health code of an object or of a whole stage.
type HealthStatus = health.HealthStatusCode

// Health codes, from most to least healthy (Unknown means the assessment itself failed).
const (
	Healthy     = health.HealthStatusHealthy
	Suspended   = health.HealthStatusSuspended
	Progressing = health.HealthStatusProgressing
	Missing     = health.HealthStatusMissing
	Degraded    = health.HealthStatusDegraded
	Unknown     = health.HealthStatusUnknown
)

// ResourceHealth is the health of one object.
type ResourceHealth struct {
	Ref     ObjectRef
	Status  HealthStatus
	Message string
}

// HealthReport is the health of a set of objects: Status is the least healthy of them, and Worst names the object
// that decided it (the first such object in the order given), so a person knows where to look.
type HealthReport struct {
	Status    HealthStatus
	Worst     ResourceHealth
	Resources []ResourceHealth
}

// String reads like "Degraded: Deployment shop/web: Deployment "web" exceeded its progress deadline".
func (r HealthReport) String() string {
	if r.Status == Healthy {
		return fmt.Sprintf("Healthy (%d objects)", len(r.Resources))
	}
	if r.Worst.Message == "" {
		return fmt.Sprintf("%s: %s", r.Status, r.Worst.Ref)
	}
	return fmt.Sprintf("%s: %s: %s", r.Status, r.Worst.Ref, r.Worst.Message)
}

// HealthTimeoutError is returned by WaitHealthy when the objects are neither Healthy nor Degraded in time.
type HealthTimeoutError struct {
	Timeout time.Duration
	Last    HealthReport
}

func (e *HealthTimeoutError) Error() string {
	return fmt.Sprintf("not healthy after %s: %s", e.Timeout, e.Last)
}

// Health reads every referenced object from the API server (never from a cache, so a status written a moment ago
// counts) and assesses it with gitops-engine's health checks. An object that is gone is Missing; a kind without a
// health check (ConfigMap, Secret, …) is Healthy once it exists.
func (t *Target) Health(ctx context.Context, refs []ObjectRef) (HealthReport, error) {
	report, _, err := t.Assess(ctx, refs, nil)
	return report, err
}

// Assess reads every referenced object once and reports both its health (as Health does) and how the running
// images differ from the declared ones (as Drift does).
func (t *Target) Assess(ctx context.Context, refs []ObjectRef, declaredImages []string) (HealthReport, []Drift, error) {
	wanted, err := parseDeclared(declaredImages)
	if err != nil {
		return HealthReport{}, nil, err
	}
	report := HealthReport{Status: Healthy, Resources: make([]ResourceHealth, 0, len(refs))}
	var running []containerImage
	for _, ref := range refs {
		obj, err := t.read(ctx, ref)
		if err != nil {
			return HealthReport{}, nil, err
		}
		rh := resourceHealth(ref, obj)
		report.Resources = append(report.Resources, rh)
		if health.IsWorse(report.Status, rh.Status) {
			report.Status, report.Worst = rh.Status, rh
		}
		running = append(running, workloadImages(ref, obj)...)
	}
	return report, compareImages(running, wanted), nil
}

// read gets an object from the API server; nil when it does not exist.
func (t *Target) read(ctx context.Context, ref ObjectRef) (*unstructured.Unstructured, error) {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(ref.GroupVersionKind())
	err := t.client.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, obj)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	return obj, nil
}

// resourceHealth assesses one object as read (nil: it does not exist).
func resourceHealth(ref ObjectRef, obj *unstructured.Unstructured) ResourceHealth {
	if obj == nil {
		return ResourceHealth{Ref: ref, Status: Missing, Message: "not found"}
	}
	hs, err := health.GetResourceHealth(obj, nil)
	switch {
	case err != nil:
		return ResourceHealth{Ref: ref, Status: Unknown, Message: err.Error()}
	case hs == nil:
		return ResourceHealth{Ref: ref, Status: Healthy}
	}
	return ResourceHealth{Ref: ref, Status: hs.Status, Message: hs.Message}
}

// healthPoll is the longest WaitHealthy goes without re-reading; changes seen by the watch wake it sooner.
const healthPoll = 2 * time.Second

// WaitHealthy assesses the objects until they are Healthy or Degraded, and returns that report. It re-assesses
// whenever the namespace's watch reports a change to one of them, and at least every two seconds. After timeout
// it returns a *HealthTimeoutError holding the last report (Progressing, Missing, Suspended or Unknown).
func (t *Target) WaitHealthy(ctx context.Context, refs []ObjectRef, timeout time.Duration) (HealthReport, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	wake, unsubscribe, err := t.watchRefs(refs)
	if err != nil {
		return HealthReport{}, err
	}
	defer unsubscribe()
	poll := time.NewTicker(healthPoll)
	defer poll.Stop()
	for {
		report, err := t.Health(ctx, refs)
		if err != nil {
			return report, err
		}
		if report.Status == Healthy || report.Status == Degraded {
			return report, nil
		}
		select {
		case <-ctx.Done():
			return report, fmt.Errorf("waiting for health (%s): %w", report, ctx.Err())
		case <-deadline.C:
			return report, &HealthTimeoutError{Timeout: timeout, Last: report}
		case <-wake:
		case <-poll.C:
		}
	}
}

// watchRefs signals on the returned channel when the cache sees any referenced object change.
func (t *Target) watchRefs(refs []ObjectRef) (<-chan struct{}, func(), error) {
	if err := t.cache.EnsureSynced(); err != nil {
		return nil, nil, fmt.Errorf("watching namespace %s: %w", t.namespace, err)
	}
	keys := make(map[kube.ResourceKey]bool, len(refs))
	for _, ref := range refs {
		keys[kube.NewResourceKey(ref.Group, ref.Kind, ref.Namespace, ref.Name)] = true
	}
	wake := make(chan struct{}, 1)
	unsubscribe := t.cache.OnResourceUpdated(func(newRes, oldRes *cache.Resource, _ map[kube.ResourceKey]*cache.Resource) {
		res := newRes
		if res == nil {
			res = oldRes
		}
		if res != nil && keys[res.ResourceKey()] {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	})
	return wake, unsubscribe, nil
}

// IsHealthTimeout reports whether err is (or wraps) a *HealthTimeoutError.
func IsHealthTimeout(err error) bool {
	var timeout *HealthTimeoutError
	return errors.As(err, &timeout)
}
