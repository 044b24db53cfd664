package sync

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var (
	digestA = "sha256:" + strings.Repeat("a", 64)
	digestB = "sha256:" + strings.Repeat("b", 64)
)

func TestDriftDetectsImageChangedInTheCluster(t *testing.T) {
	tgt, ns := newTarget(t)
	ctx := testContext(t)
	root := writeTree(t, map[string]string{
		"envs/dev/kustomization.yaml": "resources: [deploy.yaml]\nimages:\n- name: registry.example.com/shop\n  digest: " + digestA + "\n",
		"envs/dev/deploy.yaml":        deployment("web", "registry.example.com/shop:1.0"),
	})
	objs, err := Render(RenderRequest{Root: root, Path: "envs/dev", Format: FormatKustomize})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tgt.Apply(ctx, ApplyRequest{Owner: "shop.dev", Revision: "r1", Objects: objs})
	if err != nil {
		t.Fatal(err)
	}
	declared := "registry.example.com/shop@" + digestA
	drifts, err := tgt.Drift(ctx, res.Declared, []string{declared})
	if err != nil || len(drifts) != 0 {
		t.Fatalf("right after apply: drifts %v, error %v", drifts, err)
	}

	// Someone runs `kubectl set image` in the cluster.
	live, _ := getLive(t, deploymentGVK, ns, "web")
	containers, _, _ := unstructured.NestedSlice(live.Object, "spec", "template", "spec", "containers")
	containers[0].(map[string]any)["image"] = "registry.example.com/shop@" + digestB
	if err := unstructured.SetNestedSlice(live.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Update(ctx, live); err != nil {
		t.Fatal(err)
	}
	drifts, err = tgt.Drift(ctx, res.Declared, []string{declared, "registry.example.com/other@" + digestA})
	if err != nil {
		t.Fatal(err)
	}
	if len(drifts) != 2 {
		t.Fatalf("drifts = %v, want the changed container and the image nothing runs", drifts)
	}
	if d := drifts[0]; d.Ref.Name != "web" || d.Container != "web" || d.Running != "registry.example.com/shop@"+digestB || d.Declared != declared {
		t.Fatalf("drift = %+v", d)
	}
	if d := drifts[1]; d.Container != "" || !strings.Contains(d.String(), "no workload runs its repository") {
		t.Fatalf("drift = %v", d)
	}

	// Assess reads each object once for both answers: the same drift, and the health of every declared object.
	report, assessed, err := tgt.Assess(ctx, res.Declared, []string{declared})
	if err != nil || len(assessed) != 1 || assessed[0] != drifts[0] {
		t.Fatalf("Assess drifts = %v, %v; want %v", assessed, err, drifts[0])
	}
	if len(report.Resources) != len(res.Declared) || report.Resources[0].Ref.Name != "web" {
		t.Fatalf("Assess health = %+v, want one entry per declared object", report)
	}

	// Applying the same revision again repairs the drift: the diff sees the live image differ from Git.
	again, err := tgt.Apply(ctx, ApplyRequest{Owner: "shop.dev", Revision: "r1", Objects: objs})
	if err != nil || !again.Changed {
		t.Fatalf("re-apply after drift: %+v, %v", again, err)
	}
	if drifts, _ := tgt.Drift(ctx, res.Declared, []string{declared}); len(drifts) != 0 {
		t.Fatalf("drift after re-apply: %v", drifts)
	}
	if _, err := tgt.Drift(ctx, res.Declared, []string{"registry.example.com/shop:1.0"}); err == nil || !strings.Contains(err.Error(), "must be repository@sha256") {
		t.Fatalf("a tag as declared image: %v", err)
	}
}

func TestCompareImages(t *testing.T) {
	declared, err := parseDeclared([]string{"nginx@" + digestA})
	if err != nil {
		t.Fatal(err)
	}
	ref := ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "ns", Name: "web"}
	running := []containerImage{
		{Ref: ref, Container: "same-normalised", Image: "index.docker.io/library/nginx@" + digestA},
		{Ref: ref, Container: "tag-and-digest", Image: "docker.io/nginx:1.27@" + digestA},
		{Ref: ref, Container: "tag-only", Image: "nginx:1.27"},
		{Ref: ref, Container: "other-digest", Image: "nginx@" + digestB},
		{Ref: ref, Container: "other-repo", Image: "example.com/nginx@" + digestB},
		{Ref: ref, Container: "garbage", Image: "::not an image::"},
	}
	var got []string
	for _, d := range compareImages(running, declared) {
		got = append(got, d.Container)
	}
	if strings.Join(got, ",") != "tag-only,other-digest" {
		t.Fatalf("drifting containers = %v, want tag-only and other-digest", got)
	}
}
