package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ferrycd/ferry/hack/release/publish"
	"github.com/ferrycd/ferry/internal/image"
)

// buildOptions are the flags of `release image`.
type buildOptions struct {
	dist, version, platforms, source, moduleDir, caDir string
}

func (o *buildOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.dist, "dist", "dist", "folder for the layout, the SBOM and build.json")
	fs.StringVar(&o.version, "version", "", "version to stamp (default: `git describe --tags`, or v0.0.0-<commit> without a tag)")
	fs.StringVar(&o.platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated os/arch to build for")
	fs.StringVar(&o.source, "source", "https://github.com/ferrycd/ferry", "source repository URL, for labels, SBOM and provenance")
	fs.StringVar(&o.moduleDir, "module", ".", "root of Ferry's module")
	fs.StringVar(&o.caDir, "ca-dir", image.DebianCADir, "CA certificates to put in the image (Debian's ca-certificates package)")
}

// buildImage compiles and assembles the image, and writes dist/image, dist/sbom.spdx.json and dist/build.json.
func buildImage(ctx context.Context, o buildOptions) (*image.Result, publish.BuildRecord, error) {
	started := time.Now()
	var rec publish.BuildRecord
	src, err := readSource(ctx, o.moduleDir)
	if err != nil {
		return nil, rec, err
	}
	if o.version == "" {
		o.version = src.describe
	}
	var platforms []image.Platform
	for _, s := range strings.Split(o.platforms, ",") {
		p, err := image.ParsePlatform(s)
		if err != nil {
			return nil, rec, fmt.Errorf("--platforms: %w", err)
		}
		platforms = append(platforms, p)
		rec.Platforms = append(rec.Platforms, p.String())
	}
	caVersion, err := debianPackageVersion(ctx, "ca-certificates")
	if err != nil {
		return nil, rec, err
	}
	meta := image.Metadata{Version: o.version, Commit: src.commit, Source: o.source, Created: src.created}
	compile := image.CompileOptions{ModuleDir: o.moduleDir, Package: "./cmd/ferry-controller", Version: o.version,
		Commit: src.commit, OutDir: filepath.Join(o.dist, publish.BinDir)}
	res, err := image.Build(ctx, image.Options{Compile: compile, Metadata: meta, Platforms: platforms,
		CADir: o.caDir, CAPackageVersion: caVersion,
		LayoutDir: filepath.Join(o.dist, publish.LayoutDir), SBOMFile: filepath.Join(o.dist, image.SBOMName)})
	if err != nil {
		return nil, rec, err
	}
	rec.Version, rec.Commit, rec.Source, rec.SourceDirty, rec.Created = o.version, src.commit, o.source, src.dirty, src.created
	rec.Digest, rec.GoVersion, rec.LDFlags, rec.CAPackageVersion = res.Digest.String(), runtime.Version(), compile.LDFlags(), caVersion
	rec.StartedOn, rec.FinishedOn = started.UTC(), time.Now().UTC()
	return res, rec, publish.WriteRecord(o.dist, rec)
}

// source is what Git says about the tree being built.
type source struct {
	commit, describe string
	dirty            bool
	created          time.Time
}

// readSource reads the commit, whether the tree has uncommitted changes, a version from tags, and the fixed
// time every timestamp of the image takes: $SOURCE_DATE_EPOCH, or the commit's time, so that the same commit
// builds the same image.
func readSource(ctx context.Context, dir string) (source, error) {
	var s source
	var err error
	if s.commit, err = git(ctx, dir, "rev-parse", "HEAD"); err != nil {
		return s, err
	}
	status, err := git(ctx, dir, "status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return s, err
	}
	s.dirty = status != ""
	if s.describe, err = git(ctx, dir, "describe", "--tags", "--match", "v[0-9]*", "--always", "--dirty"); err != nil {
		return s, err
	}
	if !strings.HasPrefix(s.describe, "v") {
		s.describe = "v0.0.0-" + s.describe // no release tag yet: the abbreviated commit
	}
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if epoch == "" {
		if epoch, err = git(ctx, dir, "log", "-1", "--format=%ct"); err != nil {
			return s, err
		}
	}
	secs, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return s, fmt.Errorf("SOURCE_DATE_EPOCH or the commit time %q is not seconds since 1970: %w", epoch, err)
	}
	s.created = time.Unix(secs, 0).UTC()
	return s, nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// debianPackageVersion asks dpkg for an installed package's version.
func debianPackageVersion(ctx context.Context, pkg string) (string, error) {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil || len(out) == 0 {
		return "", fmt.Errorf("Debian package %s is not installed (apt-get install %s): %v", pkg, pkg, err)
	}
	return string(out), nil
}
