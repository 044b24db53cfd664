// Command ferry-controller runs Ferry's controller manager: the Promotion reconciler with a Prometheus metrics
// endpoint, health and readiness probes, and leader election so that only one replica acts at a time.
package main

import (
	"context"
	"flag"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/controllers"
	"github.com/ferrycd/ferry/internal/version"
)

func main() {
	var (
		metricsAddr, probeAddr, leaderElectionNamespace string
		leaderElect                                     bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; \"0\" disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", true, "Elect a leader so that only one controller replica acts at a time.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election lease (defaults to the pod's namespace).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	if err := run(ctrl.SetupSignalHandler(), metricsAddr, probeAddr, leaderElect, leaderElectionNamespace); err != nil {
		log.Error(err, "controller manager stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, metricsAddr, probeAddr string, leaderElect bool, leaderNamespace string) error {
	log := ctrl.Log.WithName("setup")
	log.Info("starting ferry-controller", "version", version.Get().String())

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
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "ferry-controller.ferry.dev",
		LeaderElectionNamespace: leaderNamespace,
		// A new leader must not act while the old one may still be acting (Argo Rollouts #2117).
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return err
	}
	r := &controllers.PromotionReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("ferry-controller"),
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
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
