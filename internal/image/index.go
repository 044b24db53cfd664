package image

import (
	"fmt"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Metadata is what the image says about itself, in its config's labels and the manifests' annotations (the OCI
// "org.opencontainers.image.*" keys).
type Metadata struct {
	Version, Commit string
	Source          string // the source repository's URL
	Created         time.Time
}

func (m Metadata) annotations() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    "ferry-controller",
		"org.opencontainers.image.version":  m.Version,
		"org.opencontainers.image.revision": m.Commit,
		"org.opencontainers.image.source":   m.Source,
		"org.opencontainers.image.created":  m.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
}

// PlatformImage builds the image of one platform: an empty OCI image, the shared base layer, and the binary.
func PlatformImage(p Platform, base v1.Layer, binary string, m Metadata) (v1.Image, error) {
	bin, err := BinaryLayer(binary, m.Created)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: m.Created.UTC()}
	cfg := &v1.ConfigFile{
		Created:      created,
		OS:           p.OS,
		Architecture: p.Architecture,
		RootFS:       v1.RootFS{Type: "layers"}, // the layers' diff IDs are added with them
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", UID, UID),
			Entrypoint: []string{BinaryPath},
			WorkingDir: "/",
			Env:        []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=" + CABundlePath},
			Labels:     m.annotations(),
		},
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, err
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: created,
			CreatedBy: "hack/release: base (passwd, group, CA certificates, /tmp)", Comment: "built from nothing"}},
		mutate.Addendum{Layer: bin, MediaType: types.OCILayer, History: v1.History{Created: created,
			CreatedBy: "hack/release: " + BinaryPath + " (CGO_ENABLED=0 go build -trimpath)"}})
	if err != nil {
		return nil, fmt.Errorf("adding layers for %s: %w", p, err)
	}
	return mutate.Annotations(img, m.annotations()).(v1.Image), nil
}

// Index puts the platform images, in the order given, into one OCI image index.
func Index(images map[Platform]v1.Image, order []Platform, m Metadata) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range order {
		img, ok := images[p]
		if !ok {
			return nil, fmt.Errorf("no image for %s", p)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			MediaType: types.OCIManifestSchema1,
			Platform:  &v1.Platform{OS: p.OS, Architecture: p.Architecture},
		}})
	}
	return mutate.Annotations(idx, m.annotations()).(v1.ImageIndex), nil
}

// RefNameAnnotation names an index in an OCI layout's index.json.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// WriteLayout writes the index as the only entry of a fresh OCI image layout in dir (replacing what was there),
// named refName.
func WriteLayout(dir string, idx v1.ImageIndex, refName string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("creating the OCI layout %s: %w", dir, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{RefNameAnnotation: refName})); err != nil {
		return fmt.Errorf("writing the index into %s: %w", dir, err)
	}
	return nil
}

// ReadLayout returns the image index WriteLayout wrote into dir.
func ReadLayout(dir string) (v1.ImageIndex, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the OCI layout %s: %w", dir, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 || m.Manifests[0].MediaType != types.OCIImageIndex {
		return nil, fmt.Errorf("%s: index.json should name exactly one image index, it names %d entries", dir, len(m.Manifests))
	}
	return top.ImageIndex(m.Manifests[0].Digest)
}
