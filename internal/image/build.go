package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Options describe one image build.
type Options struct {
	Compile   CompileOptions
	Metadata  Metadata
	Platforms []Platform
	// CADir holds the CA certificates (DebianCADir); CAPackageVersion is their Debian package's version.
	CADir, CAPackageVersion string
	// LayoutDir receives the OCI image layout; SBOMFile the SPDX document. Either may be empty to skip it.
	LayoutDir, SBOMFile string
}

// Result is a built image.
type Result struct {
	Index    v1.ImageIndex
	Digest   v1.Hash
	Binaries map[Platform]string
	SBOM     []byte
}

// SBOMName is the SBOM's file name beside the layout.
const SBOMName = "sbom.spdx.json"

// Build compiles the binaries, assembles the index, and writes the layout and the SBOM.
func Build(ctx context.Context, o Options) (*Result, error) {
	if len(o.Platforms) == 0 {
		return nil, errors.New("no platforms to build for")
	}
	if o.Metadata.Version != o.Compile.Version || o.Metadata.Commit != o.Compile.Commit {
		return nil, errors.New("the image's labels and the binary's stamp name different versions or commits")
	}
	ca, err := ReadCABundle(o.CADir)
	if err != nil {
		return nil, err
	}
	base, err := BaseLayer(ca, o.Metadata.Created)
	if err != nil {
		return nil, err
	}
	res := &Result{Binaries: map[Platform]string{}}
	images := map[Platform]v1.Image{}
	for _, p := range o.Platforms {
		bin, err := Compile(ctx, o.Compile, p)
		if err != nil {
			return nil, err
		}
		res.Binaries[p] = bin
		if images[p], err = PlatformImage(p, base, bin, o.Metadata); err != nil {
			return nil, err
		}
	}
	if res.Index, err = Index(images, o.Platforms, o.Metadata); err != nil {
		return nil, err
	}
	if res.Digest, err = res.Index.Digest(); err != nil {
		return nil, err
	}
	res.SBOM, err = SBOM(SBOMInput{Metadata: o.Metadata, IndexDigest: res.Digest.String(), Binaries: res.Binaries,
		CAPackageVersion: o.CAPackageVersion})
	if err != nil {
		return nil, err
	}
	if o.LayoutDir != "" {
		if err := WriteLayout(o.LayoutDir, res.Index, o.Metadata.Version); err != nil {
			return nil, err
		}
	}
	if o.SBOMFile != "" {
		if err := os.MkdirAll(filepath.Dir(o.SBOMFile), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(o.SBOMFile, res.SBOM, 0o644); err != nil {
			return nil, fmt.Errorf("writing the SBOM: %w", err)
		}
	}
	return res, nil
}
