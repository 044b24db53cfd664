package controllers

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

// A cluster is watched while a stage uses it: rotating a stage's credentials moves it to a new cluster state and
// lets the old one go once no stage is left on it, and forgetting every stage lets every cluster go.
func TestClustersNoStageUsesAreLetGo(t *testing.T) {
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	g := NewGitopsSyncer()
	t.Cleanup(g.Close)
	admin, rotated := e.Config, e.User(t, "rotated-credentials")
	dev := SyncTarget{Config: admin, Namespace: ns, Owner: ns + ".shop.dev"}
	prod := SyncTarget{Config: admin, Namespace: ns, Owner: ns + ".shop.prod"}
	if err := g.Expect([]SyncTarget{dev, prod}); err != nil {
		t.Fatal(err)
	}
	clusters := func(step string, want int) {
		t.Helper()
		if n := g.Clusters(); n != want {
			t.Fatalf("%s: %d clusters kept, want %d", step, n, want)
		}
	}
	clusters("two stages on one cluster", 1)
	dev.Config = rotated
	if _, err := g.target(dev); err != nil {
		t.Fatal(err)
	}
	clusters("dev's credentials rotated, prod still on the old ones", 2)
	prod.Config = rotated
	if _, err := g.target(prod); err != nil {
		t.Fatal(err)
	}
	clusters("both rotated", 1)
	g.Forget(dev.Owner)
	clusters("dev forgotten, prod left", 1)
	g.Forget(prod.Owner)
	clusters("every stage forgotten", 0)
}

// Deleting a Promotion lets go of the clusters its stages synced to. Every test's manager reconciles every
// Promotion on the shared API server, so Promotions other tests left behind may keep the same cluster in use: the
// test checks that this Promotion's stages no longer hold any cluster and that no cluster is kept unused.
func TestDeletedPromotionLetsItsClustersGo(t *testing.T) {
	f := newStagesFixture(t)
	ctx := context.Background()
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	if err := f.e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev", "staging")
	g := f.syncer.Syncer.(*GitopsSyncer)
	owners := []string{p.Namespace + "." + p.Name + ".dev", p.Namespace + "." + p.Name + ".staging"}
	if held, unused := g.holders(owners); held != len(owners) || unused != 0 {
		t.Fatalf("while the stages run: %d of %d stages hold a cluster, %d clusters unused", held, len(owners), unused)
	}
	if err := f.e.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	var held, unused int
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		held, unused = g.holders(owners)
		return held == 0 && unused == 0, nil
	})
	if err != nil {
		t.Fatalf("after the Promotion was deleted: %d of its stages still hold a cluster, %d clusters kept unused", held, unused)
	}
}

// holders counts the owners that hold a cluster, and the clusters no owner uses.
func (g *GitopsSyncer) holders(owners []string) (held, unused int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	used := map[string]bool{}
	for _, key := range g.users {
		used[key] = true
	}
	for _, owner := range owners {
		if _, ok := g.users[owner]; ok {
			held++
		}
	}
	for key := range g.clusters {
		if !used[key] {
			unused++
		}
	}
	return held, unused
}
