package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/internal/testenv"
)

// fluxBinaries returns the folder hack/flux.sh builds source-controller, kustomize-controller and their CRDs into:
// $FERRY_FLUX when set, else the folder named after the versions pinned in hack/tools/flux/go.mod. Without the
// binaries the test is skipped, or failed when FERRY_REQUIRE_TOOLS=1.
func fluxBinaries(t testing.TB) string {
	t.Helper()
	dir, err := fluxDir()
	if err == nil {
		for _, f := range []string{"source-controller", "kustomize-controller", "crds/.complete"} {
			if _, serr := os.Stat(filepath.Join(dir, f)); serr != nil {
				err = fmt.Errorf("%s is not built in %s", f, dir)
				break
			}
		}
	}
	if err == nil {
		return dir
	}
	missingTool(t, fmt.Sprintf("no Flux controllers (run `export FERRY_FLUX=$(hack/flux.sh)`): %v", err))
	return ""
}

func fluxDir() (string, error) {
	if dir := os.Getenv("FERRY_FLUX"); dir != "" {
		return dir, nil
	}
	root, versions, err := pinnedVersions("flux")
	if err != nil {
		return "", err
	}
	src, kust := versions["github.com/fluxcd/source-controller"], versions["github.com/fluxcd/kustomize-controller"]
	if src == "" || kust == "" {
		return "", fmt.Errorf("hack/tools/flux/go.mod does not pin source-controller and kustomize-controller")
	}
	return filepath.Join(root, "bin", "flux", "source-"+src+"-kustomize-"+kust), nil
}

var fluxCRDs crdsOnce

// startFlux runs source-controller and kustomize-controller as processes against the test API server until the
// test ends, as they run in a cluster: watching every namespace, fetching from the test Git server, serving and
// downloading artifacts over loopback, applying as the API server's admin. Their output is shown when the test
// fails.
func startFlux(t testing.TB, e *testenv.Env) {
	t.Helper()
	dir := fluxBinaries(t)
	fluxCRDs.install(t, e, filepath.Join(dir, "crds"), "Flux")
	// Flux's flags are pflag's, without controller-runtime's --kubeconfig; it reads $KUBECONFIG.
	env := []string{"KUBECONFIG=" + e.Kubeconfig(t, "default")}
	logs := newProcessLog(t, "Flux controllers' output")
	artifacts := freeLoopbackAddr(t)
	startProcess(t, filepath.Join(dir, "source-controller"), env, logs.prefixed("source-controller"), append(fluxCommonFlags(t),
		"--storage-path="+t.TempDir(), "--storage-addr="+artifacts, "--storage-adv-addr="+artifacts)...)
	startProcess(t, filepath.Join(dir, "kustomize-controller"), env, logs.prefixed("kustomize-controller"), append(fluxCommonFlags(t),
		"--requeue-dependency=1s")...)
}

// fluxCommonFlags are the flags of one controller process: its own loopback ports, every namespace watched,
// leader election off (its default).
func fluxCommonFlags(t testing.TB) []string {
	return []string{"--metrics-addr=" + freeLoopbackAddr(t), "--health-addr=" + freeLoopbackAddr(t),
		"--watch-all-namespaces", "--log-encoding=console", "--concurrent=4"}
}

// startAvailability plays the part of kube-controller-manager that the test's rollout controller leaves out and
// Flux's health checks (kstatus) read: once the rollout controller has written a Deployment's rollout, the
// Deployment gets an Available condition — True for a finished rollout, False for one past its deadline.
func startAvailability(t testing.TB, c client.Client, namespaces ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for _, ns := range namespaces {
				markAvailable(ctx, c, ns)
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func markAvailable(ctx context.Context, c client.Client, ns string) {
	var list appsv1.DeploymentList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return
	}
	for i := range list.Items {
		d := &list.Items[i]
		if d.Status.ObservedGeneration != d.Generation || len(d.Status.Conditions) != 1 {
			continue // not rolled out yet by the rollout controller, or already marked
		}
		progressing := d.Status.Conditions[0]
		available := appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
			Reason: "MinimumReplicasAvailable", LastUpdateTime: progressing.LastUpdateTime, LastTransitionTime: progressing.LastTransitionTime}
		if progressing.Status != corev1.ConditionTrue {
			available.Status, available.Reason = corev1.ConditionFalse, "MinimumReplicasUnavailable"
		}
		d.Status.Conditions = append(d.Status.Conditions, available)
		_ = c.Status().Update(ctx, d)
	}
}

// fluxObject builds a Flux object for the test API server.
func fluxObject(apiVersion, kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "spec": spec}}
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// gitRepository is a GitRepository of the test Git server's main branch that fetches only when asked (its
// interval is an hour), so that a stage synced in seconds shows Ferry's request at work.
func gitRepository(ns, name, url string) *unstructured.Unstructured {
	return fluxObject("source.toolkit.fluxcd.io/v1", "GitRepository", ns, name, map[string]any{
		"url": url, "interval": "1h", "ref": map[string]any{"branch": "main"}, "timeout": "20s"})
}

// kustomization applies path of the GitRepository source into targetNamespace, waiting for what it applied to be
// healthy (spec.wait); it too reconciles on its own only hourly.
func kustomization(ns, name, source, path, targetNamespace string) *unstructured.Unstructured {
	return fluxObject("kustomize.toolkit.fluxcd.io/v1", "Kustomization", ns, name, map[string]any{
		"interval": "1h", "timeout": "1m", "retryInterval": "1h", "path": path, "prune": true, "wait": true,
		"targetNamespace": targetNamespace,
		"sourceRef":       map[string]any{"kind": "GitRepository", "name": source},
	})
}

// readKustomization reads a Kustomization as Ferry does.
func readKustomization(t testing.TB, c client.Client, ns, name string) *fluxKustomization {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("kustomize.toolkit.fluxcd.io/v1")
	u.SetKind("Kustomization")
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	k, err := fluxKustomizationOf(u)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// setSuspended suspends or resumes a Kustomization.
func setSuspended(t testing.TB, c client.Client, ns, name string, suspend bool) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("kustomize.toolkit.fluxcd.io/v1")
	u.SetKind("Kustomization")
	u.SetNamespace(ns)
	u.SetName(name)
	patch := []byte(fmt.Sprintf(`{"spec":{"suspend":%t}}`, suspend))
	if err := c.Patch(context.Background(), u, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
}

// fluxEventually is eventually with room for Flux: kustomize-controller polls a health check every 5 s (a fixed
// interval), so on a loaded machine one stage can take several of them, and a three-stage promotion more.
func fluxEventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for ; time.Now().Before(deadline); <-tick.C {
		ok, state := cond()
		if ok {
			return
		}
		last = state
	}
	t.Fatalf("timed out waiting for %s; last state: %s", what, last)
}
