package gitops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferrycd/ferry/internal/gitserver"
)

// wantTooLarge fails unless err is an ErrTooLarge whose text names each of want.
func wantTooLarge(t *testing.T, err error, want ...string) {
	t.Helper()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error = %v, want ErrTooLarge", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
}

// randomText is n characters that do not compress below half their size.
func randomText(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// packs lists the packs in a repository cache.
func packs(t *testing.T, c *cachedRepo) []string {
	t.Helper()
	p, err := filepath.Glob(filepath.Join(c.dir, "objects", "pack", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// countFetches counts the fetch requests (upload-pack POSTs) that reach the server.
func countFetches(s *gitserver.Server) *atomic.Int64 {
	var n atomic.Int64
	s.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			n.Add(1)
		}
		return false
	})
	return &n
}

func checkoutTip(e *Engine, url, dir string) error {
	_, err := e.Checkout(context.Background(), mainRemote(url), "", "", dir)
	return err
}

// TestFetchOverTheRepositoryLimitIsRefused: the download alone is larger than the cache may take. Nothing stays
// behind, and an Engine with room clones into the same cache folder as if it were new.
func TestFetchOverTheRepositoryLimitIsRefused(t *testing.T) {
	s, url := seed(t)
	s.Commit("fleet", "main", map[string]string{"big.txt": randomText(t, 8<<10)}, "big")
	cacheDir := t.TempDir()
	e, err := New(Options{CacheDir: cacheDir, MaxRepositoryBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "o")
	wantTooLarge(t, checkoutTip(e, url, out), url, "more than 4096 bytes", "MaxRepositoryBytes")
	c, _ := e.repo(mainRemote(url))
	if p := packs(t, c); len(p) != 0 {
		t.Errorf("packs left in the cache: %v", p)
	}
	if spools, _ := filepath.Glob(filepath.Join(cacheDir, "fetch-*")); len(spools) != 0 {
		t.Errorf("download spools left behind: %v", spools)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("checkout dir: %v, want it absent", err)
	}
	roomy, err := New(Options{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkoutTip(roomy, url, out); err != nil {
		t.Fatalf("the next fetch, with room: %v", err)
	}
}

// TestPackIndexOverTheRepositoryLimitIsRefused: the pack itself fits, but not with the index go-git writes for
// it; the writes into the cache are refused, and what was written of them is dropped.
func TestPackIndexOverTheRepositoryLimitIsRefused(t *testing.T) {
	_, url := seed(t)
	probe := newEngine(t)
	if err := checkoutTip(probe, url, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	pc, _ := probe.repo(mainRemote(url))
	p := packs(t, pc)
	if len(p) != 1 {
		t.Fatalf("probe cache holds packs %v, want one", p)
	}
	info, err := os.Stat(p[0])
	if err != nil {
		t.Fatal(err)
	}

	e := newEngine(t)
	c, err := e.repo(mainRemote(url))
	if err != nil {
		t.Fatal(err)
	}
	used, _ := cacheUsage(c.dir)
	e.opts.MaxRepositoryBytes = used + info.Size() + 16 // room for the same pack, not for its index
	wantTooLarge(t, checkoutTip(e, url, t.TempDir()), url, "MaxRepositoryBytes")
	if after, _ := cacheUsage(c.dir); after > used {
		t.Errorf("the cache holds %d bytes after the refused fetch, %d before", after, used)
	}
}

// TestCacheFilledByEarlierFetchesIsClonedAfresh: a cache at its limit with the history of earlier fetches is
// dropped and cloned afresh in the same call when the branch itself fits.
func TestCacheFilledByEarlierFetchesIsClonedAfresh(t *testing.T) {
	s := gitserver.Start(t)
	url := s.NewRepo("fleet", map[string]string{"README.md": "fleet\n", "one.txt": randomText(t, 8<<10)})
	e, err := New(Options{CacheDir: t.TempDir(), Depth: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkoutTip(e, url, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	c, _ := e.repo(mainRemote(url))
	used, _ := cacheUsage(c.dir)
	e.opts.MaxRepositoryBytes = used + 2<<10 // not enough for another 8 KiB of random text beside the first
	want := s.Commit("fleet", "main", map[string]string{"one.txt": "", "two.txt": randomText(t, 8<<10)}, "replace")
	fetches := countFetches(s)
	out := filepath.Join(t.TempDir(), "o")
	if sha, err := e.Checkout(context.Background(), mainRemote(url), "", "", out); err != nil || sha != want {
		t.Fatalf("checkout = %s, %v; want %s", sha, err, want)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2: the incremental one refused, then a fresh clone", n)
	}
	if p := packs(t, c); len(p) != 1 {
		t.Errorf("cache packs %v, want only the fresh clone's", p)
	}
	if _, err := os.Stat(filepath.Join(out, "two.txt")); err != nil {
		t.Error(err)
	}
}

func TestCheckoutOverItsLimitsLeavesDirAsFound(t *testing.T) {
	s, url := seed(t)
	// envs now holds 5 folders and 5 files, one of them of 2 KiB: 10 blocks of 4 KiB.
	s.Commit("fleet", "main", map[string]string{"envs/big/kustomization.yaml": kustomization("v1") + "# " + strings.Repeat("x", 2<<10) + "\n"}, "big")
	for _, tc := range []struct {
		name  string
		opts  Options
		wants []string
	}{
		{"total", Options{MaxCheckoutBytes: 9 * diskBlock}, []string{"the checkout of " + url, "more than 36864 bytes", "MaxCheckoutBytes"}},
		{"per file", Options{MaxFileBytes: 1 << 10}, []string{"envs/big/kustomization.yaml in " + url, "more than the 1024", "MaxFileBytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.CacheDir = t.TempDir()
			e, err := New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, dir := range []string{filepath.Join(t.TempDir(), "absent"), t.TempDir()} {
				_, err := e.Checkout(context.Background(), mainRemote(url), "", "envs", dir)
				wantTooLarge(t, err, tc.wants...)
				if entries, err := os.ReadDir(dir); len(entries) != 0 || (err != nil && !errors.Is(err, os.ErrNotExist)) {
					t.Errorf("checkout dir after the refusal: %d entries, %v", len(entries), err)
				}
			}
		})
	}
	e, err := New(Options{CacheDir: t.TempDir(), MaxCheckoutBytes: 10 * diskBlock, MaxFileBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Checkout(context.Background(), mainRemote(url), "", "envs", t.TempDir()); err != nil {
		t.Fatalf("envs within 10 blocks and 4 KiB per file: %v", err)
	}
}

// TestFilesOverTheLimitAreNotRead: a file larger than MaxFileBytes is neither read for ReadFile nor read and
// rewritten by a pin; smaller files of the same commit still are.
func TestFilesOverTheLimitAreNotRead(t *testing.T) {
	s, url := seed(t)
	tip := s.Commit("fleet", "main", map[string]string{
		"apps/big/deployment.yaml": "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n" +
			"        image: ghcr.io/acme/app:v1\n# " + strings.Repeat("x", 2<<10) + "\n",
	}, "a large manifest")
	e, err := New(Options{CacheDir: t.TempDir(), MaxFileBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = e.ReadFile(context.Background(), mainRemote(url), "apps/big/deployment.yaml")
	wantTooLarge(t, err, "apps/big/deployment.yaml", url, "more than the 1024 Ferry reads", "MaxFileBytes")
	if got, _, err := e.ReadFile(context.Background(), mainRemote(url), "README.md"); err != nil || string(got) != "fleet\n" {
		t.Fatalf("README.md = %q, %v", got, err)
	}
	req := request(url, "big", digestA)
	req.Format, req.Path = FormatManifests, "apps/big"
	_, err = e.Pin(context.Background(), req)
	wantTooLarge(t, err, "apps/big/deployment.yaml", "MaxFileBytes")
	if head := s.Head("fleet", "main"); head != tip {
		t.Errorf("the branch moved to %s although the pin was refused", head)
	}
	if _, err := e.Pin(context.Background(), request(url, "prod", digestA)); err != nil {
		t.Fatalf("a pin of a small file of the same commit: %v", err)
	}
}

// TestKustomizationOverTheLimitIsNamed: a kustomization.yaml larger than MaxFileBytes is refused naming the
// limit, not reported missing.
func TestKustomizationOverTheLimitIsNamed(t *testing.T) {
	s, url := seed(t)
	s.Commit("fleet", "main", map[string]string{"envs/huge/kustomization.yaml": kustomization("v1") + "# " + strings.Repeat("x", 2<<10) + "\n"}, "huge")
	e, err := New(Options{CacheDir: t.TempDir(), MaxFileBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Pin(context.Background(), request(url, "huge", digestA))
	wantTooLarge(t, err, "MaxFileBytes")
}
