package controllers

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ferrycd/ferry/internal/procgroup"
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
	msg := fmt.Sprintf("no Flux controllers (run `export FERRY_FLUX=$(hack/flux.sh)`): %v", err)
	if testenv.RequireTools() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fluxDir() (string, error) {
	if dir := os.Getenv("FERRY_FLUX"); dir != "" {
		return dir, nil
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	f, err := os.Open(filepath.Join(root, "hack", "tools", "flux", "go.mod"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	versions := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 && versions[fields[0]] == "" {
			versions[fields[0]] = fields[1]
		}
	}
	src, kust := versions["github.com/fluxcd/source-controller"], versions["github.com/fluxcd/kustomize-controller"]
	if src == "" || kust == "" {
		return "", fmt.Errorf("hack/tools/flux/go.mod does not pin source-controller and kustomize-controller")
	}
	return filepath.Join(root, "bin", "flux", "source-"+src+"-kustomize-"+kust), nil
}

// fluxCRDs installs Flux's CRDs into the package's API server once.
var fluxCRDs struct {
	once gosync.Once
	err  error
}

// startFlux runs source-controller and kustomize-controller as processes against the test API server until the
// test ends, as they run in a cluster: watching every namespace, fetching from the test Git server, serving and
// downloading artifacts over loopback, applying as the API server's admin. Their output is shown when the test
// fails.
func startFlux(t testing.TB, e *testenv.Env) {
	t.Helper()
	dir := fluxBinaries(t)
	fluxCRDs.once.Do(func() {
		_, fluxCRDs.err = envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{
			Paths: []string{filepath.Join(dir, "crds")}, ErrorIfPathMissing: true})
	})
	if fluxCRDs.err != nil {
		t.Fatalf("installing Flux's CRDs: %v", fluxCRDs.err)
	}
	kubeconfig := e.Kubeconfig(t, "default")
	logs := &fluxLog{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Flux controllers' output:\n%s", logs.tail(60))
		}
	})
	artifacts := freeLoopbackAddr(t)
	runFluxProcess(t, filepath.Join(dir, "source-controller"), kubeconfig, logs, append(fluxCommonFlags(t),
		"--storage-path="+t.TempDir(), "--storage-addr="+artifacts, "--storage-adv-addr="+artifacts)...)
	runFluxProcess(t, filepath.Join(dir, "kustomize-controller"), kubeconfig, logs, append(fluxCommonFlags(t),
		"--requeue-dependency=1s")...)
}

// fluxCommonFlags are the flags of one controller process: its own loopback ports, every namespace watched,
// leader election off (its default).
func fluxCommonFlags(t testing.TB) []string {
	return []string{"--metrics-addr=" + freeLoopbackAddr(t), "--health-addr=" + freeLoopbackAddr(t),
		"--watch-all-namespaces", "--log-encoding=console", "--concurrent=4"}
}

// runFluxProcess starts one controller in a process group of its own (killed if the test binary dies) and stops
// it when the test ends.
func runFluxProcess(t testing.TB, bin, kubeconfig string, logs *fluxLog, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// Flux's flags are pflag's, without controller-runtime's --kubeconfig; it reads $KUBECONFIG.
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = procgroup.SysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = procgroup.Terminate(cmd)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			procgroup.Kill(cmd)
			<-done
		}
	})
}

// freeLoopbackAddr reserves a loopback port and releases it for a process to bind.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// fluxLog collects the controllers' output, written from their own goroutines.
type fluxLog struct {
	mu gosync.Mutex
	b  strings.Builder
}

func (l *fluxLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *fluxLog) tail(lines int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := strings.Split(l.b.String(), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
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
