package canary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// StableWeightAnnotation is on an HTTPRoute while Ferry holds some of its weights: for each stable Service, the
// weight its backendRef had in each rule Ferry changed, as JSON keyed by Service and by rule index —
// {"shop":{"0":1,"2":30}}, null for a weight that was not set (the Gateway API's default of 1). RestoreRoute puts
// these back, so a restarted controller restores the route exactly.
const StableWeightAnnotation = "ferry.dev/stable-weight"

var httpRouteGVK = gatewayv1.SchemeGroupVersion.WithKind("HTTPRoute")

// RouteRequest asks for the canary's share of an HTTPRoute's traffic.
type RouteRequest struct {
	Namespace string
	// Owner is the stage owner label value (sync.OwnerLabel); it becomes CanaryOfLabel on the canary Service.
	Owner string
	// Route is the HTTPRoute, in Namespace, and StableService the Service in Namespace it routes to: a backendRef
	// of Route in at least one rule.
	Route, StableService string
	// Weight is the canary's percentage of the traffic of each rule that routes to StableService, 0..100.
	Weight int32
}

func (r RouteRequest) validate() error {
	if err := validateRouteNames(r.Namespace, r.Owner, r.Route, r.StableService); err != nil {
		return err
	}
	if r.Weight < 0 || r.Weight > 100 {
		return fmt.Errorf("weight: %d, must be 0..100", r.Weight)
	}
	return nil
}

func validateRouteNames(namespace, owner, route, stableService string) error {
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return fmt.Errorf("namespace %q: %s", namespace, errs[0])
	}
	if owner == "" {
		return errors.New("owner: required")
	}
	if errs := validation.IsValidLabelValue(owner); len(errs) > 0 {
		return fmt.Errorf("owner %q: %s", owner, errs[0])
	}
	if route == "" {
		return errors.New("route: required")
	}
	if errs := validation.IsDNS1035Label(stableService); len(errs) > 0 {
		return fmt.Errorf("stable Service %q: %s", stableService, errs[0])
	}
	return nil
}

// SetRoute gives the canary req.Weight percent of the traffic req.Route sends to req.StableService: it applies the
// canary Service (CanaryServiceName) and then, in every rule of the route with a backendRef to the stable Service,
// sets the stable backend's weight to 100-Weight and a backendRef to the canary Service — a copy of the stable one
// (port, filters) — to Weight, recording the stable backend's original weight in StableWeightAnnotation. Calling it
// again with the same request writes nothing; with another weight it changes only the weights.
//
// The canary Service selects the canary copy's pods, which must be ready first: a backend with no endpoints answers
// its share of requests with errors. Nothing is changed when the route cannot take the canary: when it is missing,
// has no rule with a backendRef to the stable Service, or has such a rule that also routes to another backend.
func (e *Engine) SetRoute(ctx context.Context, req RouteRequest) error {
	if err := req.validate(); err != nil {
		return err
	}
	stable, err := e.stableService(ctx, req.Namespace, req.StableService, req.Route)
	if err != nil {
		return err
	}
	canary := CanaryServiceName(req.StableService)
	edit := func(route *unstructured.Unstructured) error {
		return setRouteWeights(route, req.StableService, canary, req.Weight)
	}
	// Check that the route takes the canary before making the Service it will route to.
	route, err := e.getRoute(ctx, req.Namespace, req.Route)
	if err != nil {
		return err
	}
	if route == nil {
		return fmt.Errorf("no HTTPRoute %q in namespace %s", req.Route, req.Namespace)
	}
	if err := edit(route.DeepCopy()); err != nil {
		return err
	}
	// The Service first, so that the route never points at a backend that does not exist.
	if err := e.ensureCanaryService(ctx, stable, req.Owner); err != nil {
		return err
	}
	return e.editRoute(ctx, req.Namespace, req.Route, route, false, edit)
}

// RestoreRoute undoes SetRoute: in every rule of route that has a backendRef to the canary Service of
// stableService, it removes that backendRef and gives the stable backend back the weight recorded in
// StableWeightAnnotation (the default when none is recorded), then deletes owner's canary Service. It writes nothing
// when there is nothing to restore, and a missing route (or a cluster without the Gateway API) is nothing to restore:
// the canary Service is deleted all the same. Rules that no longer have the canary backendRef (the route was
// re-applied from Git since) are left as they are.
func (e *Engine) RestoreRoute(ctx context.Context, namespace, owner, route, stableService string) error {
	if err := validateRouteNames(namespace, owner, route, stableService); err != nil {
		return err
	}
	canary := CanaryServiceName(stableService)
	err := e.editRoute(ctx, namespace, route, nil, true, func(r *unstructured.Unstructured) error {
		restoreRouteWeights(r, stableService, canary)
		return nil
	})
	if err != nil {
		return err
	}
	// The route first, so that it never points at a backend that does not exist.
	return e.deleteCanaryService(ctx, namespace, owner, stableService)
}

// errNoRouteKind is the error of a cluster that does not serve HTTPRoutes.
var errNoRouteKind = fmt.Errorf("the cluster does not serve HTTPRoute (%s): install the Gateway API to route the canary's traffic, or name no route", httpRouteGVK.GroupVersion())

// getRoute reads an HTTPRoute live, nil when there is none.
func (e *Engine) getRoute(ctx context.Context, namespace, name string) (*unstructured.Unstructured, error) {
	route := &unstructured.Unstructured{}
	route.SetGroupVersionKind(httpRouteGVK)
	err := e.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, route)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case meta.IsNoMatchError(err):
		return nil, errNoRouteKind
	case err != nil:
		return nil, fmt.Errorf("reading HTTPRoute %s/%s: %w", namespace, name, err)
	}
	return route, nil
}

// editRoute applies edit to the route — to read when given, else to the route as it is now, and again to the route
// as it is after a conflicting write — and updates it when edit changed it. A route that is missing (or a cluster
// without HTTPRoutes) is nothing to edit when missingOK, and an error otherwise.
func (e *Engine) editRoute(ctx context.Context, namespace, name string, read *unstructured.Unstructured, missingOK bool, edit func(*unstructured.Unstructured) error) error {
	missing := func(err error) error {
		if missingOK {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("no HTTPRoute %q in namespace %s", name, namespace)
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		route := read
		read = nil
		if route == nil {
			var err error
			route, err = e.getRoute(ctx, namespace, name)
			if errors.Is(err, errNoRouteKind) {
				return missing(err)
			}
			if err != nil {
				return err
			}
			if route == nil {
				return missing(nil)
			}
		}
		edited := route.DeepCopy()
		if err := edit(edited); err != nil {
			return err
		}
		if reflect.DeepEqual(edited.Object, route.Object) {
			return nil
		}
		err := e.c.Update(ctx, edited, client.FieldOwner(FieldManager))
		switch {
		case apierrors.IsConflict(err):
			return err // read it again
		case apierrors.IsNotFound(err):
			return missing(nil) // deleted since it was read
		case err != nil:
			return fmt.Errorf("updating HTTPRoute %s/%s: %w", namespace, name, err)
		}
		return nil
	})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("updating HTTPRoute %s/%s: %w", namespace, name, err)
	}
	return err
}

// ruleRefs sorts the backendRefs of one rule by what they point at.
type ruleRefs struct {
	stable, canary []int
	// others are the other backends that get traffic (weight above 0), as "Kind name" for messages.
	others []string
}

// classify sorts refs, the backendRefs of a rule of a route in namespace, into those to Service stable, those to
// Service canary and the others, reading each through the typed gateway-api struct.
func classify(refs []any, namespace, stable, canary string) (ruleRefs, error) {
	var out ruleRefs
	for j, r := range refs {
		m, ok := r.(map[string]any)
		if !ok {
			return out, fmt.Errorf("backendRefs[%d] is not an object", j)
		}
		ref := gatewayv1.HTTPBackendRef{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &ref); err != nil {
			return out, fmt.Errorf("backendRefs[%d]: %w", j, err)
		}
		switch {
		case isService(ref.BackendObjectReference, namespace, stable):
			out.stable = append(out.stable, j)
		case isService(ref.BackendObjectReference, namespace, canary):
			out.canary = append(out.canary, j)
		case ref.Weight == nil || *ref.Weight > 0:
			kind := "Service"
			if ref.Kind != nil {
				kind = string(*ref.Kind)
			}
			out.others = append(out.others, kind+" "+string(ref.Name))
		}
	}
	return out, nil
}

// isService tells whether ref points at the Service name in namespace: core group, kind Service (both the
// defaults) and no other namespace.
func isService(ref gatewayv1.BackendObjectReference, namespace, name string) bool {
	return (ref.Group == nil || *ref.Group == "") &&
		(ref.Kind == nil || *ref.Kind == "Service") &&
		(ref.Namespace == nil || string(*ref.Namespace) == namespace) &&
		string(ref.Name) == name
}

// rules returns the rules of route, to edit in place.
func rules(route *unstructured.Unstructured) ([]map[string]any, error) {
	v, found, err := unstructured.NestedFieldNoCopy(route.Object, "spec", "rules")
	if err != nil || !found {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("HTTPRoute %s: spec.rules is not a list", route.GetName())
	}
	out := make([]map[string]any, 0, len(list))
	for i, r := range list {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("HTTPRoute %s: spec.rules[%d] is not an object", route.GetName(), i)
		}
		out = append(out, m)
	}
	return out, nil
}

// ruleName names rule i for messages: its index and, when it has one, its name.
func ruleName(rule map[string]any, i int) string {
	if name, ok := rule["name"].(string); ok && name != "" {
		return fmt.Sprintf("rule %d (%s)", i, name)
	}
	return fmt.Sprintf("rule %d", i)
}

// weightOf is a backendRef's weight, nil when it has none.
func weightOf(ref map[string]any) *int32 {
	typed := gatewayv1.HTTPBackendRef{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(ref, &typed); err != nil {
		return nil
	}
	return typed.Weight
}

// setWeight sets a backendRef's weight, or removes it for nil.
func setWeight(ref map[string]any, w *int32) {
	if w == nil {
		delete(ref, "weight")
		return
	}
	ref["weight"] = int64(*w)
}

// setRouteWeights edits route in place for SetRoute (see there). Only the backendRefs of the rules that route to
// stable and the annotation change: the rest of the route is kept as read, fields that the gateway-api types of
// this build do not know included.
func setRouteWeights(route *unstructured.Unstructured, stable, canary string, weight int32) error {
	records, err := readStableWeights(route)
	if err != nil {
		return fmt.Errorf("HTTPRoute %s: %w (remove the annotation to start over)", route.GetName(), err)
	}
	list, err := rules(route)
	if err != nil {
		return err
	}
	was := records[stable]
	record := map[string]*int32{}
	var silent int
	for i, rule := range list {
		refs, _ := rule["backendRefs"].([]any)
		c, err := classify(refs, route.GetNamespace(), stable, canary)
		if err != nil {
			return fmt.Errorf("HTTPRoute %s %s: %w", route.GetName(), ruleName(rule, i), err)
		}
		if len(c.stable) == 0 {
			continue // a rule that does not route to the stable Service is not the canary's
		}
		if len(c.stable) > 1 {
			return fmt.Errorf("HTTPRoute %s %s has %d backendRefs to Service %s: Ferry sets the weight of one", route.GetName(), ruleName(rule, i), len(c.stable), stable)
		}
		key := strconv.Itoa(i)
		stableRef := refs[c.stable[0]].(map[string]any)
		var original *int32
		switch recorded, ok := was[key]; {
		case len(c.canary) == 0:
			// Ferry's weights are not in place (first call, or the route was re-applied since): the weight now is
			// the original.
			original = weightOf(stableRef)
			if original != nil && *original == 0 {
				silent++
				continue // the rule sends the stable Service no traffic, and so none to the canary either
			}
		case ok:
			original = recorded
		default:
			// Ferry's canary backendRef without a record of the weight it replaced: the default is the one weight
			// that sends a single backend all of the rule's traffic, as it did.
			original = nil
		}
		if len(c.others) > 0 {
			return fmt.Errorf("HTTPRoute %s %s also routes to %s: Ferry sets weights only in rules whose only backend is Service %s, where the canary's weight is its share of the rule", route.GetName(), ruleName(rule, i), c.others[0], stable)
		}
		record[key] = original
		setWeight(stableRef, ptrTo(100-weight))
		canaryRef, _ := runtime.DeepCopyJSONValue(stableRef).(map[string]any)
		canaryRef["name"] = canary
		setWeight(canaryRef, ptrTo(weight))
		if len(c.canary) == 0 {
			refs = append(refs, canaryRef)
		} else {
			refs[c.canary[0]] = canaryRef
			refs = removeIndices(refs, c.canary[1:])
		}
		rule["backendRefs"] = refs
	}
	if len(record) == 0 {
		if silent > 0 {
			return fmt.Errorf("HTTPRoute %s sends Service %s no traffic: its weight is 0 in every rule that routes to it", route.GetName(), stable)
		}
		return fmt.Errorf("HTTPRoute %s has no rule with a backendRef to Service %s in namespace %s", route.GetName(), stable, route.GetNamespace())
	}
	records[stable] = record
	return writeStableWeights(route, records)
}

// restoreRouteWeights edits route in place for RestoreRoute (see there).
func restoreRouteWeights(route *unstructured.Unstructured, stable, canary string) {
	records, err := readStableWeights(route)
	if err != nil {
		records = map[string]map[string]*int32{} // unreadable: restore the defaults, and drop it below
	}
	list, _ := rules(route)
	was := records[stable]
	for i, rule := range list {
		refs, _ := rule["backendRefs"].([]any)
		c, err := classify(refs, route.GetNamespace(), stable, canary)
		if err != nil || len(c.canary) == 0 {
			continue // not Ferry's weights (any more): leave the rule as it is
		}
		for _, j := range c.stable {
			setWeight(refs[j].(map[string]any), was[strconv.Itoa(i)])
		}
		rule["backendRefs"] = removeIndices(refs, c.canary)
	}
	delete(records, stable)
	_ = writeStableWeights(route, records)
}

// removeIndices returns refs without the elements at the ascending indices drop.
func removeIndices(refs []any, drop []int) []any {
	out := make([]any, 0, len(refs))
	for j, r := range refs {
		if len(drop) > 0 && drop[0] == j {
			drop = drop[1:]
			continue
		}
		out = append(out, r)
	}
	return out
}

// readStableWeights parses StableWeightAnnotation; an absent annotation is an empty record.
func readStableWeights(route *unstructured.Unstructured) (map[string]map[string]*int32, error) {
	records := map[string]map[string]*int32{}
	value, ok := route.GetAnnotations()[StableWeightAnnotation]
	if !ok {
		return records, nil
	}
	if err := json.Unmarshal([]byte(value), &records); err != nil || records == nil {
		return map[string]map[string]*int32{}, fmt.Errorf("annotation %s: %q is not a record of weights", StableWeightAnnotation, value)
	}
	return records, nil
}

// writeStableWeights sets StableWeightAnnotation to records, or removes it when there are none.
func writeStableWeights(route *unstructured.Unstructured, records map[string]map[string]*int32) error {
	annotations := route.GetAnnotations()
	if len(records) == 0 {
		if _, ok := annotations[StableWeightAnnotation]; ok {
			delete(annotations, StableWeightAnnotation)
			if len(annotations) == 0 {
				annotations = nil // no empty map where there was none
			}
			route.SetAnnotations(annotations)
		}
		return nil
	}
	value, err := json.Marshal(records) // map keys sorted: the same records, the same value
	if err != nil {
		return err
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[StableWeightAnnotation] = string(value)
	route.SetAnnotations(annotations)
	return nil
}

func ptrTo(v int32) *int32 { return &v }
