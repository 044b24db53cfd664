package sync

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/internal/testenv"
)

// TestClusterSharesOneCacheAcrossNamespaces: targets of one Cluster apply into their own namespaces, a
// namespace added after the cache has synced is watched too, and a repeated apply still sees its own objects.
func TestClusterSharesOneCacheAcrossNamespaces(t *testing.T) {
	e := testenv.Need(t, env)
	ctx := testContext(t)
	c := newCluster(t, e.Config)
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

// TestClusterWatchesNamespacesAddedTogether: namespaces announced up front are watched by one cache, so their
// targets apply without the cache listing again; a malformed name adds none of them. Ferry is confined to the two
// namespaces here, so the cache watches namespace by namespace — the mode in which listing again would happen.
func TestClusterWatchesNamespacesAddedTogether(t *testing.T) {
	e := testenv.Need(t, env)
	ctx := testContext(t)
	dev, prod := e.Namespace(t), e.Namespace(t)
	c := newCluster(t, confinedUser(t, dev, prod))
	if err := c.Watch(dev, "Not_A_Namespace", prod); err == nil || len(c.namespaces) != 0 {
		t.Fatalf("Watch with a malformed name: %v, watching %v", err, c.namespaces)
	}
	if err := c.Watch(dev, prod, dev); err != nil {
		t.Fatal(err)
	}
	var listed *time.Time
	image := "registry.example.com/shop@sha256:" + strings.Repeat("c", 64)
	for _, ns := range []string{prod, dev} {
		tgt, err := c.Target(ns)
		if err != nil {
			t.Fatal(err)
		}
		req := ApplyRequest{Owner: "shop." + ns, Revision: "rev1", Objects: decode(t, deployment("web", image))}
		if res, err := tgt.Apply(ctx, req); err != nil || actions(res)["Deployment/web"] != ActionCreated {
			t.Fatalf("namespace %s: %+v, %v", ns, res, err)
		}
		info := c.cache.GetClusterInfo()
		if listed != nil && !info.LastCacheSyncTime.Equal(*listed) {
			t.Errorf("the cache listed again at %s (first at %s) for namespace %s, which was announced with the other", info.LastCacheSyncTime, listed, ns)
		}
		listed = info.LastCacheSyncTime
	}
	if len(c.namespaces) != 2 || c.allNamespaces {
		t.Errorf("watching %v (whole cluster: %v), want the two namespaces", c.namespaces, c.allNamespaces)
	}
}

// TestClusterConfinedToItsNamespaces: with a role bound in one namespace only, the cache watches that namespace
// (not the whole cluster, which Ferry may not list) and applies work there.
func TestClusterConfinedToItsNamespaces(t *testing.T) {
	e := testenv.Need(t, env)
	ctx := testContext(t)
	ns := e.Namespace(t)
	c := newCluster(t, confinedUser(t, ns))
	tgt, err := c.Target(ns)
	if err != nil {
		t.Fatal(err)
	}
	image := "registry.example.com/shop@sha256:" + strings.Repeat("d", 64)
	req := ApplyRequest{Owner: "shop.dev", Revision: "rev1", Objects: decode(t, deployment("web", image))}
	if res, err := tgt.Apply(ctx, req); err != nil || actions(res)["Deployment/web"] != ActionCreated {
		t.Fatalf("apply with a namespace role: %+v, %v", res, err)
	}
	if c.allNamespaces {
		t.Error("the cache watches the whole cluster with a role bound in one namespace")
	}
	if res, err := tgt.Apply(ctx, req); err != nil || res.Changed {
		t.Fatalf("second apply changed something: %+v, %v", res, err)
	}
}

// TestClusterWatchesTheWholeClusterWhenAllowed: with a cluster-wide role the cache watches every namespace once.
func TestClusterWatchesTheWholeClusterWhenAllowed(t *testing.T) {
	e := testenv.Need(t, env)
	c := newCluster(t, e.Config)
	if err := c.Watch(e.Namespace(t)); err != nil {
		t.Fatal(err)
	}
	if !c.allNamespaces {
		t.Error("an administrator's cache watches namespaces one by one")
	}
}

// newCluster returns a Cluster for cfg, closed when the test ends.
func newCluster(t *testing.T, cfg *rest.Config) *Cluster {
	t.Helper()
	c, err := NewCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestClusterTellsOfChangesToOwnedObjects: a change the cache sees to an applied object (a rollout writing its
// status) reaches OnOwnerChange with the object's owner; changes to objects Ferry did not apply do not.
func TestClusterTellsOfChangesToOwnedObjects(t *testing.T) {
	e := testenv.Need(t, env)
	ctx := testContext(t)
	c := newCluster(t, e.Config)
	changed := make(chan string, 100)
	c.OnOwnerChange(func(owner string) {
		select {
		case changed <- owner:
		default:
		}
	})
	ns := e.Namespace(t)
	tgt, err := c.Target(ns)
	if err != nil {
		t.Fatal(err)
	}
	image := "registry.example.com/shop@sha256:" + strings.Repeat("e", 64)
	if _, err := tgt.Apply(ctx, ApplyRequest{Owner: "shop.dev", Revision: "rev1", Objects: decode(t, deployment("web", image))}); err != nil {
		t.Fatal(err)
	}
	unowned := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "not-ferrys", Namespace: ns}}
	if err := e.Client.Create(ctx, unowned); err != nil {
		t.Fatal(err)
	}
	drain(changed)

	live, err := getLive(t, deploymentGVK, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(live.Object, int64(1), "status", "observedGeneration"); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Status().Update(ctx, live); err != nil {
		t.Fatal(err)
	}
	unowned.Data = map[string]string{"k": "v"}
	if err := e.Client.Update(ctx, unowned); err != nil {
		t.Fatal(err)
	}
	select {
	case owner := <-changed:
		if owner != "shop.dev" {
			t.Fatalf("change reported for owner %q, want shop.dev", owner)
		}
	case <-ctx.Done():
		t.Fatal("the rollout's status update was never reported")
	}
}

func drain(ch chan string) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// confinedUser returns the client configuration of a new user allowed to manage ConfigMaps and Deployments in
// namespaces only, as RoleBindings per stage namespace would allow Ferry.
func confinedUser(t *testing.T, namespaces ...string) *rest.Config {
	t.Helper()
	e := testenv.Need(t, env)
	user := "ferry-confined-" + namespaces[0]
	for _, ns := range namespaces {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "ferry-sync", Namespace: ns}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"", "apps"}, Resources: []string{"configmaps", "deployments"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"},
		}}}
		binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "ferry-sync", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}
		for _, obj := range []client.Object{role, binding} {
			if err := e.Client.Create(context.Background(), obj); err != nil {
				t.Fatal(err)
			}
		}
	}
	return e.User(t, user)
}
