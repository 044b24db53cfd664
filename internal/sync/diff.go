package sync

import (
	"github.com/argoproj/argo-cd/gitops-engine/pkg/diff"
	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// diffObjects reports whether the live object differs from the declared one, using gitops-engine's three-way diff
// (declared, live, and the last-applied configuration kubectl apply records).
func diffObjects(target, live *unstructured.Unstructured, log logr.Logger) (bool, error) {
	res, err := diff.Diff(target, live, diff.WithLogr(log))
	if err != nil {
		return true, err
	}
	return res.Modified, nil
}
