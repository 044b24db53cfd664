// Command release builds and publishes ferry-controller's image without Docker, for `make image` and
// `make release` (docs/release.md):
//
//	go run ./hack/release image   [--dist dist] [--version v0.1.0] [--platforms linux/amd64,linux/arm64]
//	go run ./hack/release release --registry host[:port]/path [--key cosign.key --pub cosign.pub] [--cosign bin]
//
// `image` writes dist/image (an OCI image layout holding a multi-arch index), dist/sbom.spdx.json and
// dist/build.json. `release` pushes that index to <registry>/ferry-controller, signs it and attests the SBOM and
// SLSA provenance with cosign, verifies all of it with Ferry's verifier, and writes dist/install.yaml and
// dist/charts/ferry with the image pinned by digest.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: release image|release [flags] (see docs/release.md)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "image":
		err = imageCmd(ctx, args)
	case "release":
		err = releaseCmd(ctx, args)
	default:
		err = fmt.Errorf("unknown command %q: want image or release", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func imageCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	var o buildOptions
	o.bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, rec, err := buildImage(ctx, o)
	if err != nil {
		return err
	}
	fmt.Printf("built ferry-controller %s (commit %s) for %v\n  index %s\n  layout %s/image, SBOM %s/sbom.spdx.json\n",
		rec.Version, rec.Commit, rec.Platforms, res.Digest, o.dist, o.dist)
	return nil
}
