package canary

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/internal/sync"
	"github.com/ferrycd/ferry/internal/testenv"
)

func TestEnsureCreatesCopies(t *testing.T) {
	e := testenv.Need(t, env)
	s := newStage(t, e.Namespace(t), "shop.prod", "shop")
	stableBefore := s.stableVersion(t)
	stable := s.live(t, "shop")

	st, err := s.engine.Ensure(testContext(t), s.request(t, 2, true))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Copies) != 2 || st.Copies[0].Name != "shop-baseline" || st.Copies[1].Name != "shop-canary" {
		t.Fatalf("copies %+v, want shop-baseline and shop-canary", st.Copies)
	}
	for track, image := range map[string]string{TrackCanary: repo + "@" + digestB, TrackBaseline: repo + "@" + digestA} {
		cp := s.live(t, "shop-"+track)
		if cp == nil {
			t.Fatalf("no %s copy", track)
		}
		checkCopy(t, cp, stable, track, s.owner, 2)
		if got := containerImage(t, cp); got != image {
			t.Errorf("%s copy runs %s, want %s", track, got, image)
		}
	}
	for _, cp := range st.Copies {
		if cp.Desired != 2 || cp.Revision != "new-commit" || !strings.HasSuffix(cp.Image, map[string]string{TrackCanary: digestB, TrackBaseline: digestA}[cp.Track]) {
			t.Errorf("status of %s: %+v", cp.Name, cp)
		}
	}
	if st.Ready || !strings.Contains(st.Message, "not observed") {
		t.Errorf("copies without a status are ready: %+v", st)
	}
	if got := s.stableVersion(t); got != stableBefore {
		t.Errorf("the stable Deployment was written: resourceVersion %s, was %s", got, stableBefore)
	}
}

// checkCopy checks a copy's labels, selector, template, size, annotation and owner.
func checkCopy(t *testing.T, cp, stable *unstructured.Unstructured, track, owner string, replicas int64) {
	t.Helper()
	wantLabels := map[string]string{"app": "shop", "team": "web", TrackLabel: track, CanaryOfLabel: owner}
	if got := cp.GetLabels(); !labels.Equals(got, wantLabels) {
		t.Errorf("%s labels %v, want %v (no %s)", cp.GetName(), got, wantLabels, sync.OwnerLabel)
	}
	selector, _, _ := unstructured.NestedStringMap(cp.Object, "spec", "selector", "matchLabels")
	template, _, _ := unstructured.NestedStringMap(cp.Object, "spec", "template", "metadata", "labels")
	wantPodLabels := map[string]string{"app": "shop", TrackLabel: track}
	if !labels.Equals(selector, wantPodLabels) || !labels.Equals(template, wantPodLabels) {
		t.Errorf("%s selector %v, template labels %v; want %v", cp.GetName(), selector, template, wantPodLabels)
	}
	stableSelector, _, _ := unstructured.NestedStringMap(stable.Object, "spec", "selector", "matchLabels")
	stableTemplate, _, _ := unstructured.NestedStringMap(stable.Object, "spec", "template", "metadata", "labels")
	if !labels.SelectorFromSet(stableSelector).Matches(labels.Set(template)) {
		t.Errorf("the stable selector (and so the Service) does not match %s pods", cp.GetName())
	}
	if labels.SelectorFromSet(selector).Matches(labels.Set(stableTemplate)) {
		t.Errorf("%s selects the stable pods", cp.GetName())
	}
	if got, _, _ := unstructured.NestedInt64(cp.Object, "spec", "replicas"); got != replicas {
		t.Errorf("%s replicas %d, want %d", cp.GetName(), got, replicas)
	}
	if got := cp.GetAnnotations(); got[sync.RevisionAnnotation] != "new-commit" {
		t.Errorf("%s annotations %v, want %s=new-commit", cp.GetName(), got, sync.RevisionAnnotation)
	}
	refs := cp.GetOwnerReferences()
	if len(refs) != 1 || refs[0].UID != stable.GetUID() || refs[0].Kind != "Deployment" || refs[0].Name != stable.GetName() ||
		(refs[0].Controller != nil && *refs[0].Controller) {
		t.Errorf("%s ownerReferences %+v, want one non-controller reference to the stable Deployment %s", cp.GetName(), refs, stable.GetUID())
	}
}

func containerImage(t *testing.T, obj *unstructured.Unstructured) string {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("%s has %d containers", obj.GetName(), len(containers))
	}
	image, _ := containers[0].(map[string]any)["image"].(string)
	return image
}

func TestEnsureIsIdempotentAndResizes(t *testing.T) {
	e := testenv.Need(t, env)
	s := newStage(t, e.Namespace(t), "shop.prod", "shop")
	stableBefore := s.stableVersion(t)
	if _, err := s.engine.Ensure(testContext(t), s.request(t, 1, true)); err != nil {
		t.Fatal(err)
	}
	versions := map[string]string{}
	for _, name := range []string{"shop-canary", "shop-baseline"} {
		versions[name] = s.live(t, name).GetResourceVersion()
	}

	// The controller asks again with freshly read inputs, as it does after every restart.
	if _, err := s.engine.Ensure(testContext(t), s.request(t, 1, true)); err != nil {
		t.Fatal(err)
	}
	for name, was := range versions {
		if got := s.live(t, name).GetResourceVersion(); got != was {
			t.Errorf("the same Ensure wrote %s: resourceVersion %s, was %s", name, got, was)
		}
	}

	st, err := s.engine.Ensure(testContext(t), s.request(t, 3, true))
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range st.Copies {
		if cp.Desired != 3 {
			t.Errorf("%s desires %d replicas after the resize, want 3", cp.Name, cp.Desired)
		}
	}
	for name := range versions {
		if got, _, _ := unstructured.NestedInt64(s.live(t, name).Object, "spec", "replicas"); got != 3 {
			t.Errorf("%s has %d replicas, want 3", name, got)
		}
	}
	if got := s.stableVersion(t); got != stableBefore {
		t.Errorf("the stable Deployment was written: resourceVersion %s, was %s", got, stableBefore)
	}
}

func TestReadyFromStatus(t *testing.T) {
	e := testenv.Need(t, env)
	s := newStage(t, e.Namespace(t), "shop.prod", "shop")
	if _, err := s.engine.Ensure(testContext(t), s.request(t, 2, true)); err != nil {
		t.Fatal(err)
	}
	// No kube-controller-manager runs here: play the Deployment controller for the canary only.
	reportStatus(t, s.ns, "shop-canary", 2)
	st, err := s.engine.Observe(testContext(t), s.ns, s.owner)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready || !strings.Contains(st.Message, "shop-baseline") || strings.Contains(st.Message, "shop-canary") {
		t.Errorf("with only the canary ready: %+v", st)
	}

	reportStatus(t, s.ns, "shop-baseline", 2)
	st, err = s.engine.Ensure(testContext(t), s.request(t, 2, true))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Ready || st.Message != "ready: shop-baseline 2/2, shop-canary 2/2" {
		t.Errorf("with both copies ready: %+v", st)
	}
	for _, cp := range st.Copies {
		if cp.Ready != 2 || cp.Updated != 2 || cp.Available != 2 {
			t.Errorf("%s: %+v", cp.Name, cp)
		}
	}

	// A resize is a new generation the status has not caught up with.
	st, err = s.engine.Ensure(testContext(t), s.request(t, 3, true))
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready || !strings.Contains(st.Message, "generation 2 not observed") {
		t.Errorf("after a resize: %+v", st)
	}
	reportStatus(t, s.ns, "shop-canary", 3)
	reportStatus(t, s.ns, "shop-baseline", 2) // observed, but one replica short
	st, err = s.engine.Observe(testContext(t), s.ns, s.owner)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready || !strings.Contains(st.Message, "shop-baseline: 2 of 3 replicas updated") {
		t.Errorf("with the baseline short: %+v", st)
	}
}

// reportStatus writes a copy's status as the Deployment controller would once ready replicas are up.
func reportStatus(t *testing.T, ns, name string, ready int32) {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		t.Fatal(err)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: ready, ReadyReplicas: ready,
		UpdatedReplicas: ready, AvailableReplicas: ready}
	if err := env.Client.Status().Update(testContext(t), d); err != nil {
		t.Fatal(err)
	}
}

func TestObserve(t *testing.T) {
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	shop := newStage(t, ns, "shop.prod", "shop")
	cart := newStage(t, ns, "cart.prod", "cart")
	if _, err := shop.engine.Ensure(testContext(t), shop.request(t, 1, false)); err != nil {
		t.Fatal(err)
	}
	if _, err := cart.engine.Ensure(testContext(t), cart.request(t, 2, true)); err != nil {
		t.Fatal(err)
	}
	stableBefore := shop.stableVersion(t)

	// A new Engine, as after a restart.
	st, err := New(env.Client).Observe(testContext(t), ns, "shop.prod")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Copies) != 1 {
		t.Fatalf("shop's copies: %+v", st.Copies)
	}
	want := Copy{Name: "shop-canary", Track: TrackCanary, Desired: 1, Image: "busybox:1.36," + repo + "@" + digestB, Revision: "new-commit"}
	if st.Copies[0] != want {
		t.Errorf("Observe = %+v, want %+v", st.Copies[0], want)
	}
	st, err = New(env.Client).Observe(testContext(t), ns, "nobody")
	if err != nil || len(st.Copies) != 0 || st.Ready || st.Message != "no canary copies" {
		t.Errorf("Observe of a stage without copies = %+v, %v", st, err)
	}
	if got := shop.stableVersion(t); got != stableBefore {
		t.Errorf("Observe wrote the stable Deployment")
	}
}

func TestRemove(t *testing.T) {
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	shop := newStage(t, ns, "shop.prod", "shop")
	cart := newStage(t, ns, "cart.prod", "cart")
	for _, s := range []*stage{shop, cart} {
		if _, err := s.engine.Ensure(testContext(t), s.request(t, 1, true)); err != nil {
			t.Fatal(err)
		}
	}
	stableBefore := shop.stableVersion(t)

	removed, err := shop.engine.Remove(testContext(t), ns, "shop.prod")
	if err != nil || !removed {
		t.Fatalf("Remove = %v, %v; want true", removed, err)
	}
	waitFor(t, "shop's copies to go", func(ctx context.Context) (bool, error) {
		return shop.live(t, "shop-canary") == nil && shop.live(t, "shop-baseline") == nil, nil
	})
	if cart.live(t, "cart-canary") == nil || cart.live(t, "cart-baseline") == nil {
		t.Error("removing shop's copies removed cart's")
	}
	if got := shop.stableVersion(t); got != stableBefore {
		t.Errorf("Remove wrote the stable Deployment")
	}

	removed, err = shop.engine.Remove(testContext(t), ns, "shop.prod")
	if err != nil || removed {
		t.Errorf("Remove with nothing left = %v, %v; want false, nil", removed, err)
	}
	if _, err := shop.engine.Remove(testContext(t), ns, ""); err == nil {
		t.Error("Remove without an owner, which would select every stage's copies, was accepted")
	}
}

func TestEnsureWithoutBaselineRemovesTheOldOne(t *testing.T) {
	e := testenv.Need(t, env)
	s := newStage(t, e.Namespace(t), "shop.prod", "shop")
	if _, err := s.engine.Ensure(testContext(t), s.request(t, 1, true)); err != nil {
		t.Fatal(err)
	}
	st, err := s.engine.Ensure(testContext(t), s.request(t, 1, false))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Copies) != 1 || st.Copies[0].Track != TrackCanary {
		t.Errorf("copies %+v, want the canary alone", st.Copies)
	}
	waitFor(t, "the baseline copy to go", func(ctx context.Context) (bool, error) {
		return s.live(t, "shop-baseline") == nil, nil
	})
	if s.live(t, "shop-canary") == nil {
		t.Error("the canary copy went too")
	}
}

func TestEnsureLongName(t *testing.T) {
	e := testenv.Need(t, env)
	name := "storefront-checkout-payments-" + strings.Repeat("x", 30) // 59 characters
	s := newStage(t, e.Namespace(t), "shop.prod", name)
	st, err := s.engine.Ensure(testContext(t), s.request(t, 1, true))
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range st.Copies {
		if len(cp.Name) > maxNameLength || !strings.HasSuffix(cp.Name, "-"+cp.Track) || s.live(t, cp.Name) == nil {
			t.Errorf("copy %q of a long name", cp.Name)
		}
	}
	if _, err := s.engine.Ensure(testContext(t), s.request(t, 1, true)); err != nil {
		t.Errorf("a second Ensure of the long name: %v", err)
	}
	if removed, err := s.engine.Remove(testContext(t), s.ns, s.owner); err != nil || !removed {
		t.Errorf("Remove = %v, %v", removed, err)
	}
}

func TestEnsureWithoutStable(t *testing.T) {
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	req := Request{Namespace: ns, Owner: "shop.prod", Revision: "new-commit", Replicas: 1,
		Canary: toUnstructured(t, deployment("shop", repo+"@"+digestB))}
	_, err := New(env.Client).Ensure(testContext(t), req)
	if err == nil || !strings.Contains(err.Error(), `no Deployment "shop" runs in namespace `+ns) {
		t.Fatalf("Ensure without a stable Deployment: err = %v", err)
	}
	cp := &appsv1.Deployment{}
	if err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: ns, Name: "shop-canary"}, cp); !apierrors.IsNotFound(err) {
		t.Errorf("a copy was made anyway: %v", err)
	}
}

// TestCopyOfALiveDeployment makes a baseline from what the API server returns, with everything it and the
// Deployment controller add (status, generation, the rollout revision annotation, defaults), and an apply made by
// kubectl's client-side apply.
func TestCopyOfALiveDeployment(t *testing.T) {
	e := testenv.Need(t, env)
	s := newStage(t, e.Namespace(t), "shop.prod", "shop")
	stable := &appsv1.Deployment{}
	if err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: s.ns, Name: "shop"}, stable); err != nil {
		t.Fatal(err)
	}
	stable.Annotations["deployment.kubernetes.io/revision"] = "7"
	stable.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
	stable.Spec.Paused = true
	if err := env.Client.Update(testContext(t), stable); err != nil {
		t.Fatal(err)
	}
	reportStatus(t, s.ns, "shop", 4)

	if _, err := s.engine.Ensure(testContext(t), s.request(t, 1, true)); err != nil {
		t.Fatal(err)
	}
	baseline := s.live(t, "shop-baseline")
	annotations := baseline.GetAnnotations()
	if _, ok := annotations["deployment.kubernetes.io/revision"]; ok {
		t.Error("the baseline copied the stable rollout revision")
	}
	if _, ok := annotations["kubectl.kubernetes.io/last-applied-configuration"]; ok {
		t.Error("the baseline copied kubectl's last applied configuration")
	}
	if paused, _, _ := unstructured.NestedBool(baseline.Object, "spec", "paused"); paused {
		t.Error("the baseline is paused and would never start")
	}
	if observed, _, _ := unstructured.NestedInt64(baseline.Object, "status", "observedGeneration"); observed != 0 {
		t.Errorf("the baseline copied the stable status (observedGeneration %d)", observed)
	}
	if baseline.GetGeneration() != 1 {
		t.Errorf("baseline generation %d, want 1", baseline.GetGeneration())
	}
}
