// Command demo runs Ferry's main job end to end on this machine for `make demo`, with no Docker and no cloud: a
// local cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok's simulated node, all
// built from their Go modules), two loopback registries, a Git server, the real ferry-controller, and the real
// cosign CLI. CI pushes and signs an image; a Promotion carries its digest dev -> staging -> prod; a second
// release follows; then on-call rolls prod back with an annotation. Everything is left in .demo/ to look at.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/hack/localworld"
	"github.com/ferrycd/ferry/internal/localcluster"
	"github.com/ferrycd/ferry/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
}

// demo holds what the story needs between its steps.
type demo struct {
	root, state string
	w           *world
	c           client.Client
	kubeconfig  string
	webhook     string
}

func run() error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	state := filepath.Join(root, ".demo")
	_ = os.RemoveAll(state)
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	d := &demo{root: root, state: state, w: &world{World: localworld.New(state)}}
	defer d.w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	for _, stage := range []func(context.Context) error{d.setUp, d.firstRelease, d.secondRelease, d.rollback} {
		if err := stage(ctx); err != nil {
			return err
		}
	}
	d.whereToLook()
	return nil
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

// setUp starts the world: registries, Git, cosign keys, the cluster and the controller, then applies the
// Promotion.
func (d *demo) setUp(ctx context.Context) error {
	step("Starting two loopback registries, a Git server and cosign keys")
	if err := d.w.Start(); err != nil {
		return err
	}
	if err := d.w.CreateRepo(repoPath, stageFiles(d.w.StageRegistry)); err != nil {
		return err
	}
	if err := d.w.setUpCosign(os.Getenv("FERRY_COSIGN")); err != nil {
		return err
	}
	fmt.Printf("  source registry %s, stage registry %s\n  git %s\n", d.w.SourceRegistry, d.w.StageRegistry, d.w.RepoURL(repoPath))

	step("Starting a local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok")
	started := time.Now()
	cluster, err := localcluster.Start(ctx, localcluster.Options{Dir: filepath.Join(d.state, "cluster"),
		BinDir: os.Getenv("KUBEBUILDER_ASSETS"), KwokBin: os.Getenv("FERRY_KWOK")})
	if err != nil {
		return err
	}
	d.w.OnStop(func() { _ = cluster.Stop() })
	d.kubeconfig = cluster.Kubeconfig
	fmt.Printf("  ready in %s with node %s; kubeconfig %s\n", time.Since(started).Round(100*time.Millisecond),
		strings.Join(cluster.NodeNames, ","), d.kubeconfig)
	if _, err := envtest.InstallCRDs(cluster.RESTConfig, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(d.root, "config", "crd", "bases")}, ErrorIfPathMissing: true}); err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = ferryv1.AddToScheme(scheme)
	if d.c, err = client.New(cluster.RESTConfig, client.Options{Scheme: scheme}); err != nil {
		return err
	}

	step("Starting ferry-controller (log: .demo/controller.log)")
	if err := d.startController(ctx); err != nil {
		return err
	}
	return d.applyPromotion(ctx)
}

func (d *demo) startController(ctx context.Context) error {
	probe, err := freePort()
	if err != nil {
		return err
	}
	hook, err := freePort()
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(d.state, "controller.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(d.root, "bin", "ferry-controller"), "--kubeconfig", d.kubeconfig,
		"--leader-elect=false", "--metrics-bind-address=0", "--cache-dir", filepath.Join(d.state, "cache"),
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probe), "--webhook-bind-address=127.0.0.1:"+strconv.Itoa(hook))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting bin/ferry-controller (run `make build`): %w", err)
	}
	d.w.OnStop(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		_ = logFile.Close()
	})
	d.webhook = "http://127.0.0.1:" + strconv.Itoa(hook) + "/registry"
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return waitHTTP(waitCtx, "http://127.0.0.1:"+strconv.Itoa(probe)+"/readyz")
}

// applyPromotion creates the stages' namespaces, the public key Secret and the Promotion.
func (d *demo) applyPromotion(ctx context.Context) error {
	pub, err := d.w.publicKey()
	if err != nil {
		return err
	}
	objs := []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}}
	for _, ns := range []string{"shop-dev", "shop-staging", "shop-prod"} {
		objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	objs = append(objs,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "release-key", Namespace: "demo"}, Data: map[string][]byte{"cosign.pub": pub}},
		promotion(d.w))
	for _, o := range objs {
		if err := d.c.Create(ctx, o); err != nil {
			return err
		}
	}
	step("Applied Promotion demo/shop: %s -> dev -> staging -> prod, signed by the release key", d.w.SourceRegistry+"/acme/shop")
	return nil
}

// firstRelease pushes and signs 1.0.0 and follows it to prod.
func (d *demo) firstRelease(ctx context.Context) error {
	step("CI pushes shop:1.0.0 and signs it with cosign; a registry notification tells Ferry")
	digest, err := d.w.release("1.0.0", true)
	if err != nil {
		return err
	}
	fmt.Println("  digest", digest.DigestStr())
	if err := notify(d.webhook, d.w.SourceRegistry+"/acme/shop"); err != nil {
		return err
	}
	return d.follow(ctx, digest.DigestStr())
}

// secondRelease shows an unsigned push going nowhere, then 1.1.0 following 1.0.0.
func (d *demo) secondRelease(ctx context.Context) error {
	step("Someone pushes shop:1.0.5 without signing it")
	unsigned, err := d.w.release("1.0.5", false)
	if err != nil {
		return err
	}
	if err := notify(d.webhook, d.w.SourceRegistry+"/acme/shop"); err != nil {
		return err
	}
	if err := d.waitCandidate(ctx, unsigned.DigestStr(), false); err != nil {
		return err
	}
	step("CI pushes and signs shop:1.1.0")
	digest, err := d.w.release("1.1.0", true)
	if err != nil {
		return err
	}
	if err := notify(d.webhook, d.w.SourceRegistry+"/acme/shop"); err != nil {
		return err
	}
	return d.follow(ctx, digest.DigestStr())
}

// rollback is on-call's job: prod goes back to 1.0.0 with one command, through Git.
func (d *demo) rollback(ctx context.Context) error {
	step("On-call rolls prod back: ferry rollback shop --stage prod (sets %s)", ferryv1.RollbackAnnotation)
	if err := d.ferry("rollback", "shop", "--stage", "prod", "--timeout", "3m"); err != nil {
		return err
	}
	return d.ferry("get", "shop")
}

func (d *demo) whereToLook() {
	step("Where to look")
	fmt.Printf(`  ferry history:   KUBECONFIG=%[1]s bin/ferry -n demo history shop
  git log:         git -C %[2]s log --format='%%h %%s%%n%%(trailers:only)' main
  cluster:         KUBECONFIG=%[1]s kubectl get deploy -A   (if you have kubectl)
  controller log:  .demo/controller.log; cluster logs: .demo/cluster/logs/
`, d.kubeconfig, d.w.RepoDir(repoPath))
	_ = d.ferry("history", "shop", "--stage", "prod")
	fmt.Println()
	out, _ := exec.Command("git", "-C", d.w.RepoDir(repoPath), "log", "-4",
		"--format=%h %s%n%(trailers:only)", "main").CombinedOutput()
	fmt.Print(indent(string(out)))
}

// ferry runs the CLI as a person would.
func (d *demo) ferry(args ...string) error {
	full := append(append([]string{}, args...), "--kubeconfig", d.kubeconfig, "-n", "demo")
	cmd := exec.Command(filepath.Join(d.root, "bin", "ferry"), full...)
	fmt.Println("$ ferry " + strings.Join(args, " "))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}
