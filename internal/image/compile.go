package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Platform is one operating system and architecture the image is built for.
type Platform struct{ OS, Architecture string }

func (p Platform) String() string { return p.OS + "/" + p.Architecture }

// ParsePlatform reads "linux/amd64".
func ParsePlatform(s string) (Platform, error) {
	os, arch, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok || os == "" || arch == "" || strings.Contains(arch, "/") {
		return Platform{}, fmt.Errorf("platform %q: want os/arch, e.g. linux/amd64", s)
	}
	return Platform{OS: os, Architecture: arch}, nil
}

// DefaultPlatforms are the platforms a release is built for.
var DefaultPlatforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}}

// versionPackage is where the link-time version and commit go.
const versionPackage = "github.com/ferrycd/ferry/internal/version"

// CompileOptions say what to compile and how to stamp it.
type CompileOptions struct {
	// ModuleDir is the root of Ferry's module (the folder with go.mod).
	ModuleDir string
	// Package is the main package, relative to ModuleDir: "./cmd/ferry-controller".
	Package string
	// Version and Commit are linked into internal/version.
	Version, Commit string
	// OutDir receives one binary per platform: OutDir/<os>-<arch>/<base name of Package>.
	OutDir string
	// Go is the go command; empty: "go" from PATH.
	Go string
}

// LDFlags are the linker flags of a release binary: no symbol table or DWARF (the build info that the SBOM and
// `go version -m` read stays), and the version and commit.
func (o CompileOptions) LDFlags() string {
	return fmt.Sprintf("-s -w -X %s.Version=%s -X %s.Commit=%s", versionPackage, o.Version, versionPackage, o.Commit)
}

// BuildFlags are the flags of every release compile besides -ldflags and -o, recorded in the provenance.
var BuildFlags = []string{"-trimpath"}

// Compile cross-compiles the package for one platform: static (CGO_ENABLED=0), with paths trimmed, stamped with
// the version. It returns the binary's path. Compiles of the same packages are serialized across processes so
// that concurrent callers (two test packages) share Go's build cache instead of compiling everything twice.
func Compile(ctx context.Context, o CompileOptions, p Platform) (string, error) {
	if strings.ContainsAny(o.Version+o.Commit, " \t\n'\"") {
		return "", fmt.Errorf("version %q or commit %q contains blanks or quotes", o.Version, o.Commit)
	}
	goCmd := o.Go
	if goCmd == "" {
		goCmd = "go"
	}
	out := filepath.Join(o.OutDir, p.OS+"-"+p.Architecture, filepath.Base(o.Package))
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	unlock, err := lockBuilds()
	if err != nil {
		return "", err
	}
	defer unlock()
	args := append(append([]string{"build"}, BuildFlags...), "-ldflags", o.LDFlags(), "-o", out, o.Package)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = o.ModuleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("compiling %s for %s: %w\n%s", o.Package, p, err, b)
	}
	return out, nil
}
