package canary

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// These tests edit routes without an API server: what a CRD without defaults (or another implementation's) leaves
// unset, and the arithmetic of the traffic share.

func unstructuredRoute(annotation string, rules ...any) *unstructured.Unstructured {
	route := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "HTTPRoute",
		"metadata":   map[string]any{"name": "shop", "namespace": "ns"},
		"spec":       map[string]any{"rules": rules},
	}}
	if annotation != "" {
		route.SetAnnotations(map[string]string{StableWeightAnnotation: annotation})
	}
	return route
}

func ref(name string, weight ...int64) map[string]any {
	m := map[string]any{"name": name, "port": int64(80), "x-unknown": "kept"}
	if len(weight) > 0 {
		m["weight"] = weight[0]
	}
	return m
}

func backendRefs(refs ...any) map[string]any { return map[string]any{"backendRefs": refs} }

func TestRouteWeightsWithoutAWeight(t *testing.T) {
	original := unstructuredRoute("", backendRefs(ref("shop")))
	route := original.DeepCopy()
	if err := setRouteWeights(route, "shop", "shop-canary", 10); err != nil {
		t.Fatal(err)
	}
	want := unstructuredRoute(`{"shop":{"0":null}}`, backendRefs(ref("shop", 90), ref("shop-canary", 10)))
	if !reflect.DeepEqual(route.Object, want.Object) {
		t.Fatalf("set:\n%v\nwant\n%v", route.Object, want.Object)
	}
	restoreRouteWeights(route, "shop", "shop-canary")
	if !reflect.DeepEqual(route.Object, original.Object) {
		t.Fatalf("restored:\n%v\nwant the weight unset again:\n%v", route.Object, original.Object)
	}
}

func TestRouteWeightsRules(t *testing.T) {
	for _, tc := range []struct {
		name       string
		route      *unstructured.Unstructured
		want       *unstructured.Unstructured
		err        string
		restoredTo *unstructured.Unstructured // when not the route as it was
	}{{
		name:  "another backend with weight 0 gets no traffic and stays",
		route: unstructuredRoute("", backendRefs(ref("shop", 2), ref("old", 0))),
		want:  unstructuredRoute(`{"shop":{"0":2}}`, backendRefs(ref("shop", 70), ref("old", 0), ref("shop-canary", 30))),
	}, {
		name:  "a rule with weight 0 is left alone",
		route: unstructuredRoute("", backendRefs(ref("shop", 0), ref("other")), backendRefs(ref("shop"))),
		want:  unstructuredRoute(`{"shop":{"1":null}}`, backendRefs(ref("shop", 0), ref("other")), backendRefs(ref("shop", 70), ref("shop-canary", 30))),
	}, {
		name:  "a second canary backendRef is dropped",
		route: unstructuredRoute(`{"shop":{"0":4}}`, backendRefs(ref("shop-canary", 9), ref("shop", 50), ref("shop-canary", 1))),
		want:  unstructuredRoute(`{"shop":{"0":4}}`, backendRefs(ref("shop-canary", 30), ref("shop", 70))),
		// Restored from the record; both canary refs had been Ferry's.
		restoredTo: unstructuredRoute("", backendRefs(ref("shop", 4))),
	}, {
		name:       "Ferry's backendRef without a record restores the default",
		route:      unstructuredRoute("", backendRefs(ref("shop", 80), ref("shop-canary", 20))),
		want:       unstructuredRoute(`{"shop":{"0":null}}`, backendRefs(ref("shop", 70), ref("shop-canary", 30))),
		restoredTo: unstructuredRoute("", backendRefs(ref("shop"))),
	}, {
		name:  "a Service of the same name in another namespace is another backend",
		route: unstructuredRoute("", backendRefs(ref("shop"), map[string]any{"name": "shop", "namespace": "other", "port": int64(80)})),
		err:   "HTTPRoute shop rule 0 also routes to Service shop",
	}, {
		name:  "two backendRefs to the stable Service",
		route: unstructuredRoute("", map[string]any{"name": "main", "backendRefs": []any{ref("shop"), ref("shop")}}),
		err:   "HTTPRoute shop rule 0 (main) has 2 backendRefs to Service shop",
	}, {
		name:  "an unreadable record",
		route: unstructuredRoute("{", backendRefs(ref("shop"))),
		err:   "annotation ferry.dev/stable-weight",
		// RestoreRoute drops it rather than fail a rollback.
		restoredTo: unstructuredRoute("", backendRefs(ref("shop"))),
	}, {
		name:  "no rules",
		route: unstructuredRoute(""),
		err:   "HTTPRoute shop has no rule with a backendRef to Service shop",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			route := tc.route.DeepCopy()
			err := setRouteWeights(route, "shop", "shop-canary", 30)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(route.Object, tc.want.Object) {
					t.Fatalf("set:\n%v\nwant\n%v", route.Object, tc.want.Object)
				}
				again := route.DeepCopy()
				if err := setRouteWeights(again, "shop", "shop-canary", 30); err != nil || !reflect.DeepEqual(again.Object, route.Object) {
					t.Fatalf("setting again changed the route (%v):\n%v", err, again.Object)
				}
			}
			restoreRouteWeights(route, "shop", "shop-canary")
			want := tc.route
			if tc.restoredTo != nil {
				want = tc.restoredTo
			}
			if !reflect.DeepEqual(route.Object, want.Object) {
				t.Fatalf("restored:\n%v\nwant\n%v", route.Object, want.Object)
			}
		})
	}
}

func TestEffectiveShareAndRouteWeight(t *testing.T) {
	for _, tc := range []struct {
		weight, stable, canary, baseline int32
		share                            float64
	}{
		{0, 4, 1, 0, 0.2},
		{10, 4, 1, 0, 0.28},
		{10, 4, 1, 1, 0.1 + 0.9/6},
		{50, 9, 1, 0, 0.55},
		{100, 4, 1, 1, 1},
		{10, 0, 0, 0, 0.1},
		{30, 0, 2, 0, 1},
	} {
		if got := EffectiveShare(tc.weight, tc.stable, tc.canary, tc.baseline); math.Abs(got-tc.share) > 1e-9 {
			t.Errorf("EffectiveShare(%d, %d, %d, %d) = %v, want %v", tc.weight, tc.stable, tc.canary, tc.baseline, got, tc.share)
		}
	}
	for _, tc := range []struct{ target, stable, canary, baseline, weight int32 }{
		{28, 4, 1, 0, 10},
		{55, 9, 1, 0, 50},
		{20, 4, 1, 0, 0}, // the replica share already
		{5, 4, 1, 0, 0},  // below it: the least there is
		{100, 4, 1, 1, 100},
		{10, 0, 0, 0, 10},
		{10, 0, 3, 0, 100}, // only canary pods behind the stable Service
		{50, 4, 1, 1, 40},
	} {
		got := RouteWeight(tc.target, tc.stable, tc.canary, tc.baseline)
		if got != tc.weight {
			t.Errorf("RouteWeight(%d, %d, %d, %d) = %d, want %d", tc.target, tc.stable, tc.canary, tc.baseline, got, tc.weight)
		}
	}
}
