package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/localcluster"
	"github.com/ferrycd/ferry/internal/testenv"
)

// promotionNamespace holds each test's Promotion and its Secrets; every test has a cluster of its own.
const promotionNamespace = "ferry"

// flowTimeout bounds each wait for Ferry to reach a state: generous, because CI shares two cores between the
// cluster, Gitea, the registries and a controller built with the race detector.
const flowTimeout = 3 * time.Minute

// harness is one test's product: a local cluster with Ferry's CRD, clients, and the ferry-controller process.
type harness struct {
	t       *testing.T
	dir     string
	cluster *localcluster.Cluster
	c       client.Client
	kube    kubernetes.Interface
	ctrl    *controllerProcess
	cache   string // the first controller's cache folder
	started int    // controller processes started, to name their logs
}

// newHarness starts a cluster with one kwok node, installs the CRD, creates the Promotion namespace and starts
// the controller with a cache folder of its own.
func newHarness(t *testing.T) *harness {
	t.Helper()
	bin := controllerBinary(t)
	cluster := startLocalCluster(t, 1)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envtest.InstallCRDs(cluster.RESTConfig, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(root, "config", "crd", "bases")}, ErrorIfPathMissing: true}); err != nil {
		t.Fatalf("installing the CRD: %v", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := ferryv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: t.TempDir(), cluster: cluster}
	if h.c, err = client.New(cluster.RESTConfig, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	if h.kube, err = kubernetes.NewForConfig(cluster.RESTConfig); err != nil {
		t.Fatal(err)
	}
	h.createNamespaces(promotionNamespace)
	h.cache = filepath.Join(h.dir, "cache")
	h.startController(bin, h.cache)
	return h
}

// restart starts a new controller process with cacheDir, after the previous one was killed or stopped.
func (h *harness) restart(cacheDir string) {
	h.t.Helper()
	h.startController(controllerBinary(h.t), cacheDir)
}

func (h *harness) createNamespaces(names ...string) {
	h.t.Helper()
	for _, n := range names {
		if err := h.c.Create(h.t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			h.t.Fatalf("creating namespace %s: %v", n, err)
		}
	}
}

// create creates objects in the cluster, failing the test on the first error.
func (h *harness) create(objs ...client.Object) {
	h.t.Helper()
	for _, o := range objs {
		if err := h.c.Create(h.t.Context(), o); err != nil {
			h.t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

// webhookToken is the registry webhook's token in every controller the tests start.
const webhookToken = "e2e-webhook-token-0123456789abcdef"

// controllerProcess is one run of ferry-controller.
type controllerProcess struct {
	cmd      *exec.Cmd
	logPath  string
	probe    string // host:port of /readyz
	metrics  string // host:port of /metrics
	webhook  string // URL of the registry notification endpoint
	exited   chan struct{}
	waitErr  error
	killed   bool
	finished bool
}

// startController runs ferry-controller against the cluster with cacheDir and waits for /readyz. Ports are
// picked free and retried when another process takes one in between.
func (h *harness) startController(bin, cacheDir string) *controllerProcess {
	h.t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := h.tryStartController(bin, cacheDir)
		if err == nil {
			h.ctrl = p
			return p
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	h.t.Fatalf("starting ferry-controller: %v", lastErr)
	return nil
}

func (h *harness) tryStartController(bin, cacheDir string) (*controllerProcess, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	h.started++
	p := &controllerProcess{
		logPath: filepath.Join(h.dir, fmt.Sprintf("controller-%d.log", h.started)),
		probe:   "127.0.0.1:" + strconv.Itoa(ports[0]),
		metrics: "127.0.0.1:" + strconv.Itoa(ports[1]),
		webhook: "http://127.0.0.1:" + strconv.Itoa(ports[2]) + "/registry",
		exited:  make(chan struct{}),
	}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, "--kubeconfig", h.cluster.Kubeconfig, "--leader-elect=false",
		"--metrics-bind-address="+p.metrics, "--metrics-secure=false", "--health-probe-bind-address="+p.probe,
		"--webhook-bind-address=127.0.0.1:"+strconv.Itoa(ports[2]), "--cache-dir", cacheDir)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.Env = append(os.Environ(), "HOME="+h.dir, "FERRY_WEBHOOK_TOKEN="+webhookToken)
	if err := p.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		_ = logFile.Close()
		close(p.exited)
	}()
	h.t.Cleanup(func() { h.finish(p) })
	if err := p.waitReady(h.t.Context()); err != nil {
		h.finish(p)
		return nil, fmt.Errorf("%w\n%s", err, tail(p.logPath, 30))
	}
	return p, nil
}

// waitReady polls /readyz until it answers 200 and the registry webhook accepts connections, or the process
// exits. /readyz does not cover the webhook listener, which the manager starts on its own.
func (p *controllerProcess) waitReady(ctx context.Context) error {
	url := "http://" + p.probe + "/readyz"
	hook := strings.TrimSuffix(strings.TrimPrefix(p.webhook, "http://"), "/registry")
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case <-p.exited:
			return false, fmt.Errorf("ferry-controller exited before it was ready: %v", p.waitErr)
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, nil
		}
		conn, err := net.DialTimeout("tcp", hook, time.Second)
		if err != nil {
			return false, nil
		}
		_ = conn.Close()
		return true, nil
	})
}

// kill ends the controller with SIGKILL, as a node failure or an OOM kill would: no cleanup, no last write.
func (h *harness) kill(p *controllerProcess) {
	h.t.Helper()
	p.killed = true
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		h.t.Fatalf("killing ferry-controller: %v", err)
	}
	<-p.exited
}

// finish stops a controller that is still running, gracefully, and fails the test when the process saw a
// reconcile panic or the race detector reported a data race. The controller's log is shown when the test failed.
func (h *harness) finish(p *controllerProcess) {
	if p.finished {
		return
	}
	p.finished = true
	select {
	case <-p.exited:
	default:
		if panics, err := p.waitReconcilePanics(); err != nil {
			h.t.Errorf("reading controller_runtime_reconcile_panics_total from the controller's metrics: %v", err)
		} else if panics > 0 {
			h.t.Errorf("ferry-controller recorded %v reconcile panics (controller_runtime_reconcile_panics_total)", panics)
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			h.t.Errorf("ferry-controller did not stop within 30s of SIGTERM; killing it")
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if race := grep(p.logPath, "WARNING: DATA RACE"); race {
		h.t.Errorf("the race detector reported a data race in ferry-controller; see %s:\n%s", p.logPath, tail(p.logPath, 80))
	}
	if h.t.Failed() {
		h.t.Logf("--- last lines of %s (killed=%v) ---\n%s", filepath.Base(p.logPath), p.killed, tail(p.logPath, 60))
	}
}

// metricsTimeout bounds the wait for the controller's metrics endpoint to serve the reconcile panic counter.
const metricsTimeout = 30 * time.Second

// waitReconcilePanics waits until the controller's metrics endpoint serves controller_runtime_reconcile_panics_total
// and returns its sum. It runs in a cleanup, when the test's context is already cancelled, so it has a deadline
// of its own; an endpoint that never serves the counter, or a process that exits meanwhile, is an error.
func (p *controllerProcess) waitReconcilePanics() (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), metricsTimeout)
	defer cancel()
	var (
		total float64
		last  error
	)
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case <-p.exited:
			return false, fmt.Errorf("ferry-controller exited before it was stopped: %v", p.waitErr)
		default:
		}
		var found bool
		total, found, last = reconcilePanics(ctx, p.metrics)
		if last == nil && !found {
			last = fmt.Errorf("no controller_runtime_reconcile_panics_total series in http://%s/metrics", p.metrics)
		}
		return last == nil, nil
	})
	if err != nil && last != nil {
		return 0, fmt.Errorf("%w (last: %v)", err, last)
	}
	return total, err
}

// reconcilePanics sums controller_runtime_reconcile_panics_total from the controller's metrics endpoint; found
// says whether the endpoint served any series of it.
func reconcilePanics(ctx context.Context, addr string) (total float64, found bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("GET /metrics answered %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "controller_runtime_reconcile_panics_total") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return 0, false, fmt.Errorf("parsing %q: %w", line, err)
		}
		total += v
		found = true
	}
	return total, found, sc.Err()
}

// notify tells the running controller that the source repository received a push, as a registry would.
func (h *harness) notify(repository string) {
	h.t.Helper()
	body := fmt.Sprintf(`{"repository":%q}`, repository)
	req, err := http.NewRequest(http.MethodPost, h.ctrl.webhook, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+webhookToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("notifying the controller: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		h.t.Fatalf("the controller's registry webhook answered %s", resp.Status)
	}
}

// ferry runs the built ferry CLI against the harness's cluster as its admin, in the Promotions' namespace, and
// returns what it printed.
func (h *harness) ferry(args ...string) (string, error) {
	h.t.Helper()
	cmd := exec.CommandContext(h.t.Context(), ferryCLI(h.t), append(args, "--kubeconfig", h.cluster.Kubeconfig, "-n", promotionNamespace)...)
	cmd.Env = append(os.Environ(), "HOME="+h.dir)
	out, err := cmd.CombinedOutput()
	h.t.Logf("$ ferry %s\n%s", strings.Join(args, " "), out)
	return string(out), err
}

// promotion reads the Promotion named name.
func (h *harness) promotion(name string) *ferryv1.Promotion {
	h.t.Helper()
	var p ferryv1.Promotion
	if err := h.c.Get(h.t.Context(), types.NamespacedName{Namespace: promotionNamespace, Name: name}, &p); err != nil {
		h.t.Fatalf("reading Promotion %s: %v", name, err)
	}
	return &p
}

// waitPromotion polls the Promotion until cond holds and returns it; on timeout it fails with the status seen.
func (h *harness) waitPromotion(name, what string, cond func(*ferryv1.Promotion) bool) *ferryv1.Promotion {
	h.t.Helper()
	var last ferryv1.Promotion
	err := wait.PollUntilContextTimeout(h.t.Context(), 200*time.Millisecond, flowTimeout, true, func(ctx context.Context) (bool, error) {
		if err := h.c.Get(ctx, types.NamespacedName{Namespace: promotionNamespace, Name: name}, &last); err != nil {
			return false, nil // the API server may be briefly busy; the deadline still holds
		}
		return cond(&last), nil
	})
	if err != nil {
		h.t.Fatalf("waiting for %s: %v\nlast status seen:\n%s", what, err, describe(&last))
	}
	return &last
}

// poke touches the Promotion's annotations so the controller reconciles it now. Ferry polls a pull request
// every 30 s; a forge webhook would do what this does, and the test does not wait out the poll.
func (h *harness) poke(name string) {
	h.t.Helper()
	p := &ferryv1.Promotion{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: promotionNamespace}}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"e2e.ferry.dev/poked-at":%q}}}`, time.Now().Format(time.RFC3339Nano))
	if err := h.c.Patch(h.t.Context(), p, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		h.t.Fatalf("poking Promotion %s: %v", name, err)
	}
}

// eventReasons lists the reasons of the events recorded on the Promotion, oldest first.
func (h *harness) eventReasons(name string) []string {
	h.t.Helper()
	list, err := h.kube.EventsV1().Events(promotionNamespace).List(h.t.Context(), metav1.ListOptions{})
	if err != nil {
		h.t.Fatalf("listing events: %v", err)
	}
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Promotion" && e.Regarding.Name == name {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

// stageStatus returns the named stage's status, or fails the test.
func stageStatus(t *testing.T, p *ferryv1.Promotion, name string) *ferryv1.StageStatus {
	t.Helper()
	for i := range p.Status.Stages {
		if p.Status.Stages[i].Name == name {
			return &p.Status.Stages[i]
		}
	}
	t.Fatalf("Promotion %s has no status for stage %s:\n%s", p.Name, name, describe(p))
	return nil
}

func findStage(p *ferryv1.Promotion, name string) *ferryv1.StageStatus {
	for i := range p.Status.Stages {
		if p.Status.Stages[i].Name == name {
			return &p.Status.Stages[i]
		}
	}
	return nil
}

// settledOn reports whether the stage runs digest with nothing in flight, in phase.
func settledOn(p *ferryv1.Promotion, stage, digest string, phase ferryv1.StagePhase) bool {
	st := findStage(p, stage)
	return st != nil && st.Digest == digest && st.InFlightDigest == "" && st.Phase == phase
}

// describe is a readable dump of a Promotion's status for failure messages.
func describe(p *ferryv1.Promotion) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  summary: %s\n", p.Status.Summary)
	if c := p.Status.Candidate; c != nil {
		fmt.Fprintf(&b, "  candidate: %s tag=%s verified=%v signers=%v %s\n", c.Digest, c.Tag, c.Verified, c.Signers, c.Message)
	}
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, "  condition %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
	}
	for _, st := range p.Status.Stages {
		fmt.Fprintf(&b, "  stage %s: %s digest=%s inFlight=%s commit=%s: %s\n", st.Name, st.Phase, st.Digest,
			st.InFlightDigest, shortSHA(st.LastCommit), st.Message)
		if st.Hold != nil {
			fmt.Fprintf(&b, "    hold: %+v\n", *st.Hold)
		}
		for _, e := range st.History {
			fmt.Fprintf(&b, "    history: %s %s approver=%s commit=%s %s\n", e.Digest, e.Outcome, e.Approver, shortSHA(e.CommitSHA), e.Reason)
		}
	}
	return b.String()
}

func readyCondition(p *ferryv1.Promotion) *metav1.Condition {
	return apimeta.FindStatusCondition(p.Status.Conditions, ferryv1.ConditionReady)
}

func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// freePorts reserves n distinct loopback ports and releases them for a process to bind.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// grep reports whether a file contains needle.
func grep(path, needle string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	return err == nil && strings.Contains(string(data), needle)
}
