package gitops

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// Each set of credentials gets its own cache of a repository, and a cache nobody asked for in repoIdleTTL is
// removed from memory and disk at the next use of the engine.
func TestCachesAreKeyedByCredentialsAndEvictedWhenIdle(t *testing.T) {
	_, url := seed(t)
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	e, err := New(Options{CacheDir: t.TempDir(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	teamA, teamB := mainRemote(url), mainRemote(url)
	teamA.Auth = Auth{Username: "team-a", Password: "token-a"}
	teamB.Auth = Auth{Username: "team-b", Password: "token-b"}
	for _, r := range []Remote{teamA, teamB} {
		if _, _, err := e.ReadFile(ctx, r, "README.md"); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.Repositories(); n != 2 {
		t.Fatalf("%d caches for one URL with two credentials, want 2", n)
	}
	dirA := e.repos[cacheKey(teamA)].dir

	advance(40 * time.Minute)
	if _, _, err := e.ReadFile(ctx, teamB, "README.md"); err != nil { // team B keeps its cache in use
		t.Fatal(err)
	}
	advance(40 * time.Minute)
	if _, _, err := e.ReadFile(ctx, teamB, "README.md"); err != nil {
		t.Fatal(err)
	}
	if n := e.Repositories(); n != 1 {
		t.Fatalf("%d caches after team A's went unused for 80 minutes, want 1", n)
	}
	if _, ok := e.repos[cacheKey(teamB)]; !ok {
		t.Fatal("team B's cache, used 0 minutes ago, was evicted")
	}
	if _, err := os.Stat(dirA); !os.IsNotExist(err) {
		t.Errorf("team A's cache folder is still on disk: %v", err)
	}
	if got, _, err := e.ReadFile(ctx, teamA, "README.md"); err != nil || string(got) != "fleet\n" {
		t.Fatalf("team A after the eviction: %q, %v", got, err)
	}
}
