package audit

import (
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

// env is the package's control plane, for the tests of the webhook as the API server calls it.
var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// ferrySA is the user ferry-controller runs as in config/default; config/webhook never calls the webhook for it.
const ferrySA = "system:serviceaccount:ferry-system:ferry-controller"

// audited serves the webhook as ferry-controller does, over TLS with a certificate envtest made, and installs
// config/webhook's configuration for a new namespace only. It returns the namespace and a function that stops
// the webhook server, leaving the configuration installed.
func audited(t *testing.T) (*testenv.Env, string, func()) {
	t.Helper()
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	stop := e.ServeMutatingWebhook(t, "config/webhook/manifests.yaml", ns, Register, func() bool {
		ann, err := e.DryRunAnnotations(ns, ferryv1.RollbackAnnotation, "prod")
		return err == nil && ann[Companion(ferryv1.RollbackAnnotation)] != ""
	})
	return e, ns, stop
}

// createPromotion creates the sample Promotion named name in ns, as the admin, with no annotations.
func createPromotion(t *testing.T, e *testenv.Env, ns, name string) {
	t.Helper()
	p, err := testenv.SamplePromotion(ns)
	if err != nil {
		t.Fatal(err)
	}
	p.Name = name
	if err := e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// edit changes the annotations of a Promotion (a value "" deletes one) as c, with a merge patch under the field
// manager manager, and returns the annotations stored.
func edit(c client.Client, ns, name, manager string, set map[string]string) (map[string]string, error) {
	var p ferryv1.Promotion
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		return nil, err
	}
	patch := client.MergeFrom(p.DeepCopy())
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	for k, v := range set {
		if v == "" {
			delete(p.Annotations, k)
		} else {
			p.Annotations[k] = v
		}
	}
	err := c.Patch(context.Background(), &p, patch, client.FieldOwner(manager))
	return p.Annotations, err
}

func mustEdit(t *testing.T, c client.Client, ns, name, manager string, set map[string]string) map[string]string {
	t.Helper()
	got, err := edit(c, ns, name, manager, set)
	if err != nil {
		t.Fatalf("%s sets %v: %v", manager, set, err)
	}
	return got
}

// TestCompanionNamesTheAuthenticatedUser: kubectl annotate --field-manager=ferry-rollback:release-manager by
// alice, who also writes a companion naming release-manager, is recorded as alice's request.
func TestCompanionNamesTheAuthenticatedUser(t *testing.T) {
	e, ns, _ := audited(t)
	createPromotion(t, e, ns, "shop")
	alice := e.PromotionEditor(t, ns, "alice")
	got := mustEdit(t, alice, ns, "shop", "ferry-rollback:release-manager", map[string]string{
		ferryv1.RollbackAnnotation: "prod", Companion(ferryv1.RollbackAnnotation): "release-manager"})
	if who := got[Companion(ferryv1.RollbackAnnotation)]; who != "alice" {
		t.Fatalf("companion = %q, want alice (annotations %v)", who, got)
	}
	var p ferryv1.Promotion
	if err := e.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "shop"}, &p); err != nil {
		t.Fatal(err)
	}
	if who, ok := Requester(p.Annotations, ferryv1.RollbackAnnotation); !ok || who != "alice" {
		t.Errorf("stored requester = %q", who)
	}
}

// TestCompanionCannotBeForged: whatever another user writes, a companion names whoever last set or changed its
// request, and goes with it.
func TestCompanionCannotBeForged(t *testing.T) {
	e, ns, _ := audited(t)
	createPromotion(t, e, ns, "shop")
	alice, bob := e.PromotionEditor(t, ns, "alice"), e.PromotionEditor(t, ns, "bob")
	rb, approve := ferryv1.RollbackAnnotation, ferryv1.ApproveAnnotation
	mustEdit(t, alice, ns, "shop", "kubectl-annotate", map[string]string{rb: "prod"})
	alicesRequest := map[string]string{rb: "prod", Companion(rb): "alice"}
	other := "prod=sha256:" + strings.Repeat("0", 64)

	for _, step := range []struct {
		what string
		set  map[string]string
		want map[string]string
	}{
		{"bob claims alice's request", map[string]string{Companion(rb): "bob"}, alicesRequest},
		{"bob removes its companion", map[string]string{Companion(rb): ""}, alicesRequest},
		{"bob writes a companion with no request", map[string]string{Companion(approve): "alice"}, alicesRequest},
		{"bob changes the request", map[string]string{rb: other}, map[string]string{rb: other, Companion(rb): "bob"}},
		{"bob withdraws it, leaving the companion", map[string]string{rb: ""}, map[string]string{}},
	} {
		if got := mustEdit(t, bob, ns, "shop", "kubectl-annotate", step.set); !sameRequests(got, step.want) {
			t.Fatalf("%s: annotations %v, want %v", step.what, got, step.want)
		}
	}

	// A Promotion created with a request and a forged companion names its creator.
	p, err := testenv.SamplePromotion(ns)
	if err != nil {
		t.Fatal(err)
	}
	abort := ferryv1.AbortAnnotation
	p.Name, p.Annotations = "created", map[string]string{abort: "prod", Companion(abort): "alice"}
	if err := bob.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if who := p.Annotations[Companion(abort)]; who != "bob" {
		t.Errorf("created with companion %q, want bob", who)
	}
}

// sameRequests compares the request and companion annotations of got with want.
func sameRequests(got, want map[string]string) bool {
	n := 0
	for k, v := range got {
		if IsRequest(k) || strings.HasPrefix(k, ferryv1.RequestedByPrefix) {
			if want[k] != v {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// TestOutageRefusesOnlyRequests: with the webhook down, a person's request is refused rather than recorded
// without a check, while other edits and Ferry's own removal of a request it carried out go through.
func TestOutageRefusesOnlyRequests(t *testing.T) {
	e, ns, stop := audited(t)
	createPromotion(t, e, ns, "asked")
	createPromotion(t, e, ns, "quiet")
	alice, ferry := e.PromotionEditor(t, ns, "alice"), e.PromotionEditor(t, ns, ferrySA)
	mustEdit(t, alice, ns, "asked", "kubectl-annotate", map[string]string{ferryv1.RollbackAnnotation: "prod"})
	stop()

	_, err := edit(alice, ns, "asked", "kubectl-annotate", map[string]string{ferryv1.ApproveAnnotation: "prod"})
	if err == nil || !strings.Contains(err.Error(), "audit.promotions.ferry.dev") {
		t.Fatalf("a request with the webhook down: %v, want refused naming the webhook", err)
	}
	if _, err := edit(alice, ns, "quiet", "kubectl-annotate", map[string]string{"team": "shop"}); err != nil {
		t.Fatalf("an edit without requests waited for the webhook: %v", err)
	}
	rb := ferryv1.RollbackAnnotation
	got, err := edit(ferry, ns, "asked", "ferry", map[string]string{rb: "", Companion(rb): ""})
	if err != nil {
		t.Fatalf("Ferry removing a request it carried out waited for the webhook: %v", err)
	}
	if !sameRequests(got, nil) {
		t.Errorf("annotations %v after Ferry removed the request", got)
	}
}
