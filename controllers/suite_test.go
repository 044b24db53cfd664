package controllers

import (
	"context"
	"os"
	gosync "sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

// env is the package's control plane; every test gets its own namespace in it.
var env *testenv.Env

func TestMain(m *testing.M) {
	// Keep test output quiet (stalled Promotions log reconciler errors by design) unless FERRY_TEST_VERBOSE is set.
	level := zapcore.DPanicLevel
	if os.Getenv("FERRY_TEST_VERBOSE") != "" {
		level = zapcore.DebugLevel
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(level)))
	testenv.Main(m, &env)
}

// startManager runs the Promotion reconciler with engines against the test control plane until the test ends;
// configure sets the reconciler's options before it starts.
func startManager(t testing.TB, engines Engines, configure ...func(*PromotionReconciler)) *PromotionReconciler {
	t.Helper()
	r, _ := runManager(t, testenv.Need(t, env), engines, configure...)
	return r
}

// runManager runs the Promotion reconciler with engines against e until the test ends or stop is called.
func runManager(t testing.TB, e *testenv.Env, engines Engines, configure ...func(*PromotionReconciler)) (r *PromotionReconciler, stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:  e.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		// Each test runs its own manager with the same controller.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		// As cmd/ferry-controller runs it: no managed fields, no Secret metadata beyond names.
		Cache: CacheOptions(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r = &PromotionReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("ferry-controller"),
		Engines: engines, LocalConfig: e.Config, Concurrency: 2, DegradedGrace: time.Second}
	for _, c := range configure {
		c(r)
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once gosync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// samplePromotion loads the 3-stage sample shipped in config/samples into namespace ns.
func samplePromotion(t testing.TB, ns string) *ferryv1.Promotion {
	t.Helper()
	p, err := testenv.SamplePromotion(ns)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sampleSecrets returns the Secrets the sample refers to, with content that passes validation.
func sampleSecrets(t testing.TB, ns string) []client.Object {
	t.Helper()
	objs, err := testenv.SampleSecrets(ns)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}
