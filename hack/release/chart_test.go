package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"

	"github.com/ferrycd/ferry/hack/release/publish"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// renderChart renders a chart as `helm template` would and returns the images of its containers.
func renderChart(t *testing.T, dir string) map[string]string {
	t.Helper()
	ch, err := loader.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ToRenderValues(ch, map[string]any{},
		chartutil.ReleaseOptions{Name: "ferry", Namespace: "ferry-system", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatalf("values of %s: %v", dir, err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("rendering %s: %v", dir, err)
	}
	var all strings.Builder
	for file, content := range files {
		if strings.HasSuffix(file, ".yaml") || strings.HasSuffix(file, ".yml") { // not NOTES.txt
			all.WriteString("\n---\n" + content)
		}
	}
	images, err := publish.ContainerImages([]byte(all.String()))
	if err != nil {
		t.Fatal(err)
	}
	return images
}

func TestCopyChartPinsTheImageAndKeepsTheRest(t *testing.T) {
	d, err := name.NewDigest("127.0.0.1:5000/ferrycd/ferry-controller@" + testDigest)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "ferry")
	if err := publish.CopyChart(filepath.Join("testdata", "chart"), dst, d); err != nil {
		t.Fatal(err)
	}
	values, err := os.ReadFile(filepath.Join(dst, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Kept comment: the copy changes the two values only.\n",
		`  repository: "127.0.0.1:5000/ferrycd/ferry-controller"   # trailing comment` + "\n",
		`  digest: "` + testDigest + `"` + "\n",
		"  pullPolicy: IfNotPresent\n",
	} {
		if !strings.Contains(string(values), want) {
			t.Errorf("values.yaml lacks %q:\n%s", want, values)
		}
	}
	images := renderChart(t, dst)
	if got := images["Deployment/ferry-controller manager"]; got != publish.PinnedReference(d) {
		t.Fatalf("the chart deploys %q, want %s", got, publish.PinnedReference(d))
	}
}

func TestCopyChartRefusesAChartWithoutTheImageValues(t *testing.T) {
	for _, values := range []string{"image:\n  repository: x\n", "replicas: 1\n", "image: {repository: x, digest: [a]}\n"} {
		if _, err := publish.SetImageValues([]byte(values), "r", testDigest); err == nil {
			t.Errorf("values %q were accepted, want an error naming the missing value", values)
		}
	}
}
