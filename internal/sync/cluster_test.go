package sync

import (
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/testenv"
)

// TestClusterSharesOneCacheAcrossNamespaces: targets of one Cluster apply into their own namespaces, a
// namespace added after the cache has synced is watched too, and a repeated apply still sees its own objects.
func TestClusterSharesOneCacheAcrossNamespaces(t *testing.T) {
	e := testenv.Need(t, env)
	ctx := testContext(t)
	c, err := NewCluster(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	image := "registry.example.com/shop@sha256:" + strings.Repeat("b", 64)
	for i, owner := range []string{"shop.dev", "shop.staging"} {
		ns := e.Namespace(t)
		tgt, err := c.Target(ns)
		if err != nil {
			t.Fatal(err)
		}
		req := ApplyRequest{Owner: owner, Revision: "rev1", Objects: decode(t, deployment("web", image))}
		if res, err := tgt.Apply(ctx, req); err != nil || actions(res)["Deployment/web"] != ActionCreated {
			t.Fatalf("namespace %d, first apply: %+v, %v", i, res, err)
		}
		if _, err := getLive(t, deploymentGVK, ns, "web"); err != nil {
			t.Fatalf("namespace %d: %v", i, err)
		}
		if res, err := tgt.Apply(ctx, req); err != nil || res.Changed {
			t.Fatalf("namespace %d, second apply changed something: %+v, %v", i, res, err)
		}
	}
	if n := len(c.namespaces); n != 2 {
		t.Errorf("the cluster watches %d namespaces, want 2", n)
	}
	if _, err := c.Target("Not_A_Namespace"); err == nil {
		t.Error("a malformed namespace was accepted")
	}
}
