// Command demo runs Ferry on an embedded local control plane for `make demo`: a real etcd and kube-apiserver
// (built by hack/controlplane.sh), the real ferry-controller binary, and the 3-stage sample Promotion. It shows
// what the controller does today — validate a Promotion and everything it refers to, stall with a reason that
// names the field when something is missing, and recover as soon as it is fixed — through `ferry get`.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	state := filepath.Join(root, ".demo")
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	step("Starting a local control plane (etcd + kube-apiserver built from their Go modules)")
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	kubeconfig := filepath.Join(state, "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig, "demo"); err != nil {
		return err
	}
	fmt.Println("  kubeconfig:", kubeconfig)

	step("Starting ferry-controller (logs in .demo/controller.log)")
	stopController, err := startController(root, state, kubeconfig)
	if err != nil {
		return err
	}
	defer stopController()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}); err != nil {
		return err
	}
	secrets, err := testenv.SampleSecrets("demo")
	if err != nil {
		return err
	}
	var gitSecret client.Object
	for _, s := range secrets {
		if s.GetName() == "shop-git" {
			gitSecret = s // held back to show a stalled Promotion
			continue
		}
		if err := c.Create(ctx, s); err != nil {
			return err
		}
	}
	p, err := testenv.SamplePromotion("demo")
	if err != nil {
		return err
	}
	step("Applying config/samples/ferry_v1alpha1_promotion.yaml (dev -> staging -> prod) without its Git Secret")
	if err := c.Create(ctx, p); err != nil {
		return err
	}
	if err := waitFor(ctx, c, ferryv1.ConditionStalled, metav1.ConditionTrue); err != nil {
		return err
	}
	if err := ferryGet(root, kubeconfig); err != nil {
		return err
	}

	step("Creating the missing Secret shop-git: Ferry notices at once, no edit of the Promotion needed")
	if err := c.Create(ctx, gitSecret); err != nil {
		return err
	}
	if err := waitFor(ctx, c, ferryv1.ConditionReady, metav1.ConditionTrue); err != nil {
		return err
	}
	if err := ferryGet(root, kubeconfig); err != nil {
		return err
	}

	step("Done")
	fmt.Println(`  What Ferry does today: it validates each Promotion and everything it refers to (Secrets, keys,
  trusted roots, registries, templates), reports Stalled with the field at fault, and recovers on its own.
  The engines run on their own from the CLI: ferry verify, ferry copy, ferry pin (see README.md).
  The promotion steps (copy, commit, sync, canary, rollback) are joined into the controller next.
  The controller log of this run is in .demo/controller.log.`)
	return nil
}

func step(msg string) { fmt.Printf("\n==> %s\n", msg) }

// startController runs the real controller binary against the demo control plane.
func startController(root, state, kubeconfig string) (func(), error) {
	logFile, err := os.Create(filepath.Join(state, "controller.log"))
	if err != nil {
		return nil, err
	}
	probe, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(root, "bin", "ferry-controller"),
		"--kubeconfig", kubeconfig, "--leader-elect=false", "--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probe))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting bin/ferry-controller (run `make build`): %w", err)
	}
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		_ = logFile.Close()
	}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls the Promotion until a condition has the wanted status.
func waitFor(ctx context.Context, c client.Client, condType string, status metav1.ConditionStatus) error {
	for {
		var p ferryv1.Promotion
		if err := c.Get(ctx, types.NamespacedName{Namespace: "demo", Name: "shop"}, &p); err == nil {
			if cond := apimeta.FindStatusCondition(p.Status.Conditions, condType); cond != nil && cond.Status == status {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s=%s: %w (see .demo/controller.log)", condType, status, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ferryGet shows the Promotion the way a person would look at it.
func ferryGet(root, kubeconfig string) error {
	cmd := exec.Command(filepath.Join(root, "bin", "ferry"), "get", "shop", "--kubeconfig", kubeconfig)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	fmt.Println("$ ferry get shop")
	return cmd.Run()
}
