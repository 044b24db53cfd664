package sync

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ferrycd/ferry/internal/workload"
)

// Drift is a declared image that is not what a workload runs.
type Drift struct {
	// Ref and Container name the workload's container; both are empty when the declared image's repository is
	// used by no container at all.
	Ref       ObjectRef
	Container string
	Declared  string
	// Running is the container's image as written in the live pod template ("" when nothing runs the image).
	Running string
}

func (d Drift) String() string {
	if d.Container == "" {
		return fmt.Sprintf("%s is declared but no workload runs its repository", d.Declared)
	}
	return fmt.Sprintf("%s container %q runs %s, declared %s", d.Ref, d.Container, d.Running, d.Declared)
}

// containerImage is one container of a live workload.
type containerImage struct {
	Ref       ObjectRef
	Container string
	Image     string
}

// Drift reads the pod templates of the referenced workloads (other kinds are ignored) and compares their
// container images with the declared images, each "repository@sha256:…". A container drifts when it uses a
// declared repository with another digest, or with a tag and no digest; a declared image drifts when no container
// uses its repository. Workloads that no longer exist are skipped (Health reports them Missing).
func (t *Target) Drift(ctx context.Context, refs []ObjectRef, declared []string) ([]Drift, error) {
	wanted, err := parseDeclared(declared)
	if err != nil {
		return nil, err
	}
	var running []containerImage
	for _, ref := range refs {
		if _, isWorkload := workload.PodSpecPath(ref.Group, ref.Kind); !isWorkload {
			continue
		}
		obj, err := t.read(ctx, ref)
		if err != nil {
			return nil, err
		}
		running = append(running, workloadImages(ref, obj)...)
	}
	return compareImages(running, wanted), nil
}

// workloadImages lists the containers of a workload as read (none for other kinds, or when it does not exist).
func workloadImages(ref ObjectRef, obj *unstructured.Unstructured) []containerImage {
	path, ok := workload.PodSpecPath(ref.Group, ref.Kind)
	if !ok || obj == nil {
		return nil
	}
	return podImages(ref, obj, path)
}

// parseDeclared requires digest references, the only kind Ferry declares.
func parseDeclared(declared []string) ([]name.Digest, error) {
	out := make([]name.Digest, 0, len(declared))
	for _, d := range declared {
		dig, err := name.NewDigest(d)
		if err != nil {
			return nil, fmt.Errorf("declared image %q: must be repository@sha256:<64 hex>: %w", d, err)
		}
		out = append(out, dig)
	}
	return out, nil
}

// podImages lists the containers and init containers of the pod spec at path.
func podImages(ref ObjectRef, obj *unstructured.Unstructured, path []string) []containerImage {
	spec, ok, _ := unstructured.NestedMap(obj.Object, path...)
	if !ok {
		return nil
	}
	var out []containerImage
	for _, field := range []string{"initContainers", "containers"} {
		list, _ := spec[field].([]any)
		for _, c := range list {
			m, _ := c.(map[string]any)
			cname, _ := m["name"].(string)
			image, _ := m["image"].(string)
			out = append(out, containerImage{Ref: ref, Container: cname, Image: image})
		}
	}
	return out
}

// compareImages matches containers to declared images by repository (as the registry sees it, so "nginx" and
// "index.docker.io/library/nginx" are one repository) and reports every mismatch.
func compareImages(running []containerImage, declared []name.Digest) []Drift {
	var drifts []Drift
	for _, want := range declared {
		used := false
		for _, c := range running {
			repo, digest, ok := splitImage(c.Image)
			if !ok || repo != want.Context().Name() {
				continue
			}
			used = true
			if digest != want.DigestStr() {
				drifts = append(drifts, Drift{Ref: c.Ref, Container: c.Container, Declared: want.String(), Running: c.Image})
			}
		}
		if !used {
			drifts = append(drifts, Drift{Declared: want.String()})
		}
	}
	return drifts
}

// splitImage returns an image's repository and its digest ("" when it is pinned by tag only).
func splitImage(image string) (repo, digest string, ok bool) {
	if d, err := name.NewDigest(image); err == nil {
		return d.Context().Name(), d.DigestStr(), true
	}
	if tag, err := name.NewTag(image); err == nil {
		return tag.Context().Name(), "", true
	}
	return "", "", false
}
