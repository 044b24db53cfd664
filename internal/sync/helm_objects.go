package sync

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ferrycd/ferry/internal/workload"
)

// helmHookAnnotation marks a Helm hook; its value lists the events the hook runs on.
const helmHookAnnotation = "helm.sh/hook"

// renderedObjects decodes the rendered templates, by template path and then document order. NOTES.txt is left
// out, as helm leaves it out of a release, and so are test hooks; any other hook is refused (see helmHook).
func renderedObjects(files map[string]string) ([]*unstructured.Unstructured, error) {
	names := make([]string, 0, len(files))
	total := 0
	for name, content := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		total += len(content)
		names = append(names, name)
	}
	if total > maxRenderedSize {
		return nil, fmt.Errorf("the templates rendered %d bytes, more than the %d allowed", total, maxRenderedSize)
	}
	sort.Strings(names)
	var objs []*unstructured.Unstructured
	var errs []error
	for _, name := range names {
		decoded, err := DecodeDocuments(name, []byte(files[name]))
		if err != nil {
			return nil, err
		}
		for _, o := range decoded {
			keep, err := helmHook(name, o)
			if err != nil {
				errs = append(errs, err)
			} else if keep {
				objs = append(objs, o)
			}
		}
		if len(objs) > maxObjects {
			return nil, fmt.Errorf("the templates declare more than %d objects", maxObjects)
		}
	}
	return objs, errors.Join(errs...)
}

// helmHook decides what happens to an object that may be a hook. Helm runs hooks around its own install, upgrade,
// rollback, delete and test commands; Ferry runs none of those — every sync applies the chart's objects as they
// are declared — so no hook would run when its chart means it to. Applying one as an ordinary object would run a
// pre-delete cleanup at the first sync, or a migration Job once and never again; quietly leaving it out would skip
// a step the chart relies on. So hooks are refused, naming the template, except tests: helm install and upgrade
// leave them out too (only helm test runs them), and Ferry's health checks take their place.
func helmHook(template string, o *unstructured.Unstructured) (keep bool, err error) {
	value, ok := o.GetAnnotations()[helmHookAnnotation]
	if !ok {
		return true, nil
	}
	var events []string
	tests := true
	for _, e := range strings.Split(value, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		events = append(events, e)
		tests = tests && (e == "test" || e == "test-success")
	}
	if tests {
		return false, nil
	}
	return false, fmt.Errorf("%s: %s is a Helm hook (%s %s): Ferry runs no Helm hooks, and applies every object of a "+
		"chart at every sync; turn the hook off in the values or remove it (see docs/helm.md)",
		template, describe(o), helmHookAnnotation, strings.Join(events, ","))
}

// checkPinned makes sure the digest pinned in the values at key is what the chart runs: a chart whose templates
// ignore it (rendering the tag kept beside it, say) would run something else than Git declares.
func checkPinned(vals chartutil.Values, key string, objs []*unstructured.Unstructured) error {
	if key == "" {
		return nil
	}
	values, _ := vals.Table("Values")
	digest := pinnedDigest(values, key)
	if digest == "" {
		return nil // nothing pinned there (yet)
	}
	for _, o := range objs {
		podSpec, ok := workload.PodSpecPath(o.GroupVersionKind().Group, o.GetKind())
		if !ok {
			continue
		}
		for _, c := range podImages(RefOf(o), o, podSpec) {
			if strings.HasSuffix(c.Image, "@"+digest) {
				return nil
			}
		}
	}
	return helmErrorf(HelmInputImageKey, "the values pin %s at %s, but no container the chart renders runs it: the "+
		"chart's templates must use the digest (see docs/helm.md)", digest, key)
}

// pinnedDigest reads the digest pinned at a dotted key of the values: the digest of a "repository@digest" string,
// or the digest entry of a map. It is "" when there is none.
func pinnedDigest(values map[string]any, key string) string {
	var node any = values
	for _, part := range strings.Split(key, ".") {
		m, ok := asMap(node)
		if !ok {
			return ""
		}
		node = m[part]
	}
	switch v := node.(type) {
	case string:
		if _, digest, ok := strings.Cut(v, "@"); ok {
			return strings.TrimSpace(digest)
		}
	default:
		if m, ok := asMap(v); ok {
			digest, _ := m["digest"].(string)
			return strings.TrimSpace(digest)
		}
	}
	return ""
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case chartutil.Values:
		return m, true
	}
	return nil, false
}
