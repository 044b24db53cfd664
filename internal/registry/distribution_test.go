package registry

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// startDistribution runs the CNCF distribution registry (Debian's docker-registry) on a free loopback port with
// filesystem storage in a temporary folder, and returns its host once /v2/ answers.
func startDistribution(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("FERRY_DOCKER_REGISTRY")
	if bin == "" {
		if os.Getenv("FERRY_REQUIRE_TOOLS") == "1" {
			t.Fatal("FERRY_DOCKER_REGISTRY is not set; `make test` sets it from hack/registry.sh")
		}
		t.Skip("FERRY_DOCKER_REGISTRY is not set; run `make test` (it runs hack/registry.sh) to include distribution interop")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("docker-registry exited before answering: %v\n%s", err, log)
		case <-ctx.Done():
			t.Fatalf("docker-registry did not answer /v2/ on %s within 30s", addr)
		case <-tick.C:
		}
	}
}

func TestInteropWithDistribution(t *testing.T) {
	dist := startDistribution(t)
	ctx := context.Background()
	c := newTestClient(t, Options{})

	// ggcr (referrers API) → distribution 2.8 (no referrers API): referrers land in the fallback tag.
	src := newSignedImage(t, startRegistry(t, true))
	res, err := c.Copy(ctx, src.repo.Digest(src.digest.String()).String(), dist+"/mirror/app")
	if err != nil {
		t.Fatal(err)
	}
	mirror := mustRepo(t, dist+"/mirror/app")
	if refs := referrerDigests(t, mirror.Digest(src.digest.String())); refs[src.bundle.Digest] != bundleType || refs[src.sbom.Digest] != spdxType {
		t.Errorf("distribution referrers of the image = %v", refs)
	}
	if refs := referrerDigests(t, mirror.Digest(src.sbom.Digest.String())); refs[src.sbomSig.Digest] != bundleType {
		t.Errorf("distribution referrers of the SBOM = %v", refs)
	}
	if res.TagsCopied != 2 || res.ReferrersCopied != 3 {
		t.Errorf("result %+v", res)
	}

	// Same registry, another repository: every blob is mounted, no byte moves.
	res, err = c.Copy(ctx, mirror.Digest(src.digest.String()).String(), dist+"/prod/app")
	if err != nil {
		t.Fatal(err)
	}
	if res.BytesMoved != 0 || res.BlobsMounted == 0 || res.BlobsCopied != 0 {
		t.Errorf("cross-repository copy inside distribution: %+v", res)
	}
	prod := mustRepo(t, dist+"/prod/app")
	if refs := referrerDigests(t, prod.Digest(src.digest.String())); len(refs) != 2 {
		t.Errorf("referrers after the mount copy = %v", refs)
	}

	// Re-copy of a digest already present: nothing moves, few requests.
	res, err = c.Copy(ctx, mirror.Digest(src.digest.String()).String(), dist+"/prod/app")
	if err != nil {
		t.Fatal(err)
	}
	if res.BytesMoved != 0 || res.ManifestsCopied != 0 {
		t.Errorf("re-copy moved something: %+v", res)
	}

	// distribution (no API, fallback tags) → ggcr with the API.
	back := mustRepo(t, startRegistry(t, true)+"/back/app")
	if _, err := c.Copy(ctx, prod.Digest(src.digest.String()).String(), back.String()); err != nil {
		t.Fatal(err)
	}
	if refs := referrerDigests(t, back.Digest(src.digest.String())); len(refs) != 2 {
		t.Errorf("referrers copied back = %v", refs)
	}
	if _, err := remote.Head(back.Tag(src.sigOfSig)); err != nil {
		t.Errorf("signature of the signature not copied back: %v", err)
	}
}
