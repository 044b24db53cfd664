// Command bench-controller measures ferry-controller at scale against a real API server: N Promotions × 3 stages
// (1,000 by default) with signed sources in loopback registries and Git repositories behind git http-backend. It
// runs the real controller binary as a child process and prints its memory, the time of a full resync, reconcile
// latency and the time from a registry notification to the dev commit, each with its ratio to the target. It
// asserts nothing about time; docs/benchmarks/controller.md records the figures. With BENCH_ANALYSIS=M it then
// adds an analysis of M metrics to every stage, releases a new version of every application, and measures the
// controller while every dev stage soaks under analysis against a Prometheus API this process serves
// (analysis.go; docs/benchmarks/canary.md records the figures).
package main

import (
	"context"
	"fmt"
	"github.com/ferrycd/ferry/hack/localworld"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/internal/testenv"
)

// Targets from the scale issue.
const (
	targetRSSMiB        = 300
	targetResync        = 60 * time.Second
	targetP99           = time.Second
	targetWebhookCommit = 2 * time.Second // plus the copy time
)

// config comes from the environment, so that `make bench` and a person run the same thing.
type config struct {
	promotions, tenants int
	timeout             time.Duration
	dir                 string // logs, caches and Git repositories of the run, kept for a look afterwards
	// analysisMetrics > 0 adds the analysis phase (see analysis.go): every stage analyses this many metrics
	// at analysisInterval, measured over analysisWindow.
	analysisMetrics                  int
	analysisInterval, analysisWindow time.Duration
	analysisWarmup                   time.Duration // from every dev stage soaking to the window; 3 intervals unless set
}

func main() {
	cfg, err := loadConfig()
	if err == nil {
		err = run(cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-controller:", err)
		os.Exit(1)
	}
}

func loadConfig() (config, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return config{}, err
	}
	c := config{promotions: 1000, tenants: 10, timeout: 45 * time.Minute, dir: filepath.Join(root, "bin", "bench-controller"),
		analysisInterval: 10 * time.Second, analysisWindow: 2 * time.Minute}
	for _, v := range []struct {
		env string
		dst *int
	}{{"BENCH_PROMOTIONS", &c.promotions}, {"BENCH_TENANTS", &c.tenants}} {
		if s := os.Getenv(v.env); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return c, fmt.Errorf("%s=%q: want a positive whole number", v.env, s)
			}
			*v.dst = n
		}
	}
	if s := os.Getenv("BENCH_ANALYSIS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 20 {
			return c, fmt.Errorf("BENCH_ANALYSIS=%q: want the number of metrics, 0 (no analysis) to 20", s)
		}
		c.analysisMetrics = n
	}
	for _, v := range []struct {
		env string
		dst *time.Duration
	}{{"BENCH_TIMEOUT", &c.timeout}, {"BENCH_ANALYSIS_INTERVAL", &c.analysisInterval}, {"BENCH_ANALYSIS_WINDOW", &c.analysisWindow},
		{"BENCH_ANALYSIS_WARMUP", &c.analysisWarmup}} {
		if s := os.Getenv(v.env); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				return c, fmt.Errorf("%s=%q: want a positive duration", v.env, s)
			}
			*v.dst = d
		}
	}
	if c.analysisWarmup == 0 {
		c.analysisWarmup = 3 * c.analysisInterval
	}
	if c.analysisInterval < time.Second {
		return c, fmt.Errorf("BENCH_ANALYSIS_INTERVAL=%s: want at least 1s (the interval is in whole seconds in PromQL)", c.analysisInterval)
	}
	if s := os.Getenv("BENCH_DIR"); s != "" {
		c.dir = s
	}
	c.tenants = min(c.tenants, c.promotions)
	return c, nil
}

// results are the figures of one run.
type results struct {
	first           firstPass
	firstLatency    latency
	firstPeakKiB    int64
	settledRSSKiB   int64
	firstErrors     float64
	hook            webhookRun
	resync          resync
	resyncLatency   latency
	resyncPeakKiB   int64
	resyncRSSKiB    int64
	settledMemory   string
	resyncMemory    string
	rolloutsStalled int
	steps           []stepStats
	analysis        *analysisResults
}

func run(cfg config) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	if err := os.RemoveAll(cfg.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(cfg.dir, "ferry-controller")
	fmt.Printf("==> Building ferry-controller\n")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/ferry-controller").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/ferry-controller: %v\n%s", err, out)
	}

	w := &world{World: localworld.New(cfg.dir)}
	defer w.Stop()
	if err := w.start(); err != nil {
		return err
	}
	fmt.Printf("==> Starting kube-apiserver and etcd (envtest)\n")
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	kubeconfig := filepath.Join(cfg.dir, "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig, "default"); err != nil {
		return err
	}

	f := newFleet(cfg.promotions, cfg.tenants)
	fmt.Printf("==> Seeding %d Promotions × %d stages in %d tenants: Git repositories, signed 1.0.0 images, keys\n",
		cfg.promotions, len(stages), cfg.tenants)
	seeded := time.Now()
	if err := seed(ctx, env.Client, w, f); err != nil {
		return err
	}
	fmt.Printf("  seeded in %s\n", time.Since(seeded).Round(100*time.Millisecond))
	rolls, err := runRollouts(ctx, env.Config)
	if err != nil {
		return err
	}

	var stub *promStub
	if cfg.analysisMetrics > 0 {
		if stub, err = startPromStub(w); err != nil {
			return err
		}
	}

	var res results
	if err := firstRun(ctx, cfg, env.Client, w, f, bin, kubeconfig, &res); err != nil {
		return err
	}
	if err := restartRun(ctx, cfg, env.Client, w, f, bin, kubeconfig, stub, &res); err != nil {
		return err
	}
	res.rolloutsStalled = int(rolls.failures.Load())
	report(cfg, res)
	if res.analysis != nil {
		reportAnalysis(cfg, *res.analysis)
	}
	return nil
}

// firstRun starts the controller on the fleet it has never seen, waits for every stage to be promoted, then
// measures a registry notification on the settled fleet.
func firstRun(ctx context.Context, cfg config, c client.Client, w *world, f fleet, bin, kubeconfig string, res *results) error {
	fmt.Printf("==> Starting ferry-controller on %d Promotions it has never seen (log %s)\n", cfg.promotions,
		filepath.Join(cfg.dir, "controller-1.log"))
	ctl, err := startController(ctx, bin, kubeconfig, cfg.dir, "controller-1.log")
	if err != nil {
		return err
	}
	defer ctl.stop()
	if res.first, err = waitFirstPass(ctx, c, cfg.promotions, ctl.started); err != nil {
		return fmt.Errorf("waiting for the fleet to settle (%s): %w", res.first.last, err)
	}
	fmt.Printf("  every stage promoted after %s\n", res.first.settled.Round(100*time.Millisecond))
	families, err := ctl.scrape()
	if err != nil {
		return err
	}
	if res.firstLatency, err = reconcileLatency(families); err != nil {
		return err
	}
	res.firstErrors = sumValues(promotionSeries(families, "controller_runtime_reconcile_errors_total", nil))
	mem, err := ctl.readMemory()
	if err != nil {
		return err
	}
	res.settledRSSKiB = mem.rssKiB
	res.settledMemory = runtimeBreakdown(mem, families)
	ctl.saveProfile(filepath.Join(cfg.dir, "heap-settled.pprof"))
	if res.steps, err = stepBreakdown(ctx, c, f); err != nil {
		return err
	}

	fmt.Printf("==> Registry notification for %s on the settled fleet\n", f.apps[0].source())
	if res.hook, err = measureWebhook(ctx, c, w, ctl, f.apps[0]); err != nil {
		return err
	}
	fmt.Printf("  dev commit of %s on the Git server %s after the notification\n", res.hook.digest,
		res.hook.toCommit.Round(time.Millisecond))
	// Let the new digest reach prod, so that the restarted controller finds a quiet, settled fleet.
	if _, err := waitFirstPass(ctx, c, cfg.promotions, ctl.started); err != nil {
		return fmt.Errorf("waiting for 1.1.0 to settle: %w", err)
	}
	res.firstPeakKiB = max(ctl.peak(), mem.hwmKiB)
	return nil
}

// restartRun restarts the controller on the settled fleet and times its full resync; with an analysis, the
// restarted controller then runs the analysis phase.
func restartRun(ctx context.Context, cfg config, c client.Client, w *world, f fleet, bin, kubeconfig string, stub *promStub, res *results) error {
	fmt.Printf("==> Restarting ferry-controller: full resync of %d settled Promotions (log %s)\n", cfg.promotions,
		filepath.Join(cfg.dir, "controller-2.log"))
	ctl, err := startController(ctx, bin, kubeconfig, cfg.dir, "controller-2.log")
	if err != nil {
		return err
	}
	defer ctl.stop()
	if res.resync, err = waitResync(ctx, ctl, cfg.promotions); err != nil {
		return fmt.Errorf("waiting for the resync: %w", err)
	}
	families, err := ctl.scrape()
	if err != nil {
		return err
	}
	if res.resyncLatency, err = reconcileLatency(families); err != nil {
		return err
	}
	mem, err := ctl.readMemory()
	if err != nil {
		return err
	}
	res.resyncRSSKiB, res.resyncPeakKiB = mem.rssKiB, max(ctl.peak(), mem.hwmKiB)
	res.resyncMemory = runtimeBreakdown(mem, families)
	ctl.saveProfile(filepath.Join(cfg.dir, "heap-resync.pprof"))
	if stub == nil {
		return nil
	}
	a, err := analysisRun(ctx, cfg, c, w, f, ctl, stub)
	if err != nil {
		return fmt.Errorf("analysis phase: %w", err)
	}
	res.analysis = &a
	return nil
}

// report prints every figure with its ratio to the target (below 1 meets it).
func report(cfg config, r results) {
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	sec := func(d time.Duration) float64 { return d.Seconds() }
	fmt.Printf("\n==> ferry-controller, %d Promotions × %d stages, %d tenants, %d CPUs\n", cfg.promotions, len(stages), cfg.tenants, runtime.NumCPU())
	fmt.Printf("%-58s %12s %10s %7s\n", "figure", "measured", "target", "ratio")
	line := func(name string, v, target float64, unit string) {
		fmt.Printf("%-58s %9.2f %-3s %7.2f %-2s %7.2f\n", name, v, unit, target, unit, v/target)
	}
	info := func(name string, v float64, unit string) { fmt.Printf("%-58s %9.2f %-3s\n", name, v, unit) }
	line("peak RSS (VmHWM), first run: promote every stage", mib(r.firstPeakKiB), targetRSSMiB, "MiB")
	info("RSS (VmRSS) with the fleet settled", mib(r.settledRSSKiB), "MiB")
	line("peak RSS (VmHWM), restarted controller after its resync", mib(r.resyncPeakKiB), targetRSSMiB, "MiB")
	line("full resync: restart -> every Promotion reconciled", sec(r.resync.took), sec(targetResync), "s")
	info("first pass: start -> every Promotion observed", sec(r.first.observed), "s")
	info("first run: start -> every stage of every Promotion promoted", sec(r.first.settled), "s")
	line("reconcile p50, resync", r.resyncLatency.p50, sec(targetP99), "s")
	line("reconcile p99, resync", r.resyncLatency.p99, sec(targetP99), "s")
	line("reconcile p50, first run (promotion steps)", r.firstLatency.p50, sec(targetP99), "s")
	line("reconcile p99, first run (promotion steps)", r.firstLatency.p99, sec(targetP99), "s")
	budget := targetWebhookCommit + r.hook.copyTime
	line("notification -> dev commit on the Git server (target 2 s + copy)", sec(r.hook.toCommit), sec(budget), "s")
	info("  of which copy + re-verify (events Copied - PromotionStarted)", sec(r.hook.copyTime), "s")
	info("  notification -> PromotionStarted event (discover + verify)", sec(r.hook.toStarted), "s")
	info("  notification -> Committed event", sec(r.hook.toCommittedEvt), "s")
	info("  CI push + sign of 1.1.0 (before the notification)", sec(r.hook.pushAndSign), "s")
	fmt.Printf("reconciles: first run %d (mean %.3f s, %.0f errors), resync %d (mean %.3f s, %.0f counted); rollout status write failures %d\n",
		r.firstLatency.count, mean(r.firstLatency), r.firstErrors, r.resyncLatency.count, mean(r.resyncLatency),
		r.resync.reconciles, r.rolloutsStalled)
	fmt.Printf("memory, fleet settled: %s\nmemory, after the resync: %s\n", r.settledMemory, r.resyncMemory)
	fmt.Printf("\nfirst run, per stage step (from the controller's events): %-8s %9s %9s %9s %6s\n", "stages", "p50", "p99", "max", ">=5s")
	for _, s := range r.steps {
		fmt.Printf("  %-56s %8d %9s %9s %9s %6d\n", s.name, s.n, s.p50.Round(time.Millisecond), s.p99.Round(time.Millisecond), s.max.Round(time.Millisecond), s.slow)
	}
}

func mean(l latency) float64 {
	if l.count == 0 {
		return 0
	}
	return l.sum / float64(l.count)
}
