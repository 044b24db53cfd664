package gitops

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/gitserver"
)

// benchRepo is a 10,000-file repository: 100 teams × 100 workload manifests.
func benchRepo() map[string]string {
	files := make(map[string]string, 10_000)
	for team := 0; team < 100; team++ {
		for app := 0; app < 100; app++ {
			files[fmt.Sprintf("apps/team-%02d/app-%02d.yaml", team, app)] = fmt.Sprintf(
				"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-%02d\nspec:\n  template:\n    spec:\n"+
					"      containers:\n      - name: app\n        image: ghcr.io/team-%02d/app-%02d:v1\n", app, team, app)
		}
	}
	return files
}

const benchPath = "apps/team-42/app-42.yaml"

// opsPerIteration makes even `make bench` (-benchtime 1x) average the ratio over ten operations of each side.
const opsPerIteration = 10

// BenchmarkPinVersusGitCLI measures, alternating one operation of each so that noise on a shared machine hits
// both alike: Ferry pinning, committing and pushing one image with a warm cache, against the git CLI editing the
// same file, committing and pushing from a warm clone. Both push to the same loopback git http-backend server.
// One benchmark iteration is opsPerIteration operations of each. It reports ferry-ms/op, git-ms/op and their ratio (target ≤ 1.2), plus the one-off cold clone time.
func BenchmarkPinVersusGitCLI(b *testing.B) {
	s := gitserver.Start(b)
	files := benchRepo()
	ferryURL := s.NewRepo("bench-ferry", files)
	gitURL := s.NewRepo("bench-git", files)

	e, err := New(Options{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	digests := []string{digestA, digestB}
	req := Request{Remote: Remote{URL: ferryURL, Branch: "main"}, Format: FormatManifests, Path: benchPath,
		Image: "ghcr.io/team-42/app-42", Promotion: "bench/app", Stage: "prod",
		Author: Author{Name: "Ferry", Email: "ferry@example.com"}}
	start := time.Now()
	req.Digest = "sha256:" + strings.Repeat("0", 64)
	if _, err := e.Pin(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	cold := time.Since(start)

	work := filepath.Join(b.TempDir(), "clone")
	s.Git("", "clone", "--quiet", gitURL, work)
	variants := make([][]byte, 2)
	for i, d := range digests {
		variants[i] = []byte(strings.Replace(files[benchPath], "ghcr.io/team-42/app-42:v1", "ghcr.io/team-42/app-42@"+d, 1))
	}
	gitOp := func(i int) {
		if err := os.WriteFile(filepath.Join(work, benchPath), variants[i%2], 0o644); err != nil {
			b.Fatal(err)
		}
		for _, args := range [][]string{{"commit", "--quiet", "-am", "pin " + digests[i%2]}, {"push", "--quiet", "origin", "main"}} {
			cmd := exec.Command(s.GitBin(), args...)
			cmd.Dir, cmd.Env = work, s.Env()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
	}
	gitOp(1) // warm the clone's index and the server side the same way

	var ferryTime, gitTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N*opsPerIteration; i++ {
		req.Digest = digests[i%2]
		t0 := time.Now()
		res, err := e.Pin(context.Background(), req)
		if err != nil || !res.Changed {
			b.Fatalf("pin: %+v %v", res, err)
		}
		t1 := time.Now()
		gitOp(i)
		ferryTime += t1.Sub(t0)
		gitTime += time.Since(t1)
	}
	b.StopTimer()
	n := float64(b.N * opsPerIteration)
	b.ReportMetric(float64(ferryTime.Microseconds())/1000/n, "ferry-ms/op")
	b.ReportMetric(float64(gitTime.Microseconds())/1000/n, "git-ms/op")
	b.ReportMetric(float64(ferryTime)/float64(gitTime), "ratio")
	b.ReportMetric(float64(cold.Milliseconds()), "cold-clone-ms")
}
