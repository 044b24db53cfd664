// Command ferry-controller runs Ferry's controller manager: the Promotion reconciler with a Prometheus metrics
// endpoint, health and readiness probes, and leader election so that only one replica acts at a time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/controllers"
	"github.com/ferrycd/ferry/internal/gitops"
	"github.com/ferrycd/ferry/internal/metrics"
	"github.com/ferrycd/ferry/internal/scm"
	"github.com/ferrycd/ferry/internal/version"
	"github.com/ferrycd/ferry/internal/webhook"
)

func main() {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; \"0\" disables it.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.StringVar(&o.pprofAddr, "pprof-bind-address", "0", "Address Go's /debug/pprof profiles bind to, for memory and CPU investigations; \"0\" (the default) disables them.")
	flag.BoolVar(&o.leaderElect, "leader-elect", true, "Elect a leader so that only one controller replica acts at a time.")
	flag.StringVar(&o.leaderNamespace, "leader-election-namespace", "", "Namespace of the leader election lease (defaults to the pod's namespace).")
	flag.StringVar(&o.webhookAddr, "webhook-bind-address", ":9090", "Address the registry push notification endpoint (POST /registry) binds to; \"0\" disables it.")
	flag.StringVar(&o.webhookTokenFile, "webhook-token-file", "", "File holding the bearer token registry notifications must present (none: no token needed).")
	flag.IntVar(&o.concurrency, "concurrency", 4, "How many Promotions are reconciled at once.")
	flag.StringVar(&o.cacheDir, "cache-dir", filepath.Join(os.TempDir(), "ferry"), "Folder for Git workspaces and checkouts; it must belong to this process alone.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		log.Error(err, "controller manager stopped")
		os.Exit(1)
	}
}

// options are the controller manager's flags.
type options struct {
	metricsAddr, probeAddr, pprofAddr, leaderNamespace, cacheDir string
	webhookAddr, webhookTokenFile                                string
	leaderElect                                                  bool
	concurrency                                                  int
}

func run(ctx context.Context, o options) error {
	log := ctrl.Log.WithName("setup")
	log.Info("starting ferry-controller", "version", version.Get().String())
	log.Info("memory", "gcPercent", applyGCDefaults(), "softLimitBytes", applyContainerMemoryLimit(cgroupLimitFiles))

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := ferryv1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		// Managed fields are a large share of every cached object and the reconciler needs them only to name
		// who set an annotation, which it reads from the API server then.
		Cache:                   cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "ferry-controller.ferry.dev",
		LeaderElectionNamespace: o.leaderNamespace,
		// A new leader must not act while the old one may still be acting (Argo Rollouts #2117).
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return err
	}
	engines, err := newEngines(o.cacheDir)
	if err != nil {
		return err
	}
	recorder, err := metrics.New(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	r := &controllers.PromotionReconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Recorder:    mgr.GetEventRecorder("ferry-controller"),
		Engines:     engines,
		LocalConfig: cfg,
		Metrics:     recorder,
		Concurrency: o.concurrency,
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	if err := addWebhook(mgr, r, o); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// newEngines builds the engines the pipeline drives, with their working folders under cacheDir.
func newEngines(cacheDir string) (controllers.Engines, error) {
	workDir := filepath.Join(cacheDir, "checkouts")
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return controllers.Engines{}, err
	}
	git, err := gitops.New(gitops.Options{CacheDir: filepath.Join(cacheDir, "git")})
	if err != nil {
		return controllers.Engines{}, err
	}
	return controllers.Engines{Git: git, NewSCM: scm.New, Sync: controllers.NewGitopsSyncer(), WorkDir: workDir}, nil
}

// addWebhook serves registry push notifications, which make the Promotions following a repository reconcile at
// once; polling stays the fallback.
func addWebhook(mgr ctrl.Manager, r *controllers.PromotionReconciler, o options) error {
	if o.webhookAddr == "0" {
		return nil
	}
	h := &webhook.Handler{Pushed: r.Pushed}
	if o.webhookTokenFile != "" {
		token, err := os.ReadFile(o.webhookTokenFile)
		if err != nil {
			return fmt.Errorf("reading --webhook-token-file: %w", err)
		}
		h.Token = strings.TrimSpace(string(token))
	}
	mux := http.NewServeMux()
	mux.Handle("/registry", h)
	ws := &webhookServer{srv: &http.Server{Addr: o.webhookAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	if err := mgr.AddReadyzCheck("webhook", ws.ready); err != nil {
		return err
	}
	return mgr.Add(ws)
}

// webhookServer runs on every replica, leader or not, so that a Service may route notifications to any of them.
type webhookServer struct {
	srv       *http.Server
	listening atomic.Bool
}

func (w *webhookServer) Start(ctx context.Context) error {
	l, err := net.Listen("tcp", w.srv.Addr)
	if err != nil {
		return fmt.Errorf("registry webhook: %w", err)
	}
	w.listening.Store(true)
	go func() {
		<-ctx.Done()
		_ = w.srv.Close()
	}()
	if err := w.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("registry webhook: %w", err)
	}
	return nil
}

func (*webhookServer) NeedLeaderElection() bool { return false }

// ready keeps the controller unready until notifications can be received.
func (w *webhookServer) ready(*http.Request) error {
	if !w.listening.Load() {
		return errors.New("the registry webhook is not listening yet")
	}
	return nil
}
