package helmchart

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/strvals"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// The release every test installs, as README.md's `helm install ferry … -n ferry-system` does.
const (
	releaseName = "ferry"
	namespace   = "ferry-system"
	// testDigest is any well-formed digest: rendering never resolves it.
	testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// repoPath is a path from the repository root (tests run in internal/helmchart).
func repoPath(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

var chartDir = repoPath("charts", "ferry")

// loadChart loads charts/ferry from disk as `helm install ./charts/ferry` does.
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading %s: %v", chartDir, err)
	}
	return c
}

// setValues parses --set style assignments ("image.digest=sha256:…", "watchNamespaces={a,b}").
func setValues(t *testing.T, sets ...string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	for _, s := range sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			t.Fatalf("--set %s: %v", s, err)
		}
	}
	return vals
}

// withDigest is sets with a well-formed image.digest first.
func withDigest(sets ...string) []string {
	return append([]string{"image.digest=" + testDigest}, sets...)
}

// renderChart renders the chart's templates as `helm template ferry charts/ferry -n ferry-system --set …` does
// (client only: lookup finds nothing; values checked against values.schema.json), without the CRDs, which crds/
// holds apart. NOTES.txt is rendered too, so that an error in it fails, but left out of the manifest.
func renderChart(t *testing.T, sets ...string) (string, error) {
	t.Helper()
	return renderChartWith(t, nil, sets...)
}

// renderChartWith renders as `helm upgrade` does against the cluster cfg reaches (lookup reads it), or as
// `helm template` does when cfg is nil.
func renderChartWith(t *testing.T, cfg *rest.Config, sets ...string) (string, error) {
	t.Helper()
	chrt := loadChart(t)
	options := chartutil.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}
	values, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, setValues(t, sets...), options,
		chartutil.DefaultCapabilities.Copy(), false)
	if err != nil {
		return "", err
	}
	render := engine.Render
	if cfg != nil {
		render = func(c *chart.Chart, v chartutil.Values) (map[string]string, error) {
			return engine.RenderWithClient(c, v, cfg)
		}
	}
	files, err := render(chrt, values)
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		if base := path.Base(name); !strings.HasPrefix(base, "_") && base != "NOTES.txt" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		if strings.TrimSpace(files[name]) != "" {
			fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", name, files[name])
		}
	}
	return b.String(), nil
}

// render renders the chart and decodes every object, failing the test when rendering fails.
func render(t *testing.T, sets ...string) objects {
	t.Helper()
	manifest, err := renderChart(t, sets...)
	if err != nil {
		t.Fatalf("rendering with %v: %v", sets, err)
	}
	return decodeManifest(t, manifest)
}

// objects are the rendered objects in the order Helm installs them.
type objects []*unstructured.Unstructured

func decodeManifest(t *testing.T, manifest string) objects {
	t.Helper()
	docs := releaseutil.SplitManifests(manifest)
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var out objects
	for _, k := range keys {
		doc := docs[k]
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if m == nil {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

// get returns the object of kind and name, or nil.
func (o objects) get(kind, name string) *unstructured.Unstructured {
	for _, u := range o {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	return nil
}

// ofKind returns the objects of kind.
func (o objects) ofKind(kind string) objects {
	var out objects
	for _, u := range o {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// must returns the object of kind and name, failing the test when it is missing.
func (o objects) must(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	u := o.get(kind, name)
	if u == nil {
		t.Fatalf("no %s %s rendered; have %v", kind, name, o.names())
	}
	return u
}

func (o objects) names() []string {
	var out []string
	for _, u := range o {
		out = append(out, u.GetKind()+"/"+u.GetName())
	}
	return out
}

// typed converts a rendered object into a typed API object.
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	var obj T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &obj, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return &obj
}

// readYAMLDocs reads the objects of a multi-document YAML file from the repository.
func readYAMLDocs(t *testing.T, parts ...string) objects {
	t.Helper()
	raw, err := os.ReadFile(repoPath(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return decodeManifest(t, string(raw))
}
