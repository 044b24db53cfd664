package sync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// writeTree writes files (slash paths relative to the returned root) into a temporary checkout.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, files)
	return root
}

func writeFiles(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const deploymentYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example.com/shop:1.0
`

func names(objs []*unstructured.Unstructured) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

func firstImage(t *testing.T, o *unstructured.Unstructured) string {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	if len(containers) == 0 {
		t.Fatalf("%s has no containers", o.GetName())
	}
	return containers[0].(map[string]any)["image"].(string)
}

func TestRenderPlain(t *testing.T) {
	root := writeTree(t, map[string]string{
		"envs/dev/b-deploy.yaml": deploymentYAML,
		"envs/dev/a-config.yml": `# leading comment
---
apiVersion: v1
kind: ConfigMap
metadata: {name: one}
data: {k: v}
---
# only a comment
---
apiVersion: v1
kind: ConfigMap
metadata: {name: two}
`,
		"envs/dev/c-list.json": `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80}]}}]}`,
		"envs/dev/README.md":   "not a manifest",
		"envs/dev/sub/x.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: in-subfolder}\n",
	})
	objs, err := Render(RenderRequest{Root: root, Path: "envs/dev", Format: FormatPlain})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(names(objs), ",")
	if want := "ConfigMap/one,ConfigMap/two,Deployment/web,Service/web"; got != want {
		t.Fatalf("objects = %s, want %s", got, want)
	}
	if r, _, _ := unstructured.NestedInt64(objs[2].Object, "spec", "replicas"); r != 2 {
		t.Fatalf("replicas decoded as %v, want int64 2", objs[2].Object["spec"].(map[string]any)["replicas"])
	}
}

func TestRenderPlainErrorsNameFileAndDocument(t *testing.T) {
	cases := map[string]struct {
		content string
		want    string
	}{
		"malformed":        {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [unclosed\n", "bad.yaml: document 2: invalid YAML"},
		"no kind":          {"apiVersion: v1\nmetadata: {name: a}\n", "bad.yaml: document 1: kind: required"},
		"no name":          {"apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "document 1: ConfigMap: metadata.name: required"},
		"generateName":     {"apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: a-}\n", "generateName is not supported"},
		"scalar":           {"just a string\n", "document 1: a manifest must be a mapping"},
		"bad apiVersion":   {"apiVersion: a/b/c\nkind: X\nmetadata: {name: a}\n", `apiVersion "a/b/c"`},
		"duplicate key":    {"apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata: {name: a}\n", "document 1: invalid YAML"},
		"label not string": {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {num: 1}}\n", "metadata.labels[num]: must be a string"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			root := writeTree(t, map[string]string{"stage/bad.yaml": tc.content})
			_, err := Render(RenderRequest{Root: root, Path: "stage", Format: FormatPlain})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRenderRefusals(t *testing.T) {
	root := writeTree(t, map[string]string{
		"stage/a.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
		"stage/b.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
		"empty/notes.md":          "nothing",
		"kust/kustomization.yaml": "resources: []\n",
	})
	secret := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secret, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stolen}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "empty", "link.yaml")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		req  RenderRequest
		want string
	}{
		{RenderRequest{Root: root, Path: "stage", Format: FormatPlain}, `ConfigMap "a" is declared more than once`},
		{RenderRequest{Root: root, Path: "../x", Format: FormatPlain}, "leaves the checkout"},
		{RenderRequest{Root: root, Path: "/etc", Format: FormatPlain}, "must be relative"},
		{RenderRequest{Root: root, Path: "missing", Format: FormatPlain}, `stage path "missing"`},
		{RenderRequest{Root: root, Path: "stage/a.yaml", Format: FormatPlain}, "is not a folder"},
		{RenderRequest{Root: root, Path: "empty", Format: FormatPlain}, "link.yaml"},
		{RenderRequest{Root: root, Path: "stage", Format: "HelmValues"}, `manifest format "HelmValues" is not supported`},
		{RenderRequest{Root: root, Path: "stage", Format: FormatKustomize}, "no kustomization.yaml in stage"},
		{RenderRequest{Root: root, Path: "kust", Format: FormatPlain}, "kust/kustomization.yaml: a kustomization in a folder read as Plain (set the format to Kustomize)"},
	}
	for _, tc := range cases {
		_, err := Render(tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Render(%+v) error = %v, want it to contain %q", tc.req, err, tc.want)
		}
	}
}

func TestRenderKustomize(t *testing.T) {
	root := writeTree(t, map[string]string{
		"base/kustomization.yaml": "resources:\n- deploy.yaml\n- config.yaml\n",
		"base/deploy.yaml":        deploymentYAML,
		"base/config.yaml":        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: base}\n",
		"envs/prod/kustomization.yaml": `namespace: shop-prod
commonLabels:
  tier: prod
resources:
- ../../base
images:
- name: registry.example.com/shop
  newName: registry.prod.example.com/shop
  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
configMapGenerator:
- name: extra
  literals: [a=b]
`,
	})
	objs, err := Render(RenderRequest{Root: root, Path: "envs/prod", Format: FormatKustomize})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3 {
		t.Fatalf("objects = %v, want the deployment, the config map and the generated one", names(objs))
	}
	for _, o := range objs {
		if o.GetNamespace() != "shop-prod" || o.GetLabels()["tier"] != "prod" {
			t.Errorf("%s: namespace %q labels %v, want shop-prod and tier=prod", o.GetName(), o.GetNamespace(), o.GetLabels())
		}
		if o.GetKind() == "Deployment" {
			want := "registry.prod.example.com/shop@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
			if got := firstImage(t, o); got != want {
				t.Errorf("image = %s, want %s", got, want)
			}
		}
	}
}

func TestRenderKustomizeNewTag(t *testing.T) {
	root := writeTree(t, map[string]string{
		"kustomization.yaml": "resources: [deploy.yaml]\nimages:\n- name: registry.example.com/shop\n  newTag: \"2.0\"\n",
		"deploy.yaml":        deploymentYAML,
	})
	objs, err := Render(RenderRequest{Root: root, Format: FormatKustomize})
	if err != nil {
		t.Fatal(err)
	}
	if got := firstImage(t, objs[0]); got != "registry.example.com/shop:2.0" {
		t.Fatalf("image = %s", got)
	}
}

func TestRenderKustomizeRefusesWhatLeavesTheCheckout(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		kustomization string
		want          string
	}{
		"git base":      {"resources:\n- github.com/acme/deploy//base?ref=v1\n", "remote resources are never fetched"},
		"https base":    {"resources:\n- https://example.com/deploy.yaml\n", "remote resources are never fetched"},
		"missing":       {"resources:\n- nothere\n", `resources entry "nothere" is not in the checkout`},
		"outside":       {"resources:\n- " + filepath.Join("..", "..", "..", "..", "..", "..", "..", "..", outside, "cm.yaml") + "\n", "is not in the checkout"},
		"url patch":     {"resources: []\npatches:\n- path: https://example.com/p.yaml\n", "is a URL"},
		"helm":          {"helmCharts:\n- name: x\n  repo: https://charts.example.com\n", "helmCharts is not supported"},
		"kustomize err": {"resources: [a.yaml]\nnamePrefix: [\n", "invalid YAML"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			root := writeTree(t, map[string]string{"stage/kustomization.yaml": tc.kustomization})
			_, err := Render(RenderRequest{Root: root, Path: "stage", Format: FormatKustomize})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzDecodeDocuments(f *testing.F) {
	f.Add([]byte(deploymentYAML))
	f.Add([]byte("---\n---\n# c\n"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}]}`))
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {x: y}}\n---\na: &a [*a]\n"))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [1, 2]\n"))
	f.Add([]byte("kind: X\napiVersion: ''\nmetadata: null\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := DecodeDocuments("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, o := range objs {
			if o.GetAPIVersion() == "" || o.GetKind() == "" || o.GetName() == "" || o.IsList() {
				t.Fatalf("decoded an invalid object: %v", o.Object)
			}
			// What decodes must survive the copies and JSON encoding apply performs.
			if _, err := o.DeepCopy().MarshalJSON(); err != nil {
				t.Fatalf("decoded object does not encode: %v", err)
			}
		}
	})
}
