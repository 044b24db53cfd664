// Command demo runs Ferry's main job end to end on this machine for `make demo`, with no Docker and no cloud: a
// local cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok's simulated node, all
// built from their Go modules), two loopback registries, a Git server, a real Prometheus (Debian's package)
// scraping prod's traffic as the demo plays it, the real ferry-controller, and the real cosign CLI. Ferry is first
// installed from its own image (`make image`'s dist/): pushed to the cluster's registry, signed, its SBOM and
// provenance attested and verified, and the controller binary taken out of it by digest. CI pushes and
// signs an image; a Promotion carries its digest dev -> staging -> prod; a second release reaches prod through a
// canary measured on Prometheus; on-call rolls prod back with an annotation; a bad build fails its canary and
// Ferry rolls it back through Git on its own. Everything is left in .demo/ to look at.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/hack/localworld"
	"github.com/ferrycd/ferry/internal/localcluster"
	"github.com/ferrycd/ferry/internal/testenv"
	"github.com/ferrycd/ferry/internal/version"
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
	image       string   // the controller's image, pinned by digest, which the demo released and verified
	prometheus  string   // Prometheus's URL, which prod's analysis queries
	traffic     *traffic // prod's users, played by the demo
}

// stepDeadline bounds each step of the story: a step that has not happened by then fails the demo, saying which.
const stepDeadline = 2 * time.Minute

func run() error {
	if err := checkTools(); err != nil {
		return err
	}
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
	started := time.Now()
	for _, s := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"setting up", d.setUp},
		{"the first release", d.firstRelease},
		{"the second release and its canary", d.secondRelease},
		{"the on-call rollback", d.rollback},
		{"the bad release and its automatic rollback", d.badRelease},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), stepDeadline)
		err := s.run(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w\n(controller log: .demo/controller.log, Prometheus: .demo/prometheus.log, cluster: .demo/cluster/logs/)", s.name, err)
		}
	}
	d.whereToLook()
	fmt.Printf("\nThe demo took %s.\n", time.Since(started).Round(time.Second))
	return nil
}

// checkTools checks the real parts `make demo` passes in, so that a missing one is named before anything starts.
func checkTools() error {
	for _, t := range []struct{ env, what string }{
		{"KUBEBUILDER_ASSETS", "the control plane's binaries (hack/controlplane.sh)"},
		{"FERRY_COSIGN", "the cosign CLI (hack/cosign.sh)"},
		{"FERRY_KWOK", "kwok (hack/kwok.sh)"},
		{"FERRY_PROMETHEUS", "Debian's prometheus (hack/prometheus.sh installs it with apt-get, as root, the first time)"},
	} {
		path := os.Getenv(t.env)
		if path == "" {
			return fmt.Errorf("%s is not set: it names %s; run the demo with `make demo`, which sets it", t.env, t.what)
		}
		if fi, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s=%s: %w; it names %s", t.env, path, err, t.what)
		} else if t.env != "KUBEBUILDER_ASSETS" && (fi.IsDir() || fi.Mode()&0o111 == 0) {
			return fmt.Errorf("%s=%s is not an executable file; it names %s", t.env, path, t.what)
		}
	}
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

	step("Starting a real Prometheus (Debian's package) and the demo's exporter of prod's traffic")
	if err := d.startPrometheus(ctx); err != nil {
		return err
	}

	step("Installing Ferry from its image: push dist/image to the cluster's registry, sign, attest, verify")
	bin, err := d.installFromImage(ctx)
	if err != nil {
		return err
	}

	step("Starting ferry-controller from that image (log: .demo/controller.log)")
	if err := d.startController(ctx, bin); err != nil {
		return err
	}
	return d.applyPromotion(ctx)
}

// startController runs bin, the controller taken out of the verified image, as a process against the cluster.
func (d *demo) startController(ctx context.Context, bin string) error {
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
	cmd := exec.Command(bin, "--kubeconfig", d.kubeconfig,
		"--leader-elect=false", "--metrics-bind-address=0", "--cache-dir", filepath.Join(d.state, "cache"),
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probe), "--webhook-bind-address=127.0.0.1:"+strconv.Itoa(hook))
	cmd.Env = append(os.Environ(), "FERRY_WEBHOOK_TOKEN="+webhookToken, version.ImageEnv+"="+d.image)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
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
		promotion(d.w, d.prometheus))
	for _, o := range objs {
		if err := d.c.Create(ctx, o); err != nil {
			return err
		}
	}
	step("Applied Promotion demo/shop: %s -> dev -> staging -> prod, signed by the release key", d.w.SourceRegistry+"/acme/shop")
	describeProd(promotion(d.w, d.prometheus).Spec.Stages[2])
	return nil
}

// firstRelease pushes and signs 1.0.0 and follows it to prod. Nothing runs anywhere yet, so prod has nothing to
// run a canary beside: it takes 1.0.0 at once, and its analysis measures the soak.
func (d *demo) firstRelease(ctx context.Context) error {
	step("CI pushes shop:1.0.0 and signs it with cosign; a registry notification tells Ferry")
	digest, err := d.release("1.0.0", true)
	if err != nil {
		return err
	}
	fmt.Println("  digest", digest)
	if err := notify(d.webhook, d.w.SourceRegistry+"/acme/shop"); err != nil {
		return err
	}
	return d.follow(ctx, digest)
}

// secondRelease shows an unsigned push going nowhere, then 1.1.0 following 1.0.0, through prod's canary.
func (d *demo) secondRelease(ctx context.Context) error {
	step("Someone pushes shop:1.0.5 without signing it: Ferry waits 5 s for a signature (signatureGracePeriod), then rejects it")
	unsigned, err := d.release("1.0.5", false)
	if err != nil {
		return err
	}
	if err := notify(d.webhook, d.w.SourceRegistry+"/acme/shop"); err != nil {
		return err
	}
	if err := d.waitCandidate(ctx, unsigned, false); err != nil {
		return err
	}
	step("CI pushes and signs shop:1.1.0; prod runs 1.0.0, so 1.1.0 enters prod as a canary beside it")
	digest, err := d.release("1.1.0", true)
	if err != nil {
		return err
	}
	if err := notify(d.webhook, d.w.SourceRegistry+"/acme/shop"); err != nil {
		return err
	}
	if err := d.follow(ctx, digest); err != nil {
		return err
	}
	p, err := d.get(ctx)
	if err != nil {
		return err
	}
	a := p.Status.Stages[len(p.Status.Stages)-1].Analysis
	if a == nil || a.Digest != digest || a.Run != ferryv1.RunSoak || a.Phase != ferryv1.AnalysisPassed {
		return fmt.Errorf("prod runs 1.1.0, but its analysis is not a passed soak of 1.1.0: %+v", a)
	}
	steps := passedCanarySteps(a)
	if len(steps) != 2 {
		return fmt.Errorf("prod runs 1.1.0, but passing canary measurements were recorded for steps %v, not both steps", steps)
	}
	step("Prod's canary of 1.1.0 passed both steps, and the soak passed: what Ferry measured")
	return d.ferry("analysis", "shop", "--stage", "prod")
}

// passedCanarySteps lists the canary steps (from 1) with passing error-ratio measurements on the canary track.
func passedCanarySteps(a *ferryv1.AnalysisStatus) []int32 {
	var steps []int32
	for _, m := range a.Measurements {
		if m.Track == "canary" && m.Metric == errorRatioMetric && m.Verdict == "Pass" && m.Step != nil && !slices.Contains(steps, *m.Step+1) {
			steps = append(steps, *m.Step+1)
		}
	}
	return steps
}

// rollback is on-call's job: prod goes back to 1.0.0 with one command, through Git.
func (d *demo) rollback(ctx context.Context) error {
	step("On-call rolls prod back: ferry rollback shop --stage prod (sets %s)", ferryv1.RollbackAnnotation)
	if err := d.ferry("rollback", "shop", "--stage", "prod", "--timeout", "2m"); err != nil {
		return err
	}
	return d.ferry("get", "shop")
}

// badRelease is a build that fails 30% of prod's requests: dev and staging have no analysis and take it;
// prod's canary measures it, fails it, and Ferry commits the previous digest back to Git on its own.
func (d *demo) badRelease(ctx context.Context) error {
	step("CI pushes and signs shop:1.2.0, a bad build: the demo makes %.0f%% of prod's requests to it fail with a 500", 100*badErrorRatio)
	digest, err := d.release("1.2.0", true)
	if err != nil {
		return err
	}
	d.traffic.fail(digest, badErrorRatio)
	p, err := d.get(ctx)
	if err != nil {
		return err
	}
	before := p.Status.Stages[len(p.Status.Stages)-1].Digest
	fmt.Printf("  digest %s; prod runs %s\n", digest, d.version(before))
	if err := notify(d.webhook, d.w.SourceRegistry+"/acme/shop"); err != nil {
		return err
	}
	var prod ferryv1.StageStatus
	err = d.followUntil(ctx, "prod to roll 1.2.0 back", func(p *ferryv1.Promotion) (bool, error) {
		prod = p.Status.Stages[len(p.Status.Stages)-1]
		if prod.Digest == digest {
			return false, fmt.Errorf("prod took the bad build 1.2.0: %s", prod.Message)
		}
		return prod.Phase == ferryv1.PhaseRolledBack && prod.InFlightDigest == "" && prod.Hold != nil &&
			prod.Hold.Digest == before && rolledBack(prod, digest), nil
	})
	if err != nil {
		return err
	}
	if prod.Hold.Reason != "AnalysisFailed" || prod.Hold.RequestedBy != "ferry" {
		return fmt.Errorf("prod rolled 1.2.0 back for %s, requested by %s, not by Ferry for a failed analysis", prod.Hold.Reason, prod.Hold.RequestedBy)
	}
	step("Ferry failed prod's canary of 1.2.0 and rolled prod back to %s through Git, on its own: what it measured", d.version(before))
	if err := d.ferry("analysis", "shop", "--stage", "prod"); err != nil {
		return err
	}

	step("The rollback commit Ferry pushed, read from the Git server's repository")
	msg, err := exec.Command("git", "-C", d.w.RepoDir(repoPath), "show", "-s", "--format=%h %an <%ae>%n%n%B", prod.LastCommit).CombinedOutput()
	if err != nil {
		return fmt.Errorf("git show %s: %v\n%s", prod.LastCommit, err, msg)
	}
	for _, trailer := range []string{"Ferry-Rollback: ", "Ferry-Rollback-Reason: ", "Ferry-Digest: " + before} {
		if !strings.Contains(string(msg), trailer) {
			return fmt.Errorf("prod's last commit %s has no %q trailer:\n%s", prod.LastCommit, trailer, msg)
		}
	}
	fmt.Print(indent(string(msg)))

	step("What runs in prod now")
	if err := d.ferry("get", "shop"); err != nil {
		return err
	}
	return d.showProd(ctx, before)
}

// rolledBack reports whether the stage's history records digest as rolled back.
func rolledBack(st ferryv1.StageStatus, digest string) bool {
	for _, h := range st.History {
		if h.Digest == digest && h.Outcome == ferryv1.OutcomeRolledBack {
			return true
		}
	}
	return false
}

// showProd prints prod's Deployments as the cluster has them, and checks that only the stable one is left, on
// digest.
func (d *demo) showProd(ctx context.Context, digest string) error {
	var list appsv1.DeploymentList
	if err := d.c.List(ctx, &list, client.InNamespace("shop-prod")); err != nil {
		return err
	}
	fmt.Println("\n  Deployments in shop-prod:")
	for _, dep := range list.Items {
		image := dep.Spec.Template.Spec.Containers[0].Image
		fmt.Printf("  %-12s %d/%d ready  %s (%s)\n", dep.Name, dep.Status.ReadyReplicas, ptr.Deref(dep.Spec.Replicas, 1), d.version(digestOf(image)), image)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "shop" || digestOf(list.Items[0].Spec.Template.Spec.Containers[0].Image) != digest {
		return fmt.Errorf("shop-prod should run the Deployment shop alone, on %s, once the canary is gone", d.version(digest))
	}
	return nil
}

func (d *demo) whereToLook() {
	step("Where to look")
	fmt.Printf(`  ferry history:   KUBECONFIG=%[1]s bin/ferry -n demo history shop
  git log:         git -C %[2]s log --format='%%h %%s%%n%%(trailers:only)' main
  cluster:         KUBECONFIG=%[1]s kubectl get deploy -A   (if you have kubectl)
  controller log:  .demo/controller.log; cluster logs: .demo/cluster/logs/
  Prometheus:      .demo/prometheus.log; its configuration and storage: .demo/prometheus/
`, d.kubeconfig, d.w.RepoDir(repoPath))
	_ = d.ferry("history", "shop", "--stage", "prod")
	fmt.Println()
	out, _ := exec.Command("git", "-C", d.w.RepoDir(repoPath), "log", "-4",
		"--format=%h %s%n%(trailers:only)", "main").CombinedOutput()
	fmt.Print(indent(string(out)))
}

// release is CI's job (world.release), remembering the version of the digest for the demo's output.
func (d *demo) release(version string, sign bool) (string, error) {
	digest, err := d.w.release(version, sign)
	if err != nil {
		return "", err
	}
	d.traffic.name(digest.DigestStr(), version)
	return digest.DigestStr(), nil
}

// version names a digest by the version it was pushed as.
func (d *demo) version(digest string) string { return d.traffic.version(digest) }

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
