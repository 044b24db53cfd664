package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/internal/testenv"
)

// argoCD is a real Argo CD for tests: its application controller and repo-server, built from their Go module by
// hack/argocd.sh, and the redis-server they share (Debian's), all on 127.0.0.1. It serves the Applications of one
// namespace of the test API server, and syncs them into the same API server: its in-cluster destination
// (https://kubernetes.default.svc) is the test API server, reached through a kubeconfig
// (ARGOCD_FAKE_IN_CLUSTER, as Argo CD's own local development runs it).
type argoCD struct {
	ns  string
	e   *testenv.Env
	log *processLog
}

// argoCDTools finds the folder hack/argocd.sh builds ($FERRY_ARGOCD, else the cache folder named after the
// version hack/tools/argocd pins) and redis-server, or skips the test (fails it with FERRY_REQUIRE_TOOLS=1).
func argoCDTools(t testing.TB) (dir, redis string) {
	t.Helper()
	dir = os.Getenv("FERRY_ARGOCD")
	if dir == "" {
		dir = argoCDCacheDir()
	}
	var missing []string
	for _, need := range []string{"argocd-application-controller", "argocd-repo-server", "git-verify-wrapper.sh", "crds/application-crd.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, need)); err != nil {
			missing = append(missing, need)
		}
	}
	redis, err := exec.LookPath("redis-server")
	if err != nil {
		missing = append(missing, "redis-server (Debian: apt-get install redis-server)")
	}
	if len(missing) > 0 {
		missingTool(t, fmt.Sprintf("no Argo CD to test against: %v missing in %q (run hack/argocd.sh, or `make test`)", missing, dir))
	}
	return dir, redis
}

// argoCDCacheDir names the folder hack/argocd.sh builds into, from the version hack/tools/argocd/go.mod pins.
func argoCDCacheDir() string {
	root, versions, err := pinnedVersions("argocd")
	if err != nil || versions["github.com/argoproj/argo-cd/v3"] == "" {
		return ""
	}
	return filepath.Join(root, "bin", "argocd", versions["github.com/argoproj/argo-cd/v3"])
}

var argoCRDs crdsOnce

// installArgoCRDs installs Argo CD's Application and AppProject CRDs, from the module hack/argocd.sh built, into
// the test API server once.
func installArgoCRDs(t testing.TB, e *testenv.Env, dir string) {
	t.Helper()
	argoCRDs.install(t, e, filepath.Join(dir, "crds"), "Argo CD")
}

// startArgoCD runs Argo CD for one test, in a namespace of its own, until the test ends.
func startArgoCD(t testing.TB, e *testenv.Env) *argoCD {
	t.Helper()
	dir, redisServer := argoCDTools(t)
	installArgoCRDs(t, e, dir)
	a := &argoCD{ns: e.Namespace(t), e: e, log: newProcessLog(t, "Argo CD's output")}
	a.settings(t)
	tmp := t.TempDir()
	redis := freeLoopbackAddr(t)
	a.run(t, "redis", redisServer, nil, "--bind", "127.0.0.1", "--port", portOf(redis), "--save", "", "--appendonly", "no")
	waitListening(t, redis)
	repoServer := freeLoopbackAddr(t)
	env := []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + tmp, "TMPDIR=" + tmp,
		"ARGOCD_GPG_ENABLED=false", "ARGOCD_ASK_PASS_SOCK=" + filepath.Join(tmp, "askpass.sock")}
	a.run(t, "repo-server", filepath.Join(dir, "argocd-repo-server"), env, "--address", "127.0.0.1", "--port", portOf(repoServer),
		"--metrics-address", "127.0.0.1", "--metrics-port", portOf(freeLoopbackAddr(t)), "--disable-tls", "--client-ca-path=", "--redis", redis,
		"--logformat", "text")
	waitListening(t, repoServer)
	kubeconfig := e.Kubeconfig(t, a.ns)
	// A resync an hour away: Argo CD compares an Application with Git when asked (Ferry's refresh), not on its own.
	a.run(t, "application-controller", filepath.Join(dir, "argocd-application-controller"),
		append(env, "ARGOCD_FAKE_IN_CLUSTER=true", "KUBECONFIG="+kubeconfig),
		"--kubeconfig", kubeconfig, "--namespace", a.ns, "--repo-server", repoServer, "--repo-server-plaintext",
		"--redis", redis, "--metrics-port", portOf(freeLoopbackAddr(t)), "--app-resync", "3600", "--logformat", "text")
	return a
}

// settings creates what Argo CD reads at start in its namespace: argocd-cm, argocd-rbac-cm and argocd-secret
// (labelled app.kubernetes.io/part-of=argocd, or its settings informers do not see them) and the default
// AppProject, which argocd-server would create and which no test runs.
func (a *argoCD) settings(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app.kubernetes.io/part-of": "argocd"}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	objs := []client.Object{
		// Each test runs an Argo CD of its own on the same API server, with Applications of the same names: the
		// installation ID keeps one from taking the objects an earlier one synced for its own.
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "argocd-cm", Namespace: a.ns, Labels: labels},
			Data: map[string]string{"installationID": a.ns}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "argocd-rbac-cm", Namespace: a.ns, Labels: labels}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "argocd-secret", Namespace: a.ns, Labels: labels},
			StringData: map[string]string{"server.secretkey": hex.EncodeToString(key)}},
		argoObject("AppProject", a.ns, "default", map[string]any{
			"sourceRepos":              []any{"*"},
			"destinations":             []any{map[string]any{"server": "*", "namespace": "*"}},
			"clusterResourceWhitelist": []any{map[string]any{"group": "*", "kind": "*"}},
		}),
	}
	for _, o := range objs {
		if err := a.e.Client.Create(ctx, o); err != nil {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
	}
}

// argoObject is an argoproj.io/v1alpha1 object with spec.
func argoObject(kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion("argoproj.io/v1alpha1")
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// application creates the Application name syncing path of repoURL's main branch into namespace dest, with
// automated sync or none.
func (a *argoCD) application(t testing.TB, name, repoURL, path, dest string, automated bool) {
	t.Helper()
	spec := map[string]any{
		"project":     "default",
		"source":      map[string]any{"repoURL": repoURL, "path": path, "targetRevision": "main"},
		"destination": map[string]any{"server": "https://kubernetes.default.svc", "namespace": dest},
	}
	if automated {
		spec["syncPolicy"] = map[string]any{"automated": map[string]any{"prune": true}}
	}
	if err := a.e.Client.Create(context.Background(), argoObject("Application", a.ns, name, spec)); err != nil {
		t.Fatal(err)
	}
}

// app reads an Application as Ferry does.
func (a *argoCD) app(t testing.TB, name string) *argoApplication {
	t.Helper()
	u := argoObject("Application", a.ns, name, nil)
	if err := a.e.Client.Get(context.Background(), client.ObjectKeyFromObject(u), u); err != nil {
		t.Fatal(err)
	}
	app, err := applicationOf(u)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// history lists the revisions Argo CD's finished syncs of an Application applied, oldest first (status.history).
func (a *argoCD) history(t testing.TB, name string) []string {
	t.Helper()
	u := argoObject("Application", a.ns, name, nil)
	if err := a.e.Client.Get(context.Background(), client.ObjectKeyFromObject(u), u); err != nil {
		t.Fatal(err)
	}
	entries, _, _ := unstructured.NestedSlice(u.Object, "status", "history")
	var out []string
	for _, h := range entries {
		rev, _, _ := unstructured.NestedString(h.(map[string]any), "revision")
		out = append(out, rev)
	}
	return out
}

// syncedAt waits until Argo CD reports the Application Synced and Healthy at revision.
func (a *argoCD) syncedAt(t testing.TB, name, revision string) {
	t.Helper()
	waitFor(t, argoWait, fmt.Sprintf("Argo CD to sync %s at %s", name, shortSHA(revision)), func() (bool, string) {
		h := a.app(t, name).assess(ExternalRef{Kind: "Application", Namespace: a.ns, Name: name}, revision)
		return h.Healthy, h.Message
	})
}

// refresh asks Argo CD to compare an Application with Git now, as a person would with `argocd app get --refresh`.
func (a *argoCD) refresh(t testing.TB, name string) {
	t.Helper()
	u := argoObject("Application", a.ns, name, nil)
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"`+argoRefreshAnnotation+`":"normal"}}}`))
	if err := a.e.Client.Patch(context.Background(), u, patch); err != nil {
		t.Fatal(err)
	}
}

// argoWait bounds each wait on Argo CD: a sync takes a Git fetch, a render and an apply by separate processes.
const argoWait = 2 * time.Minute

// run starts a process of Argo CD's until the test ends, its output kept in a.log under name.
func (a *argoCD) run(t testing.TB, name, bin string, env []string, args ...string) {
	t.Helper()
	startProcess(t, bin, env, a.log.prefixed(name), args...)
}

// ferryManager runs the Promotion reconciler with engines, as startManager does, and returns a function that
// stops it: a test stops Ferry mid-sync and starts another, as a crash and a restart on another node would.
func ferryManager(t testing.TB, e *testenv.Env, engines Engines) (stop func()) {
	t.Helper()
	_, stop = runManager(t, e, engines)
	return stop
}
