package canary

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ferrycd/ferry/internal/workload"
)

// Workloads picks, from a stage's rendered objects, the apps/v1 Deployments whose pod template runs
// imageRepository with any tag or digest, in a container or an init container. Repositories are compared as the
// registry sees them ("nginx" is "index.docker.io/library/nginx").
//
// Any other kind of workload that runs the image (StatefulSet, DaemonSet, Job, a bare Pod, ...) is an error naming
// each one: Ferry cannot run a canary of it, and promoting it without one would skip the analysis silently. Finding
// no workload at all is an error too, since the canary would have nothing to measure.
func Workloads(objs []*unstructured.Unstructured, imageRepository string) ([]*unstructured.Unstructured, error) {
	repo, err := name.NewRepository(imageRepository)
	if err != nil {
		return nil, fmt.Errorf("image repository %q: %w", imageRepository, err)
	}
	var deployments []*unstructured.Unstructured
	var unsupported []string
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		path, isWorkload := workload.PodSpecPath(gvk.Group, gvk.Kind)
		if !isWorkload || !runs(obj, path, repo.Name()) {
			continue
		}
		if gvk == deploymentGVK {
			deployments = append(deployments, obj)
			continue
		}
		unsupported = append(unsupported, gvk.Kind+"/"+obj.GetName())
	}
	if len(unsupported) > 0 {
		return nil, fmt.Errorf("%s run %s, and only apps/v1 Deployments can have a canary: give the stage no canary, or run the image in Deployments only",
			strings.Join(unsupported, ", "), imageRepository)
	}
	if len(deployments) == 0 {
		return nil, errors.New("no Deployment of the stage runs " + imageRepository + ": the canary would have nothing to run")
	}
	return deployments, nil
}

// runs tells whether a container or init container of the pod spec at path uses the repository (already
// normalised by go-containerregistry).
func runs(obj *unstructured.Unstructured, path []string, repository string) bool {
	for _, image := range podImages(obj, path) {
		if imageRepositoryOf(image) == repository {
			return true
		}
	}
	return false
}

// podImages lists the images of the init containers and containers of the pod spec at path.
func podImages(obj *unstructured.Unstructured, path []string) []string {
	var images []string
	for _, field := range []string{"initContainers", "containers"} {
		list, _, _ := unstructured.NestedSlice(obj.Object, append(append([]string{}, path...), field)...)
		for _, c := range list {
			m, _ := c.(map[string]any)
			if image, _ := m["image"].(string); image != "" {
				images = append(images, image)
			}
		}
	}
	return images
}

// imageRepositoryOf is the repository of a tag or digest reference, "" for one that does not parse.
func imageRepositoryOf(image string) string {
	if d, err := name.NewDigest(image); err == nil {
		return d.Context().Name()
	}
	if t, err := name.NewTag(image); err == nil {
		return t.Context().Name()
	}
	return ""
}
