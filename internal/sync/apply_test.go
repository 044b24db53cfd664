package sync

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// deployment renders a Deployment manifest with the given image.
func deployment(name, image string) string {
	return strings.NewReplacer("web", name, "registry.example.com/shop:1.0", image).Replace(deploymentYAML)
}

func decode(t *testing.T, docs ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := DecodeDocuments("test.yaml", []byte(strings.Join(docs, "\n---\n")))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func configMap(name string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {k: v}\n"
}

func actions(res *ApplyResult) map[string]Action {
	out := map[string]Action{}
	for _, o := range res.Objects {
		out[o.Ref.Kind+"/"+o.Ref.Name] = o.Action
	}
	return out
}

func TestApplyCreatesThenIsIdempotentThenUpdates(t *testing.T) {
	tgt, ns := newTarget(t)
	ctx := testContext(t)
	image := "registry.example.com/shop@sha256:" + strings.Repeat("a", 64)
	req := ApplyRequest{Owner: "shop.dev", Revision: "rev1", Objects: decode(t, deployment("web", image), configMap("settings"))}

	res, err := tgt.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || actions(res)["Deployment/web"] != ActionCreated || actions(res)["ConfigMap/settings"] != ActionCreated {
		t.Fatalf("first apply: %+v", res)
	}
	live, err := getLive(t, deploymentGVK, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	if live.GetLabels()[OwnerLabel] != "shop.dev" || live.GetAnnotations()[RevisionAnnotation] != "rev1" {
		t.Fatalf("live labels %v annotations %v", live.GetLabels(), live.GetAnnotations())
	}
	if got := firstImage(t, live); got != image {
		t.Fatalf("live image %s, want %s", got, image)
	}
	if req.Objects[0].GetNamespace() != "" || req.Objects[0].GetLabels()[OwnerLabel] != "" {
		t.Fatal("Apply modified the caller's objects")
	}

	version := live.GetResourceVersion()
	res, err = tgt.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed || actions(res)["Deployment/web"] != ActionUnchanged || actions(res)["ConfigMap/settings"] != ActionUnchanged {
		t.Fatalf("second apply of the same revision: %+v", res)
	}
	if again, _ := getLive(t, deploymentGVK, ns, "web"); again.GetResourceVersion() != version {
		t.Fatalf("second apply wrote the Deployment: resourceVersion %s → %s", version, again.GetResourceVersion())
	}

	newImage := "registry.example.com/shop@sha256:" + strings.Repeat("b", 64)
	req2 := ApplyRequest{Owner: "shop.dev", Revision: "rev2", Objects: decode(t, deployment("web", newImage), configMap("settings"))}
	res, err = tgt.Apply(ctx, req2)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || actions(res)["Deployment/web"] != ActionConfigured {
		t.Fatalf("apply of a new image: %+v", res)
	}
	live, _ = getLive(t, deploymentGVK, ns, "web")
	if got := firstImage(t, live); got != newImage || live.GetAnnotations()[RevisionAnnotation] != "rev2" {
		t.Fatalf("live image %s revision %s after update", got, live.GetAnnotations()[RevisionAnnotation])
	}
	if len(res.Declared) != 2 || res.Declared[0].Namespace != ns {
		t.Fatalf("declared refs %+v", res.Declared)
	}
}

func TestApplyPrunesOnlyOwnObjectsAndOnlyWhenAsked(t *testing.T) {
	tgt, ns := newTarget(t)
	ctx := testContext(t)
	// Objects Ferry must never touch: one unlabelled, one owned by another stage.
	if _, err := tgt.Apply(ctx, ApplyRequest{Owner: "other.stage", Revision: "r", Objects: decode(t, configMap("others"))}); err != nil {
		t.Fatal(err)
	}
	unlabelled := decode(t, configMap("hand-made"))[0]
	unlabelled.SetNamespace(ns)
	if err := env.Client.Create(ctx, unlabelled); err != nil {
		t.Fatal(err)
	}

	all := ApplyRequest{Owner: "shop.dev", Revision: "r1", Objects: decode(t, configMap("keep"), configMap("drop"))}
	if _, err := tgt.Apply(ctx, all); err != nil {
		t.Fatal(err)
	}
	fewer := ApplyRequest{Owner: "shop.dev", Revision: "r2", Objects: decode(t, configMap("keep"))}
	res, err := tgt.Apply(ctx, fewer)
	if err != nil {
		t.Fatal(err)
	}
	if actions(res)["ConfigMap/drop"] != ActionPruneSkipped {
		t.Fatalf("without prune: %+v", res)
	}
	if _, err := getLive(t, configMapGVK, ns, "drop"); err != nil {
		t.Fatalf("removed object deleted without prune: %v", err)
	}

	fewer.Prune = true
	res, err = tgt.Apply(ctx, fewer)
	if err != nil {
		t.Fatal(err)
	}
	got := actions(res)
	if got["ConfigMap/drop"] != ActionPruned || len(got) != 2 {
		t.Fatalf("with prune: %+v", res)
	}
	if _, err := getLive(t, configMapGVK, ns, "drop"); !apierrors.IsNotFound(err) {
		t.Fatalf("pruned object still there: %v", err)
	}
	for _, name := range []string{"keep", "others", "hand-made"} {
		if _, err := getLive(t, configMapGVK, ns, name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestApplyRefusesObjectsItDoesNotOwn(t *testing.T) {
	tgt, ns := newTarget(t)
	ctx := testContext(t)
	if _, err := tgt.Apply(ctx, ApplyRequest{Owner: "other.stage", Revision: "r", Objects: decode(t, configMap("theirs"))}); err != nil {
		t.Fatal(err)
	}
	hand := decode(t, configMap("hand-made"))[0]
	hand.SetNamespace(ns)
	if err := env.Client.Create(ctx, hand); err != nil {
		t.Fatal(err)
	}

	_, err := tgt.Apply(ctx, ApplyRequest{Owner: "shop.dev", Revision: "r", Objects: decode(t, configMap("theirs"), configMap("hand-made"), configMap("new"))})
	for _, want := range []string{`/theirs" belongs to stage "other.stage"`, `/hand-made" already exists and was not applied by Ferry`, "nothing was applied"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error = %v, want it to contain %q", err, want)
		}
	}
	if _, err := getLive(t, configMapGVK, ns, "new"); !apierrors.IsNotFound(err) {
		t.Fatalf("an object was applied although the apply was refused: %v", err)
	}

	res, err := tgt.Apply(ctx, ApplyRequest{Owner: "shop.dev", Revision: "r", Objects: decode(t, configMap("hand-made")), Adopt: true})
	if err != nil {
		t.Fatal(err)
	}
	if actions(res)["ConfigMap/hand-made"] != ActionConfigured {
		t.Fatalf("adopt: %+v", res)
	}
	live, _ := getLive(t, configMapGVK, ns, "hand-made")
	if live.GetLabels()[OwnerLabel] != "shop.dev" {
		t.Fatalf("adopted object labels %v", live.GetLabels())
	}
}

func TestApplyBadInputAppliesNothing(t *testing.T) {
	tgt, ns := newTarget(t)
	ctx := testContext(t)
	good := configMap("good")
	cases := map[string]struct {
		doc  string
		want string
	}{
		"unknown kind":    {"apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n", "kind example.com/v1, Kind=Widget is not served by the cluster (is its CustomResourceDefinition installed?)"},
		"cluster-scoped":  {"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: cr}\nrules: []\n", `ClusterRole.rbac.authorization.k8s.io "cr" is cluster-scoped`},
		"other namespace": {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: kube-system}\n", `declares namespace "kube-system"`},
		"unknown field":   {strings.Replace(deployment("web", "nginx"), "replicas: 2", "replica: 2", 1), ".spec.replica: field not declared in schema"},
		"invalid value":   {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_Valid}\n", "server-side dry run failed"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := tgt.Apply(ctx, ApplyRequest{Owner: "shop.dev", Revision: "r", Objects: decode(t, good, tc.doc)})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was applied") {
				t.Fatalf("error = %v, want it to contain %q and say nothing was applied", err, tc.want)
			}
			if _, err := getLive(t, configMapGVK, ns, "good"); !apierrors.IsNotFound(err) {
				t.Fatalf("the valid object was applied next to a bad one: %v", err)
			}
		})
	}
	for _, req := range []ApplyRequest{{Owner: "", Revision: "r"}, {Owner: "not a label!", Revision: "r"}, {Owner: "a.b"}} {
		if _, err := tgt.Apply(ctx, req); err == nil {
			t.Errorf("Apply(%+v) accepted", req)
		}
	}
}
