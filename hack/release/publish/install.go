package publish

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/ferrycd/ferry/internal/version"
)

// PlaceholderImage is the image name config/manager/manager.yaml uses until a release replaces it.
const PlaceholderImage = "ferry-controller"

// RenderInstall builds config/default (the folder given) with kustomize's Go API, the image replaced by the
// pushed one pinned by digest, and $FERRY_IMAGE set to the same reference, so that the controller can say which
// image it runs. Namespaces and CRDs come first, as `kubectl apply -f` needs them. It fails when any container
// image is not the pushed one: a placeholder left behind would deploy something else.
func RenderInstall(configDefault string, d name.Digest) ([]byte, error) {
	abs, err := filepath.Abs(configDefault)
	if err != nil {
		return nil, err
	}
	overlay, err := os.MkdirTemp("", "ferry-install-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(overlay)
	rel, err := filepath.Rel(overlay, abs) // kustomize takes no absolute folder as a resource
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(overlayKustomization(filepath.ToSlash(rel), d)), 0o644); err != nil {
		return nil, err
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsNone // the overlay lies outside config/
	opts.Reorder = krusty.ReorderOptionLegacy
	res, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), overlay)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", configDefault, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		return nil, err
	}
	want := PinnedReference(d)
	images, err := ContainerImages(out)
	if err != nil {
		return nil, err
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("%s has no container", configDefault)
	}
	for where, img := range images {
		if img != want {
			return nil, fmt.Errorf("%s: image %q is not the released %s", where, img, want)
		}
	}
	if !bytes.Contains(out, []byte("value: "+want)) {
		return nil, fmt.Errorf("%s: the Deployment does not set %s to %s", configDefault, version.ImageEnv, want)
	}
	return append([]byte(header(want)), out...), nil
}

// overlayKustomization puts the pushed image into config/default and copies the container's image into the
// $FERRY_IMAGE variable beside it (replacements run after the images transformer).
func overlayKustomization(configDefault string, d name.Digest) string {
	deployment := "kind: Deployment\n      name: ferry-controller\n      namespace: ferry-system"
	return fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %q
images:
  - name: %s
    newName: %q
    digest: %q
replacements:
  - source:
      %s
      fieldPath: spec.template.spec.containers.[name=manager].image
    targets:
      - select:
          %s
        fieldPaths:
          - spec.template.spec.containers.[name=manager].env.[name=%s].value
`, configDefault, PlaceholderImage, d.Context().Name(), d.DigestStr(), deployment,
		strings.ReplaceAll(deployment, "\n      ", "\n          "), version.ImageEnv)
}

func header(image string) string {
	return "# Ferry, installed from " + image + " (rendered from config/default by `make release`).\n" +
		"# Before the pods can start, create the registry webhook's token (see docs/release.md):\n" +
		"#   kubectl -n ferry-system create secret generic ferry-webhook --from-literal=token=\"$(openssl rand -hex 32)\"\n"
}

// ContainerImages maps "Kind/name container" to the image of every container and init container in a
// multi-document YAML stream.
func ContainerImages(stream []byte) (map[string]string, error) {
	images := map[string]string{}
	for i, doc := range strings.Split(string(stream), "\n---\n") {
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Template struct {
					Spec podSpec `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		pod := obj.Spec.Template.Spec
		for _, c := range append(pod.InitContainers, pod.Containers...) {
			images[obj.Kind+"/"+obj.Metadata.Name+" "+c.Name] = c.Image
		}
	}
	return images, nil
}

type podSpec struct {
	Containers     []container `json:"containers"`
	InitContainers []container `json:"initContainers"`
}

type container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}
