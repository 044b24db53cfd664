package sync

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// Limits of one Helm render, on top of the limits every format has (maxFileSize, maxObjects).
const (
	// maxChartSize bounds the bytes read from the chart's folder; vendored archives count as stored, and Helm
	// bounds what each one unpacks to (loader.MaxDecompressedChartSize).
	maxChartSize = 16 << 20
	// maxRenderedSize bounds the manifests the templates write, all files together.
	maxRenderedSize = 32 << 20
	// defaultHelmTimeout bounds a render, waiting for a free slot included.
	defaultHelmTimeout = 30 * time.Second
	// helmSlots is how many renders may run at once. Go cannot stop a template that is running: a render past its
	// time keeps its slot until it ends, so endless charts cannot pile up more than this many goroutines.
	helmSlots = 4
)

// HelmOptions says how the chart in a stage folder is rendered (FormatHelm). Paths are slash paths relative to
// the stage folder and may not leave it.
type HelmOptions struct {
	// Chart is the folder holding Chart.yaml ("" or "." for the stage folder itself). Its dependencies must be
	// vendored under its charts/ folder, as folders or archives: nothing is ever fetched.
	Chart string
	// ValuesFile is merged over the chart's own values.yaml ("" for none).
	ValuesFile string
	// ImageKey is the dotted key path of the values where the image's digest is pinned. When the merged values
	// hold a digest there, some container the chart renders must run it.
	ImageKey string
	// ReleaseName and Namespace are .Release.Name and .Release.Namespace.
	ReleaseName, Namespace string
	// KubeVersion is .Capabilities.KubeVersion ("" for the Kubernetes version Ferry's client libraries are of).
	KubeVersion string
	// Timeout bounds the render (defaultHelmTimeout when zero).
	Timeout time.Duration
}

// Inputs of HelmOptions named by HelmError.
const (
	HelmInputChart       = "Chart"
	HelmInputValuesFile  = "ValuesFile"
	HelmInputImageKey    = "ImageKey"
	HelmInputReleaseName = "ReleaseName"
)

// HelmError is a chart that cannot be rendered as asked. Input names the HelmOptions field at fault, so that a
// caller can point at the setting to fix; the chart's own mistakes are the Chart's.
type HelmError struct {
	Input string
	Err   error
}

func (e *HelmError) Error() string { return e.Err.Error() }
func (e *HelmError) Unwrap() error { return e.Err }

func helmErrorf(input, format string, args ...any) error {
	return &HelmError{Input: input, Err: fmt.Errorf(format, args...)}
}

// ErrHelmBusy means every render slot was taken for the whole timeout: the chart is not at fault, and trying
// again later may succeed.
var ErrHelmBusy = errors.New("every Helm render slot is busy")

// renderHelm renders the chart of a stage folder offline and returns the objects it declares. Hooks other than
// tests are refused (tests are left out, as helm install leaves them out), the crds/ folder is not read, and a
// template that calls lookup fails: no cluster is ever read.
func renderHelm(root *os.Root, stageDir string, opts HelmOptions) ([]*unstructured.Unstructured, error) {
	if err := chartutil.ValidateReleaseName(opts.ReleaseName); err != nil {
		return nil, helmErrorf(HelmInputReleaseName, "release name %q: %v", opts.ReleaseName, err)
	}
	if opts.Namespace == "" {
		return nil, errors.New("helm: a namespace is required")
	}
	chrt, err := loadChart(root.FS(), stageDir, opts.Chart)
	if err != nil {
		return nil, err
	}
	values, err := readValues(root.FS(), stageDir, opts.ValuesFile)
	if err != nil {
		return nil, err
	}
	vals, err := renderValues(chrt, values, opts)
	if err != nil {
		return nil, &HelmError{Input: HelmInputChart, Err: fmt.Errorf("chart %s: %w", chrt.Name(), err)}
	}
	files, err := renderTemplates(chrt, vals, opts.Timeout)
	if err != nil {
		return nil, err
	}
	objs, err := renderedObjects(files)
	if err != nil {
		return nil, &HelmError{Input: HelmInputChart, Err: fmt.Errorf("chart %s: %w", chrt.Name(), err)}
	}
	if err := checkPinned(vals, opts.ImageKey, objs); err != nil {
		return nil, err
	}
	return objs, nil
}

// within joins rel, a slash path, to dir, refusing a result outside dir: only the stage folder is checked out.
func within(dir, rel string) (string, error) {
	if path.IsAbs(rel) || strings.Contains(rel, `\`) {
		return "", fmt.Errorf("%q must be relative to the stage folder, with forward slashes", rel)
	}
	clean := path.Clean("./" + rel)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%q leaves the stage folder", rel)
	}
	return path.Join(dir, clean), nil
}

// renderValues builds what templates see: the values (chart defaults, dependencies' imports and the stage's file,
// checked against the charts' schemas), the release and the capabilities.
func renderValues(chrt *chart.Chart, values chartutil.Values, opts HelmOptions) (chartutil.Values, error) {
	caps, err := helmCapabilities(opts.KubeVersion)
	if err != nil {
		return nil, err
	}
	if c := chrt.Metadata.KubeVersion; c != "" && !chartutil.IsCompatibleRange(c, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("the chart requires Kubernetes %s, and it is rendered for %s", c, caps.KubeVersion.String())
	}
	if err := chartutil.ProcessDependenciesWithMerge(chrt, values); err != nil {
		return nil, fmt.Errorf("dependencies: %w", err)
	}
	// A release is rendered as helm template renders it: always a first install, revision 1, so that the objects
	// depend on the commit alone.
	release := chartutil.ReleaseOptions{Name: opts.ReleaseName, Namespace: opts.Namespace, Revision: 1, IsInstall: true}
	// Helm's own schema check would follow $ref to any URL or local file; checkSchemas follows none.
	vals, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, values, release, caps, true)
	if err != nil {
		return nil, err
	}
	top, err := vals.Table("Values")
	if err != nil {
		return nil, err
	}
	if err := checkSchemas(chrt, top); err != nil {
		return nil, err
	}
	return vals, nil
}

// helmCapabilities are Helm's defaults (the API versions built into the client libraries), with the Kubernetes
// version asked for, else the one of those libraries, rather than Helm's library default (1.20). The cluster is
// not asked: what a commit renders to must not depend on when, or against which cluster, it is rendered.
func helmCapabilities(kubeVersion string) (*chartutil.Capabilities, error) {
	caps := chartutil.DefaultCapabilities.Copy()
	if kubeVersion == "" {
		kubeVersion = clientKubeVersion
	}
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, fmt.Errorf("kubernetes version %q: %w", kubeVersion, err)
	}
	caps.KubeVersion = *kv
	return caps, nil
}

// clientKubeVersion is the Kubernetes version Ferry's client libraries are of (k8s.io/client-go v0.36 is Kubernetes
// 1.36): the API versions Helm's default capabilities list come from them. TestHelmKubeVersionFollowsClientGo
// fails when go.mod moves to another minor version and this is not updated.
const clientKubeVersion = "v1.36.0"

// slots holds one token per running render.
var slots = make(chan struct{}, helmSlots)

type rendered struct {
	files map[string]string
	err   error
}

// renderTemplates runs Helm's template engine within the timeout. The engine is given no cluster: lookup reaches
// refuseLookup, DNS lookups return "" (Helm's default), and Helm has removed env and expandenv from its
// functions, so a template can read nothing but the chart and its values.
func renderTemplates(chrt *chart.Chart, vals chartutil.Values, timeout time.Duration) (map[string]string, error) {
	if timeout <= 0 {
		timeout = defaultHelmTimeout
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case slots <- struct{}{}:
	case <-deadline.C:
		return nil, fmt.Errorf("%w: %d renders have been running for more than %s", ErrHelmBusy, helmSlots, timeout)
	}
	done := make(chan rendered, 1)
	go func() {
		defer func() { <-slots }()
		files, err := engine.RenderWithClientProvider(chrt, vals, refuseLookup{})
		done <- rendered{files, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, &HelmError{Input: HelmInputChart, Err: fmt.Errorf("rendering chart %s: %w", chrt.Name(), r.err)}
		}
		return r.files, nil
	case <-deadline.C:
		return nil, helmErrorf(HelmInputChart, "rendering chart %s took longer than %s; it was abandoned", chrt.Name(), timeout)
	}
}

// refuseLookup is the engine's only way to a cluster, and it refuses every lookup: what Ferry applies must follow
// from Git alone, and a template reading live objects (a Secret to keep, a version to adapt to) would render
// differently on every sync.
type refuseLookup struct{}

func (refuseLookup) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	return nil, false, fmt.Errorf("lookup of %s %s is refused: Ferry renders charts offline and never reads the cluster", kind, apiVersion)
}
