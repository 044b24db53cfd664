package signaturetest

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
)

// StartDistribution runs the CNCF distribution registry (binary from FERRY_DOCKER_REGISTRY, see
// hack/registry.sh) on a free loopback port with a throw-away storage folder. Debian's build has no referrers
// API, so artifacts land in the sha256-<hex> tag fallback. Skips when the binary is not configured, unless
// FERRY_REQUIRE_TOOLS=1.
func StartDistribution(t testing.TB) *Registry {
	t.Helper()
	bin := os.Getenv("FERRY_DOCKER_REGISTRY")
	if bin == "" {
		if os.Getenv("FERRY_REQUIRE_TOOLS") == "1" {
			t.Fatal("FERRY_DOCKER_REGISTRY is not set (export FERRY_DOCKER_REGISTRY=$(hack/registry.sh)); FERRY_REQUIRE_TOOLS=1 requires it")
		}
		t.Skip("distribution interop: set FERRY_DOCKER_REGISTRY=$(hack/registry.sh), as `make test` does")
	}
	addr := freeLoopbackAddr(t)
	dir := t.TempDir()
	config := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"+
		"storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "storage"), addr)
	configFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "registry.log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", configFile)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		out.Close()
	})
	waitForRegistry(t, addr, done, logFile)
	return &Registry{Host: addr}
}

func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitForRegistry polls /v2/ until the registry answers, it exits, or 30 seconds pass.
func waitForRegistry(t testing.TB, addr string, exited <-chan error, logFile string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logFile)
			t.Fatalf("registry exited before answering: %v\n%s", err, log)
		case <-ctx.Done():
			t.Fatalf("registry did not answer on %s within 30s", addr)
		case <-tick.C:
		}
	}
}
