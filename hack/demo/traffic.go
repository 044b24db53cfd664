package main

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/internal/canary"
	"github.com/ferrycd/ferry/internal/promserver"
)

// Prod's users, as the demo plays them: kwok's pods serve nothing, so the demo counts the requests each ready pod
// would have answered, split by pod as a Service would, in http_requests_total{namespace,track,code}. The error
// ratio follows the digest a pod runs: every release answers healthyErrorRatio of its requests with a 500, unless
// the demo made it a bad build.
const (
	requestsPerPod    = 50.0 // per second
	healthyErrorRatio = 0.01
	badErrorRatio     = 0.30 // of the bad build the demo releases last
	trafficTick       = 200 * time.Millisecond
	stableTrack       = "stable" // the track of pods without ferry.dev/track
)

// traffic is the demo's exporter of prod's requests.
type traffic struct {
	c         client.Client
	namespace string
	requests  *prometheus.CounterVec
	handler   http.Handler

	mu     sync.Mutex
	faults map[string]float64 // error ratio by digest
	tracks map[string]*trackCount
	names  map[string]string // version by digest, for the demo's output
	view   string            // the pods serving the traffic, by track and version
}

// trackCount is what a track answered since its pods appeared; the counters export the whole part.
type trackCount struct {
	requests, errors float64
	exported         [2]float64 // 200s and 500s already added to the counters
}

func newTraffic(c client.Client, namespace string) *traffic {
	reg := prometheus.NewRegistry()
	t := &traffic{c: c, namespace: namespace, faults: map[string]float64{}, tracks: map[string]*trackCount{}, names: map[string]string{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total",
			Help: "Requests to shop answered by prod's pods, as the demo plays them."}, []string{"namespace", "track", "code"})}
	reg.MustRegister(t.requests)
	t.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return t
}

// fail makes digest a bad build: its pods answer ratio of their requests with a 500.
func (t *traffic) fail(digest string, ratio float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.faults[digest] = ratio
}

// name remembers the version digest was pushed as.
func (t *traffic) name(digest, version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.names[digest] = version
}

// version names digest by its version, or by itself.
func (t *traffic) version(digest string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.names[digest]; ok {
		return v
	}
	return digest
}

// serving says which ready pods the traffic reaches now, for example "stable 2 × 1.0.0, canary 1 × 1.1.0".
func (t *traffic) serving() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.view
}

// run plays the traffic until ctx ends.
func (t *traffic) run(ctx context.Context) {
	tick := time.NewTicker(trafficTick)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			t.play(ctx, now.Sub(last).Seconds())
			last = now
		}
	}
}

// play counts dt seconds of requests to the namespace's ready pods. A track whose pods are all gone loses its
// series, as a scraped pod's would.
func (t *traffic) play(ctx context.Context, dt float64) {
	var list corev1.PodList
	if err := t.c.List(ctx, &list, client.InNamespace(t.namespace)); err != nil {
		return // the cluster is busy or stopping; the next tick tries again
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	served := map[string]bool{}
	pods := map[string]map[string]int{} // ready pods by track and version
	for i := range list.Items {
		p := &list.Items[i]
		if !ready(p) || len(p.Spec.Containers) == 0 {
			continue
		}
		track := p.Labels[canary.TrackLabel]
		if track == "" {
			track = stableTrack
		}
		digest := digestOf(p.Spec.Containers[0].Image)
		ratio, bad := t.faults[digest]
		if !bad {
			ratio = healthyErrorRatio
		}
		tc := t.tracks[track]
		if tc == nil {
			tc = &trackCount{}
			t.tracks[track] = tc
			for _, code := range []string{"200", "500"} { // both series from the start: a ratio needs its 5xx series at 0
				t.requests.WithLabelValues(t.namespace, track, code)
			}
		}
		n := requestsPerPod * dt
		tc.requests += n
		tc.errors += n * ratio
		served[track] = true
		if pods[track] == nil {
			pods[track] = map[string]int{}
		}
		version := t.names[digest]
		if version == "" {
			version = digest
		}
		if bad {
			version += fmt.Sprintf(" (%.0f%% errors)", 100*ratio)
		}
		pods[track][version]++
	}
	t.view = describePods(pods)
	for track, tc := range t.tracks {
		if !served[track] {
			t.requests.DeleteLabelValues(t.namespace, track, "200")
			t.requests.DeleteLabelValues(t.namespace, track, "500")
			delete(t.tracks, track)
			continue
		}
		errs := math.Floor(tc.errors)
		oks := math.Floor(tc.requests) - errs
		t.requests.WithLabelValues(t.namespace, track, "200").Add(max(0, oks-tc.exported[0]))
		t.requests.WithLabelValues(t.namespace, track, "500").Add(errs - tc.exported[1])
		tc.exported = [2]float64{max(oks, tc.exported[0]), errs}
	}
}

// describePods lists ready pods by track (stable first) and version.
func describePods(pods map[string]map[string]int) string {
	var parts []string
	for _, track := range []string{stableTrack, canary.TrackCanary, canary.TrackBaseline} {
		versions := slices.Sorted(maps.Keys(pods[track]))
		for _, v := range versions {
			parts = append(parts, fmt.Sprintf("%s %d × %s", track, pods[track][v], v))
		}
	}
	if len(parts) == 0 {
		return "no ready pod"
	}
	return strings.Join(parts, ", ")
}

func ready(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// digestOf is the digest of an image reference pinned by digest, or "".
func digestOf(image string) string {
	if _, digest, ok := strings.Cut(image, "@"); ok {
		return digest
	}
	return ""
}

// startPrometheus serves the traffic exporter and starts a real Prometheus (Debian's package) scraping it twice
// a second; its configuration, storage and log stay in .demo/prometheus.
func (d *demo) startPrometheus(ctx context.Context) error {
	d.traffic = newTraffic(d.c, "shop-prod")
	exporter, err := d.w.Serve(d.traffic.handler)
	if err != nil {
		return err
	}
	playing, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.traffic.run(playing) }()
	d.w.OnStop(func() { stop(); <-done })

	logFile, err := os.Create(filepath.Join(d.state, "prometheus.log"))
	if err != nil {
		return err
	}
	started := time.Now()
	prom, err := promserver.Start(ctx, promserver.Options{Prometheus: os.Getenv("FERRY_PROMETHEUS"),
		Targets: []string{exporter}, ScrapeInterval: 500 * time.Millisecond, Dir: filepath.Join(d.state, "prometheus"), Log: logFile})
	if err != nil {
		_ = logFile.Close()
		return fmt.Errorf("starting Prometheus (log: .demo/prometheus.log): %w", err)
	}
	d.w.OnStop(func() {
		_ = prom.Close()
		_ = logFile.Close()
	})
	d.prometheus = prom.URL
	fmt.Printf("  Prometheus %s ready in %s, scraping the exporter at %s every 500ms\n", prom.URL,
		time.Since(started).Round(100*time.Millisecond), exporter)
	fmt.Printf("  prod's traffic, played by the demo: %.0f requests/s per ready pod, %.0f%% of them answered with a 500\n",
		requestsPerPod, 100*healthyErrorRatio)
	return nil
}
