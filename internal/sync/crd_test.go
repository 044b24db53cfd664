package sync

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
)

// A custom resource is refused while its CRD is missing, and applied once the CRD is installed, by the same Target
// (whose cache listed the namespace before the kind existed).
func TestApplyCustomResourceAfterItsCRDIsInstalled(t *testing.T) {
	tgt, ns := newTarget(t)
	ctx := testContext(t)
	group := ns + ".ferry.test"
	widget := "apiVersion: " + group + "/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 3}\n"
	if _, err := tgt.Apply(ctx, ApplyRequest{Owner: "shop.dev", Revision: "r1", Objects: decode(t, configMap("first"))}); err != nil {
		t.Fatal(err)
	}
	_, err := tgt.Apply(ctx, ApplyRequest{Owner: "shop.dev", Revision: "r2", Objects: decode(t, configMap("first"), widget)})
	if err == nil || !strings.Contains(err.Error(), "is not served by the cluster (is its CustomResourceDefinition installed?)") {
		t.Fatalf("without the CRD: %v", err)
	}

	crd := decode(t, `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.`+group+`}
spec:
  group: `+group+`
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
`)[0]
	if err := env.Client.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), crd) })
	waitEstablished(t, crd.GetName())

	res, err := tgt.Apply(ctx, ApplyRequest{Owner: "shop.dev", Revision: "r2", Objects: decode(t, configMap("first"), widget)})
	if err != nil {
		t.Fatal(err)
	}
	if actions(res)["Widget/w"] != ActionCreated {
		t.Fatalf("after the CRD: %+v", res)
	}
	// The new kind is watched now: dropping the Widget from Git prunes it.
	res, err = tgt.Apply(ctx, ApplyRequest{Owner: "shop.dev", Revision: "r3", Objects: decode(t, configMap("first")), Prune: true})
	if err != nil || actions(res)["Widget/w"] != ActionPruned {
		t.Fatalf("pruning the Widget: %+v, %v", res, err)
	}
	if _, err := getLive(t, schema.GroupVersionKind{Group: group, Version: "v1", Kind: "Widget"}, ns, "w"); !apierrors.IsNotFound(err) {
		t.Fatalf("Widget still there: %v", err)
	}
}

func waitEstablished(t *testing.T, name string) {
	t.Helper()
	gvk := schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		live, err := getLive(t, gvk, "", name)
		if err != nil {
			return false, nil
		}
		conditions, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
		for _, c := range conditions {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not established: %v", name, err)
	}
}
