package canary

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestShare(t *testing.T) {
	for _, c := range []struct{ weight, total, want int32 }{
		{10, 10, 1},
		{25, 10, 3}, // 2.5 rounds up
		{50, 4, 2},
		{1, 3, 1},   // never zero
		{100, 7, 7}, // all of it
		{20, 0, 1},
		{150, 4, 4}, // clamped
	} {
		if got := Share(c.weight, c.total); got != c.want {
			t.Errorf("Share(%d, %d) = %d, want %d", c.weight, c.total, got, c.want)
		}
	}
}

func TestCopyName(t *testing.T) {
	if got := copyName("shop", TrackCanary); got != "shop-canary" {
		t.Errorf("copyName(shop) = %q", got)
	}
	long := strings.Repeat("a", 50) + "." + strings.Repeat("b", 20)
	canary, baseline := copyName(long, TrackCanary), copyName(long, TrackBaseline)
	other := copyName(long+"c", TrackCanary)
	for _, name := range []string{canary, baseline, other} {
		if len(name) > maxNameLength {
			t.Errorf("%q is %d characters long", name, len(name))
		}
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("%q: %v", name, errs)
		}
	}
	if !strings.HasSuffix(canary, "-canary") || !strings.HasSuffix(baseline, "-baseline") {
		t.Errorf("cut names lost their track: %q, %q", canary, baseline)
	}
	if canary == other {
		t.Errorf("two long names share the copy name %q", canary)
	}
	if copyName(long, TrackCanary) != canary {
		t.Error("copyName is not deterministic")
	}
}

func TestRequestValidation(t *testing.T) {
	good := func() Request {
		return Request{Namespace: "ns", Owner: "shop.prod", Revision: "abc", Replicas: 1,
			Canary: toUnstructured(t, deployment("shop", repo+"@"+digestB))}
	}
	service := toUnstructured(t, deployment("shop", repo))
	service.SetKind("Service")
	service.SetAPIVersion("v1")
	copyOfCopy := toUnstructured(t, deployment("shop", repo))
	copyOfCopy.SetLabels(map[string]string{TrackLabel: TrackCanary})
	for name, c := range map[string]struct {
		mutate func(*Request)
		want   string
	}{
		"no owner":       {func(r *Request) { r.Owner = "" }, "owner: required"},
		"bad owner":      {func(r *Request) { r.Owner = "a/b" }, "owner"},
		"bad namespace":  {func(r *Request) { r.Namespace = "NS" }, "namespace"},
		"no replicas":    {func(r *Request) { r.Replicas = 0 }, "replicas"},
		"no canary":      {func(r *Request) { r.Canary = nil }, "canary: required"},
		"not deployment": {func(r *Request) { r.Canary = service }, "not an apps/v1 Deployment"},
		"copy of a copy": {func(r *Request) { r.Canary = copyOfCopy }, "itself a canary copy"},
		"other baseline": {func(r *Request) { r.Baseline = toUnstructured(t, deployment("cart", repo)) }, "not the canary's Deployment"},
	} {
		req := good()
		c.mutate(&req)
		// A nil client: validation must fail before anything is read.
		_, err := New(nil).Ensure(t.Context(), req)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, c.want)
		}
	}
}
