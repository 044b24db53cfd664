package publish

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferrycd/ferry/internal/image"
	"github.com/ferrycd/ferry/internal/registry"
	"github.com/ferrycd/ferry/internal/signature"
)

// Options are one release of a built image.
type Options struct {
	// Dist is the folder `make image` wrote (the layout, build.json, sbom.spdx.json).
	Dist string
	// OutDir receives provenance.json; empty: Dist.
	OutDir string
	// Repository is where the image goes: host[:port]/path/ferry-controller.
	Repository string
	// BuilderID names who built, for the provenance.
	BuilderID string
	Registry  registry.Options
	Cosign    Cosign
	Key       KeyPair
}

// Released is a pushed, signed and attested image, verified by Ferry's verifier.
type Released struct {
	Digest   name.Digest
	Verified *signature.Result
	Record   BuildRecord
}

// Release pushes the image in o.Dist, signs it, attests its SBOM and provenance, and verifies all of it.
func Release(ctx context.Context, o Options) (*Released, error) {
	rec, err := ReadRecord(o.Dist)
	if err != nil {
		return nil, err
	}
	idx, err := image.ReadLayout(filepath.Join(o.Dist, LayoutDir))
	if err != nil {
		return nil, err
	}
	if h, err := idx.Digest(); err != nil || h.String() != rec.Digest {
		return nil, fmt.Errorf("the layout's index is %v, but %s names %s: run `make image` again", h, RecordFile, rec.Digest)
	}
	d, err := Push(ctx, o.Registry, o.Repository, rec.Version, idx)
	if err != nil {
		return nil, err
	}
	in, err := rec.ProvenanceInput(o.BuilderID, o.Repository)
	if err != nil {
		return nil, err
	}
	prov, err := image.Provenance(in)
	if err != nil {
		return nil, err
	}
	out := o.OutDir
	if out == "" {
		out = o.Dist
	}
	provFile := filepath.Join(out, "provenance.json")
	if err := os.WriteFile(provFile, prov, 0o644); err != nil {
		return nil, err
	}
	if err := o.Cosign.Sign(ctx, o.Key, d); err != nil {
		return nil, err
	}
	if err := o.Cosign.Attest(ctx, o.Key, d, "spdxjson", filepath.Join(o.Dist, image.SBOMName)); err != nil {
		return nil, err
	}
	if err := o.Cosign.Attest(ctx, o.Key, d, "slsaprovenance1", provFile); err != nil {
		return nil, err
	}
	res, err := Verify(ctx, o.Registry, d, o.Key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Released{Digest: d, Verified: res, Record: rec}, nil
}
