package controllers

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// CacheOptions are the informer cache options Ferry's manager runs with. namespaces, when not empty, limits every
// watch — Promotions, and the metadata of Secrets and ConfigMaps — to those namespaces (--watch-namespaces).
func CacheOptions(namespaces []string) cache.Options {
	o := cache.Options{DefaultTransform: CacheTransform}
	if len(namespaces) > 0 {
		o.DefaultNamespaces = make(map[string]cache.Config, len(namespaces))
		for _, ns := range namespaces {
			o.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return o
}

// CacheTransform trims every object before the informer cache keeps it:
//   - Managed fields go from every object: they are a large share of it, and the reconciler reads them from the
//     API server only when an annotation asks for something.
//   - Metadata-only objects — the Secrets and ConfigMaps watched so that a change to one wakes the Promotions
//     referring to it — keep their name, namespace and versions alone. Their annotations may hold the data itself
//     (kubectl's last-applied-configuration of a Secret holds its values), and nothing but the name is needed
//     to find the Promotions to wake; the reconciler reads the object's content from the API server.
func CacheTransform(obj any) (any, error) {
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
		m.ObjectMeta = metav1.ObjectMeta{
			Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
			Generation: m.Generation, DeletionTimestamp: m.DeletionTimestamp,
		}
		return m, nil
	}
	return stripManagedFields(obj)
}

var stripManagedFields toolscache.TransformFunc = cache.TransformStripManagedFields()

// ParseNamespaces reads --watch-namespaces: a comma-separated list of namespace names, blanks ignored.
func ParseNamespaces(list string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, ns := range strings.Split(list, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" || seen[ns] {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
		}
		seen[ns] = true
		out = append(out, ns)
	}
	return out, nil
}
