package signaturetest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Cosign is the real cosign CLI (FERRY_COSIGN, built by hack/cosign.sh) with a fresh key pair (cosign.key,
// cosign.pub in Dir) and a home of its own that reaches no network: any attempt to reach the public Sigstore
// fails fast instead of hanging, so signing must be keyed and without a transparency log.
type Cosign struct {
	Bin, Dir string
	Env      []string
}

// NewCosign skips the test without FERRY_COSIGN, or fails it when FERRY_REQUIRE_TOOLS=1.
func NewCosign(t testing.TB) *Cosign {
	t.Helper()
	bin := os.Getenv("FERRY_COSIGN")
	if bin == "" {
		if os.Getenv("FERRY_REQUIRE_TOOLS") == "1" {
			t.Fatal("FERRY_COSIGN is not set (export FERRY_COSIGN=$(hack/cosign.sh)); FERRY_REQUIRE_TOOLS=1 requires it")
		}
		t.Skip("cosign: set FERRY_COSIGN=$(hack/cosign.sh), as `make test` does")
	}
	dir := t.TempDir()
	c := &Cosign{Bin: bin, Dir: dir, Env: []string{
		"HOME=" + dir, "DOCKER_CONFIG=" + filepath.Join(dir, "docker"), "TUF_ROOT=" + filepath.Join(dir, "tuf"),
		"COSIGN_PASSWORD=ferry-test", "COSIGN_EXPERIMENTAL=1", "PATH=" + os.Getenv("PATH"),
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=127.0.0.1,localhost",
	}}
	c.Run(t, "generate-key-pair")
	return c
}

// Run runs cosign and fails the test when it fails.
func (c *Cosign) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.Try(args...)
	if err != nil {
		t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Try runs cosign and returns its output and error, for commands expected to fail.
func (c *Cosign) Try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Dir, cmd.Env = c.Dir, c.Env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// PublicKey is the PEM public key of the pair.
func (c *Cosign) PublicKey(t testing.TB) []byte {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(c.Dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return pem
}
