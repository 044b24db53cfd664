package canary

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ferrycd/ferry/internal/sync"
)

// routeStage is a namespace with a stable Service "shop" (selector app=shop, tier=web) that HTTPRoutes route to.
type routeStage struct {
	ns, owner string
	gw        client.Client
	stable    *corev1.Service
}

func newRouteStage(t *testing.T) *routeStage {
	t.Helper()
	gw := gatewayClient(t)
	s := &routeStage{ns: env.Namespace(t), owner: "shop.prod", gw: gw}
	s.stable = s.service(t, "shop", map[string]string{"app": "shop", "tier": "web"})
	return s
}

// engine is a new Engine on the test's client, whose scheme has no gateway-api types: as a restarted controller
// would have, with nothing remembered.
func (s *routeStage) engine() *Engine { return New(env.Client) }

func (s *routeStage) service(t *testing.T, name string, selector map[string]string) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name, Labels: map[string]string{"app": "shop", sync.OwnerLabel: s.owner}},
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if err := env.Client.Create(testContext(t), svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

// backend is a backendRef to Service name, port 80, with weight (nil for none).
func backend(name string, weight *int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptr.To[gatewayv1.PortNumber](80)},
		Weight:                 weight,
	}}
}

func rule(path string, refs ...gatewayv1.HTTPBackendRef) gatewayv1.HTTPRouteRule {
	return gatewayv1.HTTPRouteRule{
		Matches:     []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To(path)}}},
		BackendRefs: refs,
	}
}

func (s *routeStage) route(t *testing.T, name string, rules ...gatewayv1.HTTPRouteRule) *gatewayv1.HTTPRoute {
	t.Helper()
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "gateway"}}},
			Rules:           rules,
		},
	}
	if err := s.gw.Create(testContext(t), route); err != nil {
		t.Fatal(err)
	}
	return route
}

// live reads a route, nil when there is none.
func (s *routeStage) live(t *testing.T, name string) *gatewayv1.HTTPRoute {
	t.Helper()
	route := &gatewayv1.HTTPRoute{}
	err := s.gw.Get(testContext(t), client.ObjectKey{Namespace: s.ns, Name: name}, route)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return route
}

// canaryService reads the canary Service of shop, nil when there is none.
func (s *routeStage) canaryService(t *testing.T) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{}
	err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: s.ns, Name: "shop-canary"}, svc)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func (s *routeStage) set(t *testing.T, route string, weight int32) {
	t.Helper()
	req := RouteRequest{Namespace: s.ns, Owner: s.owner, Route: route, StableService: "shop", Weight: weight}
	if err := s.engine().SetRoute(testContext(t), req); err != nil {
		t.Fatal(err)
	}
}

func (s *routeStage) restore(t *testing.T, route string) {
	t.Helper()
	if err := s.engine().RestoreRoute(testContext(t), s.ns, s.owner, route, "shop"); err != nil {
		t.Fatal(err)
	}
}

// refs renders the backendRefs of rule i of route as "name:port:weight" ("-" for no weight).
func refs(route *gatewayv1.HTTPRoute, i int) []string {
	var out []string
	for _, ref := range route.Spec.Rules[i].BackendRefs {
		weight := "-"
		if ref.Weight != nil {
			weight = fmt.Sprint(*ref.Weight)
		}
		out = append(out, fmt.Sprintf("%s:%d:%s", ref.Name, *ref.Port, weight))
	}
	return out
}

func checkRefs(t *testing.T, route *gatewayv1.HTTPRoute, i int, want ...string) {
	t.Helper()
	if got := refs(route, i); !reflect.DeepEqual(got, want) {
		t.Errorf("rule %d backendRefs %v, want %v", i, got, want)
	}
}

func TestSetRouteWeights(t *testing.T) {
	s := newRouteStage(t)
	s.route(t, "shop", rule("/", backend("shop", nil)))
	if got := refs(s.live(t, "shop"), 0); got[0] != "shop:80:1" {
		t.Fatalf("the API server did not default the weight to 1: %v", got)
	}
	for _, w := range []int32{10, 50, 100} {
		s.set(t, "shop", w)
		route := s.live(t, "shop")
		checkRefs(t, route, 0, fmt.Sprintf("shop:80:%d", 100-w), fmt.Sprintf("shop-canary:80:%d", w))
		if got := route.Annotations[StableWeightAnnotation]; got != `{"shop":{"0":1}}` {
			t.Errorf("weight %d: annotation %s=%s, want the original weight 1 recorded", w, StableWeightAnnotation, got)
		}
		if s.canaryService(t) == nil {
			t.Fatalf("weight %d: no canary Service", w)
		}
	}

	s.restore(t, "shop")
	route := s.live(t, "shop")
	checkRefs(t, route, 0, "shop:80:1")
	if _, ok := route.Annotations[StableWeightAnnotation]; ok {
		t.Errorf("annotation %s left on the restored route", StableWeightAnnotation)
	}
	if s.canaryService(t) != nil {
		t.Error("the canary Service is still there after the restore")
	}
}

func TestSetRouteRestoresAnExplicitWeight(t *testing.T) {
	s := newRouteStage(t)
	s.route(t, "shop", rule("/", backend("shop", ptr.To[int32](7))))
	s.set(t, "shop", 40)
	route := s.live(t, "shop")
	checkRefs(t, route, 0, "shop:80:60", "shop-canary:80:40")
	if got := route.Annotations[StableWeightAnnotation]; got != `{"shop":{"0":7}}` {
		t.Errorf("annotation %s, want 7 recorded", got)
	}
	s.restore(t, "shop")
	checkRefs(t, s.live(t, "shop"), 0, "shop:80:7")
}

func TestSetRouteIsIdempotent(t *testing.T) {
	s := newRouteStage(t)
	s.route(t, "shop", rule("/", backend("shop", nil)))
	s.set(t, "shop", 20)
	routeVersion, serviceVersion := s.live(t, "shop").ResourceVersion, s.canaryService(t).ResourceVersion

	// The API server would take an unchanged update for no write too; the engine sends none.
	updates := 0
	watching, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	counting := interceptor.NewClient(watching, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			updates++
			return c.Update(ctx, obj, opts...)
		},
	})
	req := RouteRequest{Namespace: s.ns, Owner: s.owner, Route: "shop", StableService: "shop", Weight: 20}
	if err := New(counting).SetRoute(testContext(t), req); err != nil {
		t.Fatal(err)
	}
	if updates != 0 {
		t.Errorf("the same request sent %d updates of the route", updates)
	}
	if got := s.live(t, "shop").ResourceVersion; got != routeVersion {
		t.Errorf("the same request wrote the route again: resourceVersion %s, was %s", got, routeVersion)
	}
	if got := s.canaryService(t).ResourceVersion; got != serviceVersion {
		t.Errorf("the same request wrote the canary Service again: resourceVersion %s, was %s", got, serviceVersion)
	}

	s.set(t, "shop", 30) // another weight changes the route only
	route := s.live(t, "shop")
	checkRefs(t, route, 0, "shop:80:70", "shop-canary:80:30")
	if route.ResourceVersion == routeVersion {
		t.Error("a new weight did not write the route")
	}
	if got := s.canaryService(t).ResourceVersion; got != serviceVersion {
		t.Errorf("a new weight wrote the canary Service: resourceVersion %s, was %s", got, serviceVersion)
	}

	s.restore(t, "shop")
	restored := s.live(t, "shop").ResourceVersion
	if err := New(counting).RestoreRoute(testContext(t), s.ns, s.owner, "shop", "shop"); err != nil {
		t.Fatal(err)
	}
	if updates != 0 {
		t.Errorf("restoring a restored route sent %d updates", updates)
	}
	if got := s.live(t, "shop").ResourceVersion; got != restored {
		t.Errorf("restoring a restored route wrote it: resourceVersion %s, was %s", got, restored)
	}
}

func TestSetRouteTwoRules(t *testing.T) {
	s := newRouteStage(t)
	s.service(t, "cart", map[string]string{"app": "cart"})
	header := gatewayv1.HTTPRouteFilter{
		Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier,
		RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{
			Set: []gatewayv1.HTTPHeader{{Name: "X-Backend", Value: "shop"}},
		},
	}
	withFilter := backend("shop", ptr.To[int32](3))
	withFilter.Filters = []gatewayv1.HTTPRouteFilter{header}
	s.route(t, "shop",
		rule("/", withFilter),
		rule("/api", backend("shop", nil)),
		rule("/cart", backend("cart", nil)),
	)
	before := s.live(t, "shop")

	s.set(t, "shop", 25)
	route := s.live(t, "shop")
	checkRefs(t, route, 0, "shop:80:75", "shop-canary:80:25")
	checkRefs(t, route, 1, "shop:80:75", "shop-canary:80:25")
	if got := route.Spec.Rules[0].BackendRefs[1].Filters; !reflect.DeepEqual(got, withFilter.Filters) {
		t.Errorf("the canary backendRef has filters %+v, want the stable one's %+v", got, withFilter.Filters)
	}
	if !reflect.DeepEqual(route.Spec.Rules[2], before.Spec.Rules[2]) {
		t.Errorf("the rule without the stable Service changed:\n%+v\nwas\n%+v", route.Spec.Rules[2], before.Spec.Rules[2])
	}
	for i := range 2 {
		if !reflect.DeepEqual(route.Spec.Rules[i].Matches, before.Spec.Rules[i].Matches) {
			t.Errorf("rule %d matches changed", i)
		}
	}
	if got := route.Annotations[StableWeightAnnotation]; got != `{"shop":{"0":3,"1":1}}` {
		t.Errorf("annotation %s", got)
	}

	s.restore(t, "shop")
	route = s.live(t, "shop")
	if !reflect.DeepEqual(route.Spec, before.Spec) {
		t.Errorf("restored spec\n%+v\nwant\n%+v", route.Spec, before.Spec)
	}
}

func TestSetRouteErrors(t *testing.T) {
	s := newRouteStage(t)
	s.service(t, "cart", map[string]string{"app": "cart"})
	s.service(t, "manual", nil)
	s.route(t, "cart-only", rule("/", backend("cart", nil)))
	s.route(t, "split", rule("/", backend("shop", nil), backend("cart", nil)))
	s.route(t, "manual", rule("/", backend("manual", nil)))
	s.route(t, "silent", rule("/", backend("shop", ptr.To[int32](0)), backend("cart", nil)))
	for _, tc := range []struct {
		name string
		req  RouteRequest
		want string
	}{
		{"missing route", RouteRequest{Route: "nope", StableService: "shop", Weight: 10}, `no HTTPRoute "nope" in namespace ` + s.ns},
		{"missing Service", RouteRequest{Route: "cart-only", StableService: "nope", Weight: 10}, `no Service "nope" in namespace ` + s.ns},
		{"no rule to the Service", RouteRequest{Route: "cart-only", StableService: "shop", Weight: 10}, "HTTPRoute cart-only has no rule with a backendRef to Service shop"},
		{"another backend in the rule", RouteRequest{Route: "split", StableService: "shop", Weight: 10}, "HTTPRoute split rule 0 also routes to Service cart"},
		{"no selector", RouteRequest{Route: "manual", StableService: "manual", Weight: 10}, "Service manual has no selector"},
		{"no traffic to the Service", RouteRequest{Route: "silent", StableService: "shop", Weight: 10}, "HTTPRoute silent sends Service shop no traffic"},
		{"weight", RouteRequest{Route: "cart-only", StableService: "shop", Weight: 101}, "weight: 101, must be 0..100"},
		{"no owner", RouteRequest{Route: "cart-only", StableService: "shop", Weight: 10, Owner: "-"}, "owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.Namespace = s.ns
			if req.Owner == "" {
				req.Owner = s.owner
			}
			versions := map[string]string{}
			for _, name := range []string{"cart-only", "split", "manual", "silent"} {
				versions[name] = s.live(t, name).ResourceVersion
			}
			err := s.engine().SetRoute(testContext(t), req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			for name, was := range versions {
				if got := s.live(t, name).ResourceVersion; got != was {
					t.Errorf("HTTPRoute %s written after an error", name)
				}
			}
			for _, name := range []string{"shop-canary", "manual-canary"} {
				err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: s.ns, Name: name}, &corev1.Service{})
				if !apierrors.IsNotFound(err) {
					t.Errorf("Service %s after an error: %v", name, err)
				}
			}
		})
	}
}

func TestCanaryService(t *testing.T) {
	s := newRouteStage(t)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "web", Labels: map[string]string{"app": "web", sync.OwnerLabel: s.owner}},
		Spec: corev1.ServiceSpec{
			Type:            corev1.ServiceTypeNodePort,
			SessionAffinity: corev1.ServiceAffinityClientIP,
			Selector:        map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), AppProtocol: ptr.To("http")},
				{Name: "grpc", Port: 9000, TargetPort: intstr.FromInt32(9001), Protocol: corev1.ProtocolTCP},
			},
		},
	}
	if err := env.Client.Create(testContext(t), svc); err != nil {
		t.Fatal(err)
	}
	s.route(t, "web", rule("/", backend("web", nil)))
	req := RouteRequest{Namespace: s.ns, Owner: s.owner, Route: "web", StableService: "web", Weight: 5}
	if err := s.engine().SetRoute(testContext(t), req); err != nil {
		t.Fatal(err)
	}

	canary := &corev1.Service{}
	if err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: s.ns, Name: "web-canary"}, canary); err != nil {
		t.Fatal(err)
	}
	if canary.Spec.Type != corev1.ServiceTypeClusterIP || canary.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
		t.Errorf("canary Service type %s, session affinity %s; want ClusterIP, ClientIP", canary.Spec.Type, canary.Spec.SessionAffinity)
	}
	type port struct {
		name, protocol, target, app string
		port                        int32
		nodePort                    int32
	}
	var got []port
	for _, p := range canary.Spec.Ports {
		got = append(got, port{p.Name, string(p.Protocol), p.TargetPort.String(), ptr.Deref(p.AppProtocol, ""), p.Port, p.NodePort})
	}
	want := []port{{"http", "TCP", "http", "http", 80, 0}, {"grpc", "TCP", "9001", "", 9000, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("canary Service ports %+v, want %+v", got, want)
	}
	wantSelector := map[string]string{"app": "web", TrackLabel: TrackCanary}
	if !labels.Equals(canary.Spec.Selector, wantSelector) {
		t.Errorf("canary Service selector %v, want %v", canary.Spec.Selector, wantSelector)
	}
	selector := labels.SelectorFromSet(canary.Spec.Selector)
	for track, want := range map[string]bool{"": false, TrackCanary: true, TrackBaseline: false} {
		pod := labels.Set{"app": "web"}
		if track != "" {
			pod[TrackLabel] = track
		}
		if selector.Matches(pod) != want || !labels.SelectorFromSet(svc.Spec.Selector).Matches(pod) {
			t.Errorf("pod labels %v: canary Service selects it %v, want %v (and the stable Service selects every one)", pod, !want, want)
		}
	}
	wantLabels := map[string]string{CanaryOfLabel: s.owner, TrackLabel: TrackCanary}
	if !labels.Equals(canary.Labels, wantLabels) {
		t.Errorf("canary Service labels %v, want %v (no %s)", canary.Labels, wantLabels, sync.OwnerLabel)
	}
	refs := canary.OwnerReferences
	if len(refs) != 1 || refs[0].APIVersion != "v1" || refs[0].Kind != "Service" || refs[0].Name != "web" || refs[0].UID != svc.UID || ptr.Deref(refs[0].Controller, false) {
		t.Errorf("canary Service ownerReferences %+v, want one (not a controller) to Service web %s", refs, svc.UID)
	}
}

func TestRestoreRouteAfterTheRouteWasDeleted(t *testing.T) {
	s := newRouteStage(t)
	route := s.route(t, "shop", rule("/", backend("shop", nil)))
	s.set(t, "shop", 10)
	if err := s.gw.Delete(testContext(t), route); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the route to go", func(ctx context.Context) (bool, error) {
		err := s.gw.Get(ctx, client.ObjectKeyFromObject(route), &gatewayv1.HTTPRoute{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	s.restore(t, "shop")
	if s.canaryService(t) != nil {
		t.Error("the canary Service is still there")
	}
	s.restore(t, "shop") // and again, with nothing left at all
}

func TestRestoreRouteWithNothingToRestore(t *testing.T) {
	s := newRouteStage(t)
	s.route(t, "shop", rule("/", backend("shop", ptr.To[int32](4))))
	was := s.live(t, "shop").ResourceVersion
	s.restore(t, "shop")
	if got := s.live(t, "shop").ResourceVersion; got != was {
		t.Errorf("restoring a route Ferry never changed wrote it: resourceVersion %s, was %s", got, was)
	}
	s.restore(t, "no-such-route")
}

func TestSetRouteLeavesAnotherServiceAlone(t *testing.T) {
	s := newRouteStage(t)
	s.route(t, "shop", rule("/", backend("shop", nil)))
	s.service(t, "shop-canary", map[string]string{"app": "something-else"})
	was := s.live(t, "shop").ResourceVersion

	req := RouteRequest{Namespace: s.ns, Owner: s.owner, Route: "shop", StableService: "shop", Weight: 10}
	err := s.engine().SetRoute(testContext(t), req)
	if err == nil || !strings.Contains(err.Error(), "Service shop-canary exists and is not the canary Service of shop.prod") {
		t.Fatalf("error %v, want one about someone else's shop-canary", err)
	}
	if got := s.live(t, "shop").ResourceVersion; got != was {
		t.Error("the route was written")
	}
	s.restore(t, "shop")
	if svc := s.canaryService(t); svc == nil || svc.Spec.Selector["app"] != "something-else" {
		t.Errorf("RestoreRoute deleted or changed someone else's Service: %+v", svc)
	}
}

// A route re-applied from Git during the canary loses Ferry's backendRef: the next SetRoute records the weight the
// route has then, and RestoreRoute puts that back.
func TestSetRouteAfterTheRouteWasReapplied(t *testing.T) {
	s := newRouteStage(t)
	s.route(t, "shop", rule("/", backend("shop", nil)))
	s.set(t, "shop", 10)

	route := s.live(t, "shop")
	route.Spec.Rules[0].BackendRefs = []gatewayv1.HTTPBackendRef{backend("shop", ptr.To[int32](5))}
	if err := s.gw.Update(testContext(t), route); err != nil {
		t.Fatal(err)
	}
	s.set(t, "shop", 10)
	route = s.live(t, "shop")
	checkRefs(t, route, 0, "shop:80:90", "shop-canary:80:10")
	if got := route.Annotations[StableWeightAnnotation]; got != `{"shop":{"0":5}}` {
		t.Errorf("annotation %s, want the weight of the re-applied route recorded", got)
	}
	s.restore(t, "shop")
	checkRefs(t, s.live(t, "shop"), 0, "shop:80:5")
}

// Two stable Services routed by one HTTPRoute each get their own canary and their own record.
func TestSetRouteTwoServicesOneRoute(t *testing.T) {
	s := newRouteStage(t)
	s.service(t, "cart", map[string]string{"app": "cart"})
	s.route(t, "site", rule("/", backend("shop", nil)), rule("/cart", backend("cart", ptr.To[int32](2))))
	s.set(t, "site", 10)
	req := RouteRequest{Namespace: s.ns, Owner: s.owner, Route: "site", StableService: "cart", Weight: 50}
	if err := s.engine().SetRoute(testContext(t), req); err != nil {
		t.Fatal(err)
	}
	route := s.live(t, "site")
	checkRefs(t, route, 0, "shop:80:90", "shop-canary:80:10")
	checkRefs(t, route, 1, "cart:80:50", "cart-canary:80:50")
	if got := route.Annotations[StableWeightAnnotation]; got != `{"cart":{"1":2},"shop":{"0":1}}` {
		t.Errorf("annotation %s", got)
	}
	s.restore(t, "site")
	route = s.live(t, "site")
	checkRefs(t, route, 0, "shop:80:1")
	checkRefs(t, route, 1, "cart:80:50", "cart-canary:80:50")
	if got := route.Annotations[StableWeightAnnotation]; got != `{"cart":{"1":2}}` {
		t.Errorf("annotation after restoring shop %s", got)
	}
}
