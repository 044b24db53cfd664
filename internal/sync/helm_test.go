package sync

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ferrycd/ferry/internal/gitops/pin"
)

const shopDigest = "sha256:4444444444444444444444444444444444444444444444444444444444444444"

// copyChart copies a chart of testdata into a fresh checkout, where a test may change it.
func copyChart(t *testing.T, name string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", name))); err != nil {
		t.Fatal(err)
	}
	return root
}

func shopOptions() HelmOptions {
	return HelmOptions{ValuesFile: "values-prod.yaml", ImageKey: "image", ReleaseName: "shop-prod", Namespace: "shop"}
}

func renderChart(root string, opts HelmOptions) ([]*unstructured.Unstructured, error) {
	return Render(RenderRequest{Root: root, Path: ".", Format: FormatHelm, Helm: opts})
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// wantHelmError checks that err is a HelmError blaming input and saying every one of wants.
func wantHelmError(t *testing.T, err error, input string, wants ...string) {
	t.Helper()
	var he *HelmError
	if !errors.As(err, &he) {
		t.Fatalf("err = %v, want a HelmError on %s", err, input)
	}
	if he.Input != input {
		t.Errorf("error blames %s, want %s: %v", he.Input, input, err)
	}
	for _, want := range wants {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
}

// The umbrella chart renders with its vendored dependency, the stage's values over the chart's, the release and
// namespace given, and the Kubernetes version of Ferry's client libraries; the test hook and NOTES.txt are left
// out.
func TestHelmRendersUmbrellaChart(t *testing.T) {
	objs, err := renderChart(filepath.Join("testdata", "helm-shop"), shopOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(objs), ","); got != "ConfigMap/shop-prod-greeter,Deployment/shop-prod" {
		t.Fatalf("objects = %s", got)
	}
	deploy := find(objs, "Deployment", "shop-prod")
	if img := firstImage(t, deploy); img != "registry.example.com/shop:v1.4.2" {
		t.Errorf("image = %s", img)
	}
	if n, _, _ := unstructured.NestedInt64(deploy.Object, "spec", "replicas"); n != 2 {
		t.Errorf("replicas = %d, want the stage's 2", n)
	}
	if deploy.GetNamespace() != "shop" {
		t.Errorf("namespace = %q", deploy.GetNamespace())
	}
	if v := deploy.GetAnnotations()["shop.example.com/kube-version"]; !strings.HasPrefix(v, "v1.36.") {
		t.Errorf("rendered for Kubernetes %q, want the client libraries' v1.36", v)
	}
	cm := find(objs, "ConfigMap", "shop-prod-greeter")
	if g, _, _ := unstructured.NestedString(cm.Object, "data", "greeting"); g != "hello from prod" {
		t.Errorf("greeting = %q, want the stage's value passed to the dependency", g)
	}
}

// A dependency switched off by its condition is not rendered; one vendored as an archive is.
func TestHelmDependencies(t *testing.T) {
	root := copyChart(t, "helm-shop")
	writeFiles(t, root, map[string]string{"values-prod.yaml": "greeter:\n  enabled: false\n"})
	objs, err := renderChart(root, shopOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(objs), ","); got != "Deployment/shop-prod" {
		t.Errorf("objects with greeter off = %s", got)
	}

	root = copyChart(t, "helm-shop")
	greeter, err := loader.LoadDir(filepath.Join(root, "charts", "greeter"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "charts", "greeter")); err != nil {
		t.Fatal(err)
	}
	if _, err := chartutil.Save(greeter, filepath.Join(root, "charts")); err != nil {
		t.Fatal(err)
	}
	objs, err = renderChart(root, shopOptions())
	if err != nil {
		t.Fatal(err)
	}
	if find(objs, "ConfigMap", "shop-prod-greeter") == nil {
		t.Errorf("the archived dependency was not rendered: %v", names(objs))
	}
}

// A dependency that is not vendored is never fetched: the error names it and where it would come from.
func TestHelmRefusesMissingDependency(t *testing.T) {
	root := copyChart(t, "helm-shop")
	if err := os.RemoveAll(filepath.Join(root, "charts")); err != nil {
		t.Fatal(err)
	}
	_, err := renderChart(root, shopOptions())
	wantHelmError(t, err, HelmInputChart, "depends on greeter 0.1.0 from https://charts.example.com", "not vendored in charts/",
		"fetches nothing")
}

// The digest Ferry pins in the values file is what the rendered Deployment runs, and the pin keeps the tag and
// every comment.
func TestHelmRunsThePinnedDigest(t *testing.T) {
	root := copyChart(t, "helm-shop")
	file := filepath.Join(root, "values-prod.yaml")
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	res, err := pin.HelmValues("values-prod.yaml", src, "image", pin.Target{Image: "registry.example.com/shop", Digest: shopDigest})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.Output)
	for _, kept := range []string{"# Prod values: Ferry pins the digest below.", "tag: v1.4.2 # kept for humans"} {
		if !strings.Contains(out, kept) {
			t.Errorf("pinned values lost %q:\n%s", kept, out)
		}
	}
	if err := os.WriteFile(file, res.Output, 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := renderChart(root, shopOptions())
	if err != nil {
		t.Fatal(err)
	}
	if img := firstImage(t, find(objs, "Deployment", "shop-prod")); img != "registry.example.com/shop@"+shopDigest {
		t.Errorf("the Deployment runs %s, want the pinned digest", img)
	}

	// A chart whose templates ignore the digest would run the tag: it is refused, naming the key.
	writeFiles(t, root, map[string]string{"templates/_helpers.tpl": `{{- define "shop.image" -}}` +
		`{{ .Values.image.repository }}:{{ .Values.image.tag }}{{- end -}}`})
	_, err = renderChart(root, shopOptions())
	wantHelmError(t, err, HelmInputImageKey, "pin "+shopDigest+" at image", "no container the chart renders runs it")
}

// Hooks are refused, naming the template, except tests, which are left out.
func TestHelmRefusesHooks(t *testing.T) {
	root := copyChart(t, "helm-shop")
	writeFiles(t, root, map[string]string{"values-prod.yaml": "migrate: true\n"})
	_, err := renderChart(root, shopOptions())
	wantHelmError(t, err, HelmInputChart, "shop/templates/migrate.yaml", `Job.batch "shop-prod-migrate" is a Helm hook`,
		"helm.sh/hook pre-install,pre-upgrade", "Ferry runs no Helm hooks")

	for _, events := range []string{"post-delete", "pre-rollback", "test,post-install", "crd-install"} {
		root := copyChart(t, "helm-shop")
		writeFiles(t, root, map[string]string{"templates/hook.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n" +
			"  name: hook\n  annotations:\n    helm.sh/hook: " + events + "\n"})
		_, err := renderChart(root, shopOptions())
		wantHelmError(t, err, HelmInputChart, "shop/templates/hook.yaml", "helm.sh/hook "+events)
	}
}

// lookup never reaches a cluster: a template calling it fails, and the error names the template.
func TestHelmRefusesLookup(t *testing.T) {
	_, err := renderChart(filepath.Join("testdata", "helm-lookup"), HelmOptions{ReleaseName: "db", Namespace: "shop"})
	wantHelmError(t, err, HelmInputChart, "lookup/templates/secret.yaml", "lookup of Secret v1 is refused",
		"never reads the cluster")

	// Only a call that runs is refused: not one in a branch the values turn off, nor one in an unused helper.
	root := copyChart(t, "helm-shop")
	writeFiles(t, root, map[string]string{
		"templates/_lookup.tpl": `{{ define "shop.existing" }}{{ lookup "v1" "Secret" .Release.Namespace "db" }}{{ end }}`,
		"templates/maybe.yaml":  `{{ if .Values.reuse }}{{ lookup "v1" "Secret" .Release.Namespace "db" }}{{ end }}`,
	})
	if _, err := renderChart(root, shopOptions()); err != nil {
		t.Errorf("a lookup that never runs was refused: %v", err)
	}
}

// A chart that fails to render returns Helm's own error.
func TestHelmReturnsHelmsError(t *testing.T) {
	_, err := renderChart(filepath.Join("testdata", "helm-broken"), HelmOptions{ReleaseName: "broken", Namespace: "shop"})
	wantHelmError(t, err, HelmInputChart, "broken/templates/deployment.yaml", "image.repository is required")

	root := copyChart(t, "helm-shop")
	writeFiles(t, root, map[string]string{"templates/bad.yaml": "{{ if }}\n"})
	_, err = renderChart(root, shopOptions())
	wantHelmError(t, err, HelmInputChart, "shop/templates/bad.yaml", "missing value for if")
}

// Templates read nothing but the chart and its values: not the controller's environment, not files beyond the
// chart, not through a symbolic link out of the checkout.
func TestHelmReadsOnlyTheChart(t *testing.T) {
	root := copyChart(t, "helm-shop")
	writeFiles(t, root, map[string]string{"templates/env.yaml": `{{ env "HOME" }}`})
	_, err := renderChart(root, shopOptions())
	wantHelmError(t, err, HelmInputChart, `function "env" not defined`)

	root = copyChart(t, "helm-shop")
	writeFiles(t, root, map[string]string{"templates/files.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n" +
		"  name: files\ndata:\n  outside: {{ .Files.Get \"../../../../etc/hostname\" | quote }}\n" +
		"  host: {{ getHostByName \"localhost\" | quote }}\n"})
	objs, err := renderChart(root, shopOptions())
	if err != nil {
		t.Fatal(err)
	}
	if data, _, _ := unstructured.NestedStringMap(find(objs, "ConfigMap", "files").Object, "data"); data["outside"] != "" || data["host"] != "" {
		t.Errorf("a template read beyond the chart: %v", data)
	}

	root = copyChart(t, "helm-shop")
	if err := os.Symlink("/etc/hostname", filepath.Join(root, "templates", "host.yaml")); err != nil {
		t.Fatal(err)
	}
	_, err = renderChart(root, shopOptions())
	wantHelmError(t, err, HelmInputChart, "templates/host.yaml", "escapes")

	root = copyChart(t, "helm-shop")
	if err := os.Symlink("../charts", filepath.Join(root, "templates", "more")); err != nil {
		t.Fatal(err)
	}
	_, err = renderChart(root, shopOptions())
	wantHelmError(t, err, HelmInputChart, "templates/more: symbolic links to folders are not supported")

	_, err = renderChart(filepath.Join("testdata", "helm-shop"), HelmOptions{Chart: "..", ReleaseName: "x", Namespace: "shop"})
	wantHelmError(t, err, HelmInputChart, `chart folder ".." leaves the stage folder`)
	opts := shopOptions()
	opts.ValuesFile = "../values.yaml"
	_, err = renderChart(filepath.Join("testdata", "helm-shop"), opts)
	wantHelmError(t, err, HelmInputValuesFile, `values file "../values.yaml" leaves the stage folder`)
}

// A values.schema.json is checked, but may refer to no schema elsewhere: Helm would fetch it or read it from disk.
func TestHelmSchemas(t *testing.T) {
	root := copyChart(t, "helm-shop")
	writeFiles(t, root, map[string]string{"values.schema.json": `{"type": "object", "properties": {"replicaCount": {"type": "integer", "maximum": 1}}}`})
	_, err := renderChart(root, shopOptions())
	wantHelmError(t, err, HelmInputChart, "values do not match the schema of chart shop", "replicaCount")

	for _, ref := range []string{"https://schemas.example.com/values.json", "file:///etc/hostname"} {
		writeFiles(t, root, map[string]string{"values.schema.json": `{"$ref": "` + ref + `"}`})
		_, err = renderChart(root, shopOptions())
		wantHelmError(t, err, HelmInputChart, "values.schema.json refers to "+ref, "loads no schema from elsewhere")
	}
}

// Charts, renders and their time are bounded.
func TestHelmBounds(t *testing.T) {
	root := copyChart(t, "helm-shop")
	writeFiles(t, root, map[string]string{"templates/spin.yaml": "{{ range $i := 1000000000 }}{{ end }}"})
	opts := shopOptions()
	opts.Timeout = 100 * time.Millisecond
	_, err := renderChart(root, opts)
	wantHelmError(t, err, HelmInputChart, "took longer than 100ms")

	root = copyChart(t, "helm-shop")
	writeFiles(t, root, map[string]string{"templates/big.yaml": `{{ range $i := 40000 }}{{ printf "%1024s" "" }}{{ end }}`})
	_, err = renderChart(root, shopOptions())
	wantHelmError(t, err, HelmInputChart, "more than the 33554432 allowed")

	root = copyChart(t, "helm-shop")
	blob := strings.Repeat("x", 6<<20)
	writeFiles(t, root, map[string]string{"files/a": blob, "files/b": blob, "files/c": blob})
	_, err = renderChart(root, shopOptions())
	wantHelmError(t, err, HelmInputChart, "holds more than 16777216 bytes")

	// .helmignore keeps files out of the chart, as helm does.
	writeFiles(t, root, map[string]string{".helmignore": "files/\n"})
	if _, err := renderChart(root, shopOptions()); err != nil {
		t.Errorf("ignored files still counted: %v", err)
	}
}

// The release name follows Helm's rules.
func TestHelmReleaseName(t *testing.T) {
	opts := shopOptions()
	opts.ReleaseName = strings.Repeat("a", 54)
	_, err := renderChart(filepath.Join("testdata", "helm-shop"), opts)
	wantHelmError(t, err, HelmInputReleaseName, "release name")
}

// Charts are rendered for the Kubernetes version of the client libraries in go.mod.
func TestHelmKubeVersionFollowsClientGo(t *testing.T) {
	gomod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(gomod), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 4 && fields[0] == "k8s.io/client-go" && fields[1] == "=>" {
			minor := strings.Join(strings.SplitN(strings.TrimPrefix(fields[3], "v0."), ".", 2)[:1], "")
			if want := "v1." + minor + "."; !strings.HasPrefix(clientKubeVersion, want) {
				t.Fatalf("clientKubeVersion = %s, but go.mod builds with client-go %s (Kubernetes %s*)", clientKubeVersion, fields[3], want)
			}
			return
		}
	}
	t.Fatal("no replace line for k8s.io/client-go in go.mod")
}
