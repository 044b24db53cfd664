package controllers

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Application statuses as Argo CD writes them (the field names and status words of its
// pkg/apis/application/v1alpha1 types), for the judgement alone; the tests in argocd_test.go run a real Argo CD.
const (
	argoOld   = "1111111111111111111111111111111111111111"
	argoNew   = "2222222222222222222222222222222222222222"
	argoNewer = "3333333333333333333333333333333333333333"
)

func argoApp(t *testing.T, doc string) *argoApplication {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatal(err)
	}
	app, err := applicationOf(&unstructured.Unstructured{Object: obj})
	if err != nil {
		t.Fatal(err)
	}
	return app
}

var argoRef = ExternalRef{Kind: "Application", Namespace: "argocd", Name: "shop-dev"}

func TestArgoCDHealthJudgesFerrysCommitOnly(t *testing.T) {
	for _, c := range []struct {
		name, doc                string
		healthy, degraded, drift bool
		says                     string
	}{{
		name: "synced and healthy at an older commit is not Ferry's",
		doc:  `{"status":{"sync":{"status":"Synced","revision":"` + argoOld + `"},"health":{"status":"Healthy"}}}`,
		says: "waiting for Application argocd/shop-dev to sync Ferry's commit 222222222222",
	}, {
		name: "synced and healthy at Ferry's commit", healthy: true,
		doc: `{"status":{"sync":{"status":"Synced","revision":"` + argoNew + `"},"health":{"status":"Healthy"},
			"operationState":{"phase":"Succeeded","operation":{"sync":{"revision":"` + argoNew + `"}},"syncResult":{"revision":"` + argoNew + `"}}}}`,
	}, {
		name: "progressing at Ferry's commit waits",
		doc:  `{"status":{"sync":{"status":"Synced","revision":"` + argoNew + `"},"health":{"status":"Progressing"}}}`,
		says: "Argo CD reports sync Synced at 222222222222, health Progressing",
	}, {
		name: "degraded at Ferry's commit", degraded: true,
		doc: `{"status":{"sync":{"status":"Synced","revision":"` + argoNew + `"},"health":{"status":"Degraded"},
			"resources":[{"kind":"Deployment","namespace":"shop","name":"web","status":"Synced","health":{"status":"Degraded","message":"Deployment \"web\" exceeded its progress deadline"}}]}}`,
		says: `Deployment shop/web is Degraded Deployment "web" exceeded its progress deadline`,
	}, {
		name: "degraded at an older commit waits for Ferry's",
		doc:  `{"status":{"sync":{"status":"Synced","revision":"` + argoOld + `"},"health":{"status":"Degraded"}}}`,
		says: "waiting for Application argocd/shop-dev to sync",
	}, {
		name: "a failed sync of Ferry's commit", degraded: true,
		doc: `{"status":{"sync":{"status":"OutOfSync","revision":"` + argoNew + `"},"health":{"status":"Healthy"},
			"operationState":{"phase":"Failed","message":"one or more objects failed to apply","operation":{"sync":{"revision":"` + argoNew + `"}}}}}`,
		says: "ended Failed: one or more objects failed to apply",
	}, {
		name: "a failed sync of an older commit says nothing of Ferry's",
		doc: `{"status":{"sync":{"status":"Synced","revision":"` + argoOld + `"},"health":{"status":"Healthy"},
			"operationState":{"phase":"Error","message":"boom","operation":{"sync":{"revision":"` + argoOld + `"}}}}}`,
		says: "waiting for",
	}, {
		name: "a sync running at Ferry's commit waits",
		doc: `{"operation":{"sync":{"revision":"` + argoNew + `"},"initiatedBy":{"username":"ferry"}},
			"status":{"sync":{"status":"Synced","revision":"` + argoNew + `"},"health":{"status":"Healthy"},
			"operationState":{"phase":"Running","operation":{"sync":{"revision":"` + argoNew + `"}}}}}`,
		says: "is running",
	}, {
		name: "out of sync at Ferry's commit is drift", drift: true,
		doc: `{"status":{"sync":{"status":"OutOfSync","revision":"` + argoNew + `"},"health":{"status":"Healthy"},
			"resources":[{"kind":"Deployment","namespace":"shop","name":"web","status":"OutOfSync","health":{"status":"Healthy"}}]}}`,
		says: "OutOfSync at Ferry's commit 222222222222: the cluster differs from Git ([Deployment shop/web])",
	}, {
		name: "Ferry's commit synced, then the branch moved on", healthy: true,
		doc: `{"status":{"sync":{"status":"Synced","revision":"` + argoNewer + `"},"health":{"status":"Healthy"},
			"operationState":{"phase":"Succeeded","operation":{"sync":{"revision":"` + argoNew + `"}},"syncResult":{"revision":"` + argoNew + `"}}}}`,
	}, {
		name: "out of sync at a newer commit is Git moving, not drift",
		doc: `{"status":{"sync":{"status":"OutOfSync","revision":"` + argoNewer + `"},"health":{"status":"Healthy"},
			"operationState":{"phase":"Succeeded","operation":{"sync":{"revision":"` + argoNew + `"}},"syncResult":{"revision":"` + argoNew + `"}}}}`,
		says: "Argo CD reports sync OutOfSync at 333333333333",
	}, {
		name: "missing and suspended wait",
		doc:  `{"status":{"sync":{"status":"Synced","revision":"` + argoNew + `"},"health":{"status":"Suspended"}}}`,
		says: "health Suspended",
	}, {
		name: "several sources: Ferry's commit among their revisions", healthy: true,
		doc: `{"spec":{"sources":[{"repoURL":"https://git.example.com/a"},{"repoURL":"https://git.example.com/b"}]},
			"status":{"sync":{"status":"Synced","revisions":["` + argoOld + `","` + argoNew + `"]},"health":{"status":"Healthy"}}}`,
	}} {
		t.Run(c.name, func(t *testing.T) {
			h := argoApp(t, c.doc).assess(argoRef, argoNew)
			if h.Healthy != c.healthy || h.Degraded != c.degraded || (len(h.Drift) > 0) != c.drift {
				t.Errorf("healthy %v degraded %v drift %v, want %v %v %v: %s", h.Healthy, h.Degraded, h.Drift, c.healthy, c.degraded, c.drift, h.Message)
			}
			if !strings.Contains(h.Message, c.says) {
				t.Errorf("message %q does not say %q", h.Message, c.says)
			}
		})
	}
}

func TestArgoCDSyncPatch(t *testing.T) {
	manual := `{"metadata":{"resourceVersion":"42"},"spec":{"source":{"repoURL":"https://git.example.com/deploy","path":"envs/dev","targetRevision":"main"}},
		"status":{"sync":{"status":"Synced","revision":"` + argoOld + `"}}}`
	patch, err := argoApp(t, manual).syncPatch(argoNew, "normal", true)
	want := `{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"normal"},"resourceVersion":"42"},"operation":{"initiatedBy":{"username":"ferry"},"sync":{"prune":true,"revision":"` + argoNew + `"}}}`
	if err != nil || string(patch) != want {
		t.Errorf("manual sync: %s, %v; want %s", patch, err, want)
	}

	automated := `{"spec":{"syncPolicy":{"automated":{"prune":true}}},"status":{"sync":{"status":"Synced","revision":"` + argoOld + `"}}}`
	patch, err = argoApp(t, automated).syncPatch(argoNew, "hard", false)
	if want := `{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"hard"}}}`; err != nil || string(patch) != want {
		t.Errorf("automated sync: %s, %v; want only the refresh %s", patch, err, want)
	}

	// automated.enabled: false is no automated sync (SyncPolicy.IsAutomatedSyncEnabled).
	disabled := `{"spec":{"syncPolicy":{"automated":{"enabled":false}}},"status":{"sync":{"revision":"` + argoOld + `"}}}`
	if patch, _ := argoApp(t, disabled).syncPatch(argoNew, "normal", false); !strings.Contains(string(patch), `"operation"`) {
		t.Errorf("automated sync turned off: %s, want a sync operation", patch)
	}

	// Asking again for what Argo CD already does or did changes nothing (a restart mid-sync).
	for name, doc := range map[string]string{
		"operation pending": `{"operation":{"sync":{"revision":"` + argoNew + `"}},"status":{"sync":{"revision":"` + argoOld + `"}}}`,
		"operation done": `{"status":{"sync":{"revision":"` + argoNew + `"},"operationState":{"phase":"Succeeded",
			"operation":{"sync":{"revision":"` + argoNew + `"}},"syncResult":{"revision":"` + argoNew + `"}}}}`,
		"automated, compared with it": `{"spec":{"syncPolicy":{"automated":{}}},"status":{"sync":{"revision":"` + argoNew + `"}}}`,
	} {
		if patch, err := argoApp(t, doc).syncPatch(argoNew, "normal", false); patch != nil || err != nil {
			t.Errorf("%s: patch %s, %v; want none", name, patch, err)
		}
	}

	// Someone else's operation is not overwritten.
	busy := `{"operation":{"sync":{"revision":"` + argoOld + `"},"initiatedBy":{"username":"alice"}},"status":{"sync":{"revision":"` + argoOld + `"}}}`
	if _, err := argoApp(t, busy).syncPatch(argoNew, "normal", false); err == nil || !strings.Contains(err.Error(), "by alice") {
		t.Errorf("a running operation of someone else: %v, want an error naming it", err)
	}
}

// What the watch keeps of an Application is bounded whatever Argo CD writes into it, and a new comparison
// timestamp alone wakes no stage.
func TestArgoCDWatchKeepsLittle(t *testing.T) {
	var resources []string
	for range 1000 {
		resources = append(resources, `{"kind":"ConfigMap","namespace":"shop","name":"c","status":"Synced","health":{"status":"Healthy"}}`)
	}
	for range 20 {
		resources = append(resources, `{"kind":"Deployment","namespace":"shop","name":"web","status":"OutOfSync"}`)
	}
	doc := `{"metadata":{"name":"shop-dev","namespace":"argocd","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"` + strings.Repeat("x", 100000) + `"}},
		"status":{"reconciledAt":"2026-01-01T00:00:00Z","sync":{"status":"Synced","revision":"` + argoNew + `"},
		"health":{"status":"Degraded","message":"` + strings.Repeat("é", 5000) + `"},"resources":[` + strings.Join(resources, ",") + `]}}`
	var obj map[string]any
	if err := json.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatal(err)
	}
	pruned, err := pruneApplication(&unstructured.Unstructured{Object: obj})
	if err != nil {
		t.Fatal(err)
	}
	u := pruned.(*unstructured.Unstructured)
	raw, _ := json.Marshal(u.Object)
	if len(raw) > 4*argoMessageMax+argoResourcesKept*200 {
		t.Errorf("the watch keeps %d bytes of the Application", len(raw))
	}
	if u.GetName() != "shop-dev" || u.GetNamespace() != "argocd" {
		t.Errorf("kept as %s/%s", u.GetNamespace(), u.GetName())
	}
	later := u.DeepCopy()
	_ = unstructured.SetNestedField(later.Object, "2026-01-01T00:03:00Z", "status", "reconciledAt")
	if statusChanged(u, later) {
		t.Error("a new reconciledAt alone counts as a change")
	}
	_ = unstructured.SetNestedField(later.Object, "Healthy", "status", "health", "status")
	if !statusChanged(u, later) {
		t.Error("a new health status does not count as a change")
	}
}
