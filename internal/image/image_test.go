package image

import (
	"archive/tar"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// The stamp of the test build, checked in the binary's --version output.
const (
	testVersion = "v9.9.9-imagetest"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
)

var testCreated = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// buildForTest builds the real image (both release platforms) into a temporary folder once per test binary.
func buildForTest(t *testing.T) (*Result, Options) {
	t.Helper()
	if _, err := os.Stat(DebianCADir); err != nil {
		if os.Getenv("FERRY_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%v: install Debian's ca-certificates package (FERRY_REQUIRE_TOOLS=1 requires it)", err)
		}
		t.Skipf("%v: install Debian's ca-certificates package", err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	meta := Metadata{Version: testVersion, Commit: testCommit, Source: "https://github.com/ferrycd/ferry", Created: testCreated}
	o := Options{
		Compile: CompileOptions{ModuleDir: root, Package: "./cmd/ferry-controller", Version: testVersion,
			Commit: testCommit, OutDir: filepath.Join(dir, "bin")},
		Metadata: meta, Platforms: DefaultPlatforms, CADir: DebianCADir, CAPackageVersion: "test",
		LayoutDir: filepath.Join(dir, "image"), SBOMFile: filepath.Join(dir, SBOMName),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	res, err := Build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return res, o
}

// TestBuiltImage builds the image once and checks, from the OCI layout on disk, everything a release promises.
func TestBuiltImage(t *testing.T) {
	res, o := buildForTest(t)
	p, err := layout.FromPath(o.LayoutDir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(top); err != nil {
		t.Fatalf("the layout does not validate: %v", err)
	}
	idx, err := ReadLayout(o.LayoutDir)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := idx.Digest(); h != res.Digest {
		t.Fatalf("layout holds %s, Build returned %s", h, res.Digest)
	}
	images := platformImages(t, idx)

	t.Run("index", func(t *testing.T) {
		for _, want := range DefaultPlatforms {
			if images[want] == nil {
				t.Errorf("no %s manifest in the index (have %v)", want, images)
			}
		}
	})
	host := Platform{OS: "linux", Architecture: runtime.GOARCH}
	img := images[host]
	if img == nil {
		t.Fatalf("no image for this machine's platform %s", host)
	}
	t.Run("config", func(t *testing.T) { checkConfig(t, img, host) })
	files := imageFiles(t, img) // read once: the layers are large, and slow to inflate under the race detector
	t.Run("files", func(t *testing.T) { checkFiles(t, files) })
	t.Run("binary runs", func(t *testing.T) { checkBinaryRuns(t, img, files) })
	t.Run("sbom", func(t *testing.T) { checkSBOM(t, res, o) })
	t.Run("reproducible", func(t *testing.T) { checkReproducible(t, res, o) })
}

func platformImages(t *testing.T, idx v1.ImageIndex) map[Platform]v1.Image {
	t.Helper()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	images := map[Platform]v1.Image{}
	for _, d := range m.Manifests {
		if d.Platform == nil {
			t.Fatalf("manifest %s has no platform", d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		images[Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture}] = img
	}
	return images
}

func checkConfig(t *testing.T, img v1.Image, p Platform) {
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user = %q, want the non-root 65532:65532", cfg.Config.User)
	}
	if cfg.OS != p.OS || cfg.Architecture != p.Architecture {
		t.Errorf("config platform = %s/%s, want %s", cfg.OS, cfg.Architecture, p)
	}
	if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != BinaryPath {
		t.Errorf("entrypoint = %v, want [%s]", cfg.Config.Entrypoint, BinaryPath)
	}
	if !cfg.Created.Time.Equal(testCreated) || cfg.Config.Labels["org.opencontainers.image.revision"] != testCommit {
		t.Errorf("created %s, labels %v: want the fixed time and the commit", cfg.Created, cfg.Config.Labels)
	}
}

// checkFiles reads the image's file system: the user database, a writable /tmp, the CA bundle.
func checkFiles(t *testing.T, files map[string]file) {
	passwd, ok := files["etc/passwd"]
	if !ok || !strings.Contains(string(passwd.data), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd = %q, want an entry for uid 65532", passwd.data)
	}
	if tmp, ok := files["tmp/"]; !ok || tmp.mode != 0o1777 {
		t.Errorf("/tmp: present %v, mode %o; want 1777 (--cache-dir defaults to a folder in it)", ok, tmp.mode)
	}
	if ca := files[strings.TrimPrefix(CABundlePath, "/")]; strings.Count(string(ca.data), "BEGIN CERTIFICATE") < 50 {
		t.Errorf("%s holds %d certificates", CABundlePath, strings.Count(string(ca.data), "BEGIN CERTIFICATE"))
	}
	for name, f := range files {
		if !f.mtime.Equal(testCreated) {
			t.Errorf("%s has time %s, want the fixed %s", name, f.mtime, testCreated)
		}
	}
}

// checkBinaryRuns takes the binary out of the layer and runs its --version here.
func checkBinaryRuns(t *testing.T, img v1.Image, files map[string]file) {
	bin := filepath.Join(t.TempDir(), "ferry-controller")
	if f, ok := files[strings.TrimPrefix(BinaryPath, "/")]; !ok || f.mode != 0o755 {
		t.Fatalf("%s: present %v, mode %o", BinaryPath, ok, f.mode)
	}
	data, err := ExtractFile(img, BinaryPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	const image = "registry.example/ferry-controller@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cmd := exec.Command(bin, "--version")
	cmd.Env = []string{"FERRY_IMAGE=" + image}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", BinaryPath, err, out)
	}
	for _, want := range []string{"ferry-controller " + testVersion + " (commit " + testCommit, "image: " + image} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--version printed %q, want %q", out, want)
		}
	}
}

func checkSBOM(t *testing.T, res *Result, o Options) {
	raw, err := os.ReadFile(o.SBOMFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name, VersionInfo string
		} `json:"packages"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SPDXVersion != "SPDX-2.3" {
		t.Errorf("spdxVersion = %q", doc.SPDXVersion)
	}
	listed := map[string]bool{}
	for _, p := range doc.Packages {
		listed[p.Name+"@"+p.VersionInfo] = true
	}
	for p, bin := range res.Binaries {
		bi, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		mods := Modules(bi)
		if len(mods) < 50 || mods[0].Path != "github.com/ferrycd/ferry" {
			t.Fatalf("%s: build info lists %d modules, main %q", p, len(mods), mods[0].Path)
		}
		for _, m := range mods {
			if !listed[m.Path+"@"+m.Version] {
				t.Errorf("%s: module %s %s of the binary is not in the SBOM", p, m.Path, m.Version)
			}
		}
		if !listed["stdlib@"+bi.GoVersion] {
			t.Errorf("%s: the standard library %s is not in the SBOM", p, bi.GoVersion)
		}
	}
}

// checkReproducible assembles the image again from the same binaries: every byte, so the digest, is the same.
func checkReproducible(t *testing.T, res *Result, o Options) {
	ca, err := ReadCABundle(o.CADir)
	if err != nil {
		t.Fatal(err)
	}
	base, err := BaseLayer(ca, o.Metadata.Created)
	if err != nil {
		t.Fatal(err)
	}
	images := map[Platform]v1.Image{}
	for _, p := range o.Platforms {
		if images[p], err = PlatformImage(p, base, res.Binaries[p], o.Metadata); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := Index(images, o.Platforms, o.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := idx.Digest(); h != res.Digest {
		t.Fatalf("the same inputs made %s, then %s", res.Digest, h)
	}
}

type file struct {
	data  []byte
	mode  int64
	mtime time.Time
}

// imageFiles reads every layer's tar, later layers over earlier ones.
func imageFiles(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]file{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = file{data: data, mode: h.Mode, mtime: h.ModTime}
		}
		rc.Close()
	}
	return files
}
