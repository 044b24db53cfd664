package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrycd/ferry/hack/release/publish"
	"github.com/ferrycd/ferry/internal/image"
	"github.com/ferrycd/ferry/internal/version"
)

// installFromImage releases the image `make image` built (dist/) into the stage registry, the one the cluster
// pulls from: pushed, signed with a release key of the demo's own, its SBOM and SLSA provenance attested, then
// verified with Ferry's verifier. The controller binary is then taken out of the verified image, by digest, for
// this machine's platform: the demo runs it as a process (its pods would be simulated), but from the real image.
// It returns the binary's path.
func (d *demo) installFromImage(ctx context.Context) (string, error) {
	dir := filepath.Join(d.state, "release")
	c := publish.Cosign{Bin: d.w.cosign, Env: d.w.cosignEnv}
	key, err := c.GenerateKeyPair(ctx, filepath.Join(dir, "key"))
	if err != nil {
		return "", err
	}
	rel, err := publish.Release(ctx, publish.Options{Dist: filepath.Join(d.root, "dist"), OutDir: dir,
		Repository: d.w.StageRegistry + "/ferrycd/ferry-controller", BuilderID: "https://github.com/ferrycd/ferry/hack/demo",
		Registry: publish.RegistryOptions(nil), Cosign: c, Key: key})
	if err != nil {
		return "", fmt.Errorf("releasing dist/ (built by `make image`): %w", err)
	}
	d.image = publish.PinnedReference(rel.Digest)
	fmt.Printf("  pushed %s (%s, %s)\n  %s\n", d.image, rel.Record.Version, strings.Join(rel.Record.Platforms, ", "),
		rel.Verified.Summary())

	bin, err := extractController(ctx, rel.Digest.String(), filepath.Join(dir, "ferry-controller"))
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Env = append(os.Environ(), version.ImageEnv+"="+d.image)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w\n%s", bin, err, out)
	}
	fmt.Print(indent(string(out)))
	return bin, nil
}

// extractController pulls the image for this machine's platform by digest and writes its controller binary.
func extractController(ctx context.Context, ref, out string) (string, error) {
	d, err := publish.RegistryOptions(nil).ParseDigest("image", ref)
	if err != nil {
		return "", err
	}
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	img, err := remote.Image(d, remote.WithContext(ctx), remote.WithPlatform(platform))
	if err != nil {
		return "", fmt.Errorf("pulling %s for %s: %w", ref, platform.String(), err)
	}
	b, err := image.ExtractFile(img, image.BinaryPath)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(out, b, 0o755); err != nil {
		return "", err
	}
	return out, nil
}
