package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// The analysis phase (BENCH_ANALYSIS=M): after the resync, every stage of every Promotion gets an analysis of M
// metrics against a Prometheus HTTP API this process serves on loopback, and a soak far longer than the run, so
// that a new release (2.0.0 of every application) soaks in dev under analysis while the window is measured.
// A stage takes a digest only once the stage before it has promoted it (soaked), so one stage per Promotion is
// analysed at a time: 1,000 Promotions × M metrics readings per interval.

// analysisSoak is the soak of every stage in the analysis phase: longer than any run, so that dev never
// finishes it and the analysis keeps reading through the window.
const analysisSoak = 6 * time.Hour

// analysisVersion is the release every application gets for the analysis phase.
const analysisVersion = "2.0.0"

// readingsBound is how many readings a stage's analysis status keeps (maxMeasurements in
// controllers/stage_analysis.go, MaxItems of status.stages[].analysis.measurements).
const readingsBound = 120

// metricValue is what the stub answers for a metric: below every metric's max, so every reading passes.
const metricValue = "0.004"

// metricTemplates are realistic analysis queries; each reads two selectors, so a reading costs three queries
// (the value, and the newest-sample time of each selector).
var metricTemplates = []struct{ name, query, max string }{
	{"error-ratio", `sum(rate(http_requests_total{namespace="{{.Namespace}}",app="{{.Promotion}}",track="{{.Track}}",code=~"5.."}[{{.Interval}}]))` +
		` / sum(rate(http_requests_total{namespace="{{.Namespace}}",app="{{.Promotion}}",track="{{.Track}}"}[{{.Interval}}]))`, "0.05"},
	{"slow-ratio", `1 - sum(rate(http_request_duration_seconds_bucket{namespace="{{.Namespace}}",app="{{.Promotion}}",track="{{.Track}}",le="0.5"}[{{.Interval}}]))` +
		` / sum(rate(http_request_duration_seconds_count{namespace="{{.Namespace}}",app="{{.Promotion}}",track="{{.Track}}"}[{{.Interval}}]))`, "0.1"},
	{"cpu-saturation", `sum(rate(container_cpu_usage_seconds_total{namespace="{{.Namespace}}",pod=~"{{.Promotion}}-.*"}[{{.Interval}}]))` +
		` / sum(kube_pod_container_resource_limits{namespace="{{.Namespace}}",pod=~"{{.Promotion}}-.*",resource="cpu"})`, "0.9"},
}

// analysisSpec is the analysis every stage gets: metrics of metricTemplates (cycled, named apart), each with a
// maximum the stub's value stays below.
func analysisSpec(address string, metrics int, every time.Duration) *ferryv1.AnalysisSpec {
	spec := &ferryv1.AnalysisSpec{
		Prometheus: ferryv1.PrometheusSpec{Address: address},
		Interval:   &metav1.Duration{Duration: every},
		MinSamples: 3,
	}
	for k := 0; k < metrics; k++ {
		t := metricTemplates[k%len(metricTemplates)]
		name := t.name
		if k >= len(metricTemplates) {
			name = fmt.Sprintf("%s-%d", t.name, k/len(metricTemplates)+1)
		}
		spec.Metrics = append(spec.Metrics, ferryv1.MetricSpec{Name: name, Query: t.query, Max: ptr(t.max)})
	}
	return spec
}

func ptr[T any](v T) *T { return &v }

// promStub answers the Prometheus HTTP API's instant queries at once with one series: metricValue, or for a
// freshness query (timestamp(...)) the current time, so every sample is fresh. It counts what it answers.
type promStub struct {
	address           string // http://127.0.0.1:port
	values, freshness atomic.Int64
	other             atomic.Int64 // requests that are not instant queries
	// The busiest wall-clock second: the second being counted, its queries so far, and the most seen.
	currentSecond, lastSecond, busiestSecondCounts atomic.Int64
}

func startPromStub(w *world) (*promStub, error) {
	s := &promStub{}
	hostPort, err := w.Serve(http.HandlerFunc(s.serve))
	if err != nil {
		return nil, err
	}
	s.address = "http://" + hostPort
	return s, nil
}

func (s *promStub) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		s.other.Add(1)
		http.NotFound(w, r)
		return
	}
	now := time.Now()
	s.countSecond(now.Unix())
	value := metricValue
	if strings.Contains(r.FormValue("query"), "timestamp(") {
		s.freshness.Add(1)
		value = strconv.FormatInt(now.Unix(), 10)
	} else {
		s.values.Add(1)
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[%d,%q]}]}}`, now.Unix(), value)
}

// countSecond keeps the most queries answered in one wall-clock second (approximate under races: a figure of
// burstiness, not an account).
func (s *promStub) countSecond(sec int64) {
	if s.currentSecond.Swap(sec) != sec {
		s.lastSecond.Store(0)
	}
	n := s.lastSecond.Add(1)
	for {
		m := s.busiestSecondCounts.Load()
		if n <= m || s.busiestSecondCounts.CompareAndSwap(m, n) {
			return
		}
	}
}

func (s *promStub) queries() int64 { return s.values.Load() + s.freshness.Load() }

// cpuTicks is a process's user + system CPU time from /proc/<pid>/stat, in clock ticks (USER_HZ, 100 a second
// on Linux).
func cpuTicks(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%s/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return utime + stime, nil
}

const clockTicks = 100

// machineCPU is the whole machine's busy and total time from /proc/stat, in clock ticks.
func machineCPU() (busy, total int64, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, fmt.Errorf("/proc/stat: empty")
	}
	fields := strings.Fields(sc.Text()) // cpu user nice system idle iowait irq softirq steal ...
	for k, v := range fields[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if k >= 8 { // guest time is already counted in user
			break
		}
		total += n
		if k != 3 && k != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuMark is the CPU counters at one instant.
type cpuMark struct {
	at                   time.Time
	controller, self     int64
	apiServer            int64 // envtest's kube-apiserver and etcd, children of this process
	machineBusy, machine int64
}

func markCPU(ctl *controller) (cpuMark, error) {
	m := cpuMark{at: time.Now()}
	var err error
	if m.controller, err = cpuTicks(strconv.Itoa(ctl.cmd.Process.Pid)); err != nil {
		return m, err
	}
	if m.self, err = cpuTicks("self"); err != nil {
		return m, err
	}
	for _, pid := range controlPlane() {
		if t, err := cpuTicks(pid); err == nil {
			m.apiServer += t
		}
	}
	m.machineBusy, m.machine, err = machineCPU()
	return m, err
}

// controlPlane finds envtest's etcd and kube-apiserver: the children of this process by those names.
func controlPlane() []string {
	self := strconv.Itoa(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		comm := string(b[open+1 : end])
		f := strings.Fields(string(b[end+1:])) // state ppid ...
		if len(f) > 1 && f[1] == self && (comm == "etcd" || comm == "kube-apiserver") {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// analysisResults are the figures of the analysis window.
type analysisResults struct {
	metrics          int
	interval         time.Duration
	window           time.Duration
	stages           int           // stages analysing (soaking with readings) when the window began
	toSoaking        time.Duration // release notified -> every dev stage soaking with a reading
	released         time.Duration // releasing and notifying 2.0.0 of every application
	warmup           time.Duration
	values, fresh    int64 // queries answered in the window
	busiestSecond    int64
	ctlCPU, selfCPU  float64 // CPU seconds over the window
	apiServerCPU     float64 // envtest's kube-apiserver and etcd, CPU seconds over the window
	machineBusyCores float64 // the machine's busy cores over the window, every process and session included
	cores            float64
	loadStart        string
	loadEnd          string
	peakKiB          int64 // peak RSS in the window (VmHWM reset at its start, and sampled VmRSS)
	peakFromHWM      bool
	wavePeakKiB      int64   // the restarted controller's peak before the window: its resync, then the release's wave
	waveAllocated    float64 // bytes the controller allocated from the end of the resync to the window
	startRSSKiB      int64
	endRSSKiB        int64
	memory           string // breakdown at the end of the window
	latency          latency
	reconciles       float64
	errors           float64
	queueDepth       float64
	statusBytes      struct{ mean, max, total int64 }
	measurements     struct{ mean, max float64 } // per analysing stage at the window's end
	analysisBytes    int64                       // JSON of the analysing stages' status.stages[].analysis, summed
	readingBytes     int64                       // of which their measurements
	kept             []float64                   // readings kept by each analysing dev stage
	notSoaking       []string                    // dev stages that left the soak (failed, held) or never reached it
	notified         int
	notifyFailed     int
	logErrors        int
	logSample        []string
	apiRequests      map[string]float64 // the controller's requests to the API server in the window, by method
	events           map[string]int     // events the controller emitted in the window (occurrences), by reason
}

// analysisRun adds the analysis to every stage, releases analysisVersion of every application and notifies the
// controller, waits until every dev stage soaks under analysis, then measures the controller over the window.
func analysisRun(ctx context.Context, cfg config, c client.Client, w *world, f fleet, ctl *controller, stub *promStub) (analysisResults, error) {
	r := analysisResults{metrics: cfg.analysisMetrics, interval: cfg.analysisInterval, window: cfg.analysisWindow,
		warmup: cfg.analysisWarmup}
	fmt.Printf("==> Analysis: %d metrics every %s on every stage of every Promotion, soak %s; Prometheus API stub at %s\n",
		cfg.analysisMetrics, cfg.analysisInterval, analysisSoak, stub.address)
	spec := analysisSpec(stub.address, cfg.analysisMetrics, cfg.analysisInterval)
	resynced, err := ctl.scrape()
	if err != nil {
		return r, err
	}
	if err := parallel(len(f.apps), 8, func(i int) error {
		var p ferryv1.Promotion
		if err := c.Get(ctx, client.ObjectKey{Namespace: f.apps[i].tenant, Name: f.apps[i].name}, &p); err != nil {
			return err
		}
		orig := p.DeepCopy()
		for k := range p.Spec.Stages {
			p.Spec.Stages[k].Analysis = spec.DeepCopy()
			p.Spec.Stages[k].Gates.Soak = &metav1.Duration{Duration: analysisSoak}
		}
		if err := c.Patch(ctx, &p, client.MergeFrom(orig)); err != nil {
			return fmt.Errorf("adding the analysis to Promotion %s/%s: %w", p.Namespace, p.Name, err)
		}
		return nil
	}); err != nil {
		return r, err
	}

	fmt.Printf("  releasing %s of every application (push, sign, registry notification)\n", analysisVersion)
	began := time.Now()
	digests := make([]string, len(f.apps))
	var notified, failed atomic.Int64
	if err := parallel(len(f.apps), 8, func(i int) error {
		a := f.apps[i]
		d, err := w.release(a.source(), analysisVersion)
		if err != nil {
			return err
		}
		digests[i] = d.DigestStr()
		if err := ctl.notify(w.SourceRegistry + "/" + a.source()); err != nil {
			failed.Add(1) // polling finds the digest at the source's interval
			if failed.Load() == 1 {
				fmt.Printf("  (notification refused: %v)\n", err)
			}
		} else {
			notified.Add(1)
		}
		return nil
	}); err != nil {
		return r, err
	}
	r.released = time.Since(began)
	r.notified, r.notifyFailed = int(notified.Load()), int(failed.Load())
	fmt.Printf("  released and notified in %s (%d notifications accepted, %d not)\n", r.released.Round(100*time.Millisecond),
		r.notified, r.notifyFailed)

	want := map[string]string{}
	for i, a := range f.apps {
		want[a.tenant+"/"+a.name] = digests[i]
	}
	lastPrint := time.Now()
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	var last soakProgress
	if err := waitFor(waitCtx, 3*time.Second, func() (bool, error) {
		p, err := lookSoak(ctx, c, want)
		if err != nil {
			return false, err
		}
		last = p
		if p.measured == len(f.apps) {
			return true, nil
		}
		if len(p.off) > 0 {
			return false, fmt.Errorf("dev stages left the soak: %s", strings.Join(p.off, "; "))
		}
		if time.Since(lastPrint) >= 15*time.Second {
			lastPrint = time.Now()
			fmt.Printf("  %s: %s\n", time.Since(began).Round(time.Second), p)
		}
		return false, nil
	}); err != nil {
		return r, fmt.Errorf("waiting for every dev stage to soak under analysis (%s): %w", last, err)
	}
	r.toSoaking = time.Since(began)
	r.stages = last.measured
	fmt.Printf("  every dev stage soaking under analysis %s after the release began; warming up %s (%d readings a stage)\n",
		r.toSoaking.Round(100*time.Millisecond), r.warmup, int(r.warmup/r.interval))
	if err := sleep(ctx, r.warmup); err != nil {
		return r, err
	}

	// The window: counters at its start, nothing asked of the API server during it, counters at its end.
	logStart := fileSize(ctl.log.Name())
	ctl.saveProfile(filepath.Join(cfg.dir, "heap-analysis-start.pprof"))
	before, err := ctl.scrape()
	if err != nil {
		return r, err
	}
	startMem, err := ctl.readMemory()
	if err != nil {
		return r, err
	}
	r.startRSSKiB = startMem.rssKiB
	r.wavePeakKiB = max(ctl.peak(), startMem.hwmKiB)
	r.waveAllocated = gaugeOf(before, "go_memstats_alloc_bytes_total") - gaugeOf(resynced, "go_memstats_alloc_bytes_total")
	r.peakFromHWM = ctl.resetPeak() == nil
	cpu0, err := markCPU(ctl)
	if err != nil {
		return r, err
	}
	v0, f0 := stub.values.Load(), stub.freshness.Load()
	stub.busiestSecondCounts.Store(0)
	r.loadStart = loadAverage()
	fmt.Printf("  measuring for %s (load average %s)\n", r.window, r.loadStart)
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		ctl.saveCPUProfile(filepath.Join(cfg.dir, "cpu-analysis.pprof"), min(r.window, 30*time.Second))
	}()
	if err := sleep(ctx, r.window); err != nil {
		return r, err
	}
	<-profiled
	cpu1, err := markCPU(ctl)
	if err != nil {
		return r, err
	}
	v1, f1 := stub.values.Load(), stub.freshness.Load()
	r.busiestSecond = stub.busiestSecondCounts.Load()
	r.loadEnd = loadAverage()
	mem, err := ctl.readMemory()
	if err != nil {
		return r, err
	}
	r.peakKiB = ctl.windowPeak()
	if r.peakFromHWM {
		r.peakKiB = max(r.peakKiB, mem.hwmKiB)
	}
	r.endRSSKiB = mem.rssKiB
	after, err := ctl.scrape()
	if err != nil {
		return r, err
	}
	r.memory = runtimeBreakdown(mem, after)
	ctl.saveProfile(filepath.Join(cfg.dir, "heap-analysis.pprof"))

	elapsed := cpu1.at.Sub(cpu0.at).Seconds()
	r.values, r.fresh = v1-v0, f1-f0
	r.ctlCPU = float64(cpu1.controller-cpu0.controller) / clockTicks
	r.selfCPU = float64(cpu1.self-cpu0.self) / clockTicks
	r.apiServerCPU = float64(cpu1.apiServer-cpu0.apiServer) / clockTicks
	if d := cpu1.machine - cpu0.machine; d > 0 {
		r.cores = float64(d) / clockTicks / elapsed
		r.machineBusyCores = float64(cpu1.machineBusy-cpu0.machineBusy) / clockTicks / elapsed
	}
	r.window = cpu1.at.Sub(cpu0.at)
	r.latency, _ = reconcileLatencyBetween(before, after)
	r.reconciles = sumValues(promotionSeries(after, "controller_runtime_reconcile_total", nil)) -
		sumValues(promotionSeries(before, "controller_runtime_reconcile_total", nil))
	r.errors = sumValues(promotionSeries(after, "controller_runtime_reconcile_errors_total", nil)) -
		sumValues(promotionSeries(before, "controller_runtime_reconcile_errors_total", nil))
	r.queueDepth = sumValues(promotionSeries(after, "workqueue_depth", nil))
	r.apiRequests = map[string]float64{}
	for _, fam := range []struct {
		scrape map[string]*dto.MetricFamily
		sign   float64
	}{{after, 1}, {before, -1}} {
		for _, m := range fam.scrape["rest_client_requests_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" {
					r.apiRequests[l.GetValue()] += fam.sign * m.GetCounter().GetValue()
				}
			}
		}
	}
	r.logErrors, r.logSample = logErrorsSince(ctl.log.Name(), logStart)

	// After the window: what status holds, and whether every dev stage still soaks.
	if err := statusFigures(ctx, c, want, &r); err != nil {
		return r, err
	}
	if r.events, err = eventsBetween(ctx, c, f, cpu0.at, cpu1.at); err != nil {
		return r, err
	}
	return r, nil
}

// soakProgress counts the dev stages soaking the new release under analysis.
type soakProgress struct {
	taken, soaking, measured int
	off                      []string
}

func (p soakProgress) String() string {
	return fmt.Sprintf("dev took %s: %d, soaking under analysis %d, with a reading %d", analysisVersion, p.taken, p.soaking, p.measured)
}

// lookSoak reads every Promotion's dev stage: has it taken the new digest, is it soaking under analysis, has it
// a reading. A dev stage that failed or is held for a person is "off".
func lookSoak(ctx context.Context, c client.Client, want map[string]string) (soakProgress, error) {
	var list ferryv1.PromotionList
	if err := c.List(ctx, &list); err != nil {
		return soakProgress{}, fmt.Errorf("listing Promotions: %w", err)
	}
	var p soakProgress
	for i := range list.Items {
		pr := &list.Items[i]
		d := want[pr.Namespace+"/"+pr.Name]
		if d == "" || len(pr.Status.Stages) == 0 {
			continue
		}
		st := pr.Status.Stages[0]
		if st.InFlightDigest == d || st.Digest == d {
			p.taken++
		}
		a := st.Analysis
		if a == nil || a.Digest != d {
			continue
		}
		switch {
		case a.Phase == ferryv1.AnalysisFailed || a.Phase == ferryv1.AnalysisHeld:
			p.off = append(p.off, fmt.Sprintf("%s/%s %s: %s", pr.Namespace, pr.Name, a.Phase, a.Message))
		case st.Phase == ferryv1.PhaseSoaking && a.Run == ferryv1.RunSoak:
			p.soaking++
			if a.LastMeasuredAt != nil {
				p.measured++
			}
		}
	}
	return p, nil
}

// statusFigures measures the Promotions' status after the window: its JSON size, the readings it keeps, and
// which dev stages are no longer soaking.
func statusFigures(ctx context.Context, c client.Client, want map[string]string, r *analysisResults) error {
	var list ferryv1.PromotionList
	if err := c.List(ctx, &list); err != nil {
		return fmt.Errorf("listing Promotions: %w", err)
	}
	var sizes []int64
	kept := r.kept[:0]
	defer func() { r.kept = kept }()
	for i := range list.Items {
		pr := &list.Items[i]
		b, err := json.Marshal(pr.Status)
		if err != nil {
			return err
		}
		sizes = append(sizes, int64(len(b)))
		d := want[pr.Namespace+"/"+pr.Name]
		if d == "" || len(pr.Status.Stages) == 0 {
			continue
		}
		st := pr.Status.Stages[0]
		if a := st.Analysis; a == nil || a.Digest != d || st.Phase != ferryv1.PhaseSoaking || a.Phase != ferryv1.AnalysisRunning {
			msg := st.Message
			if a != nil {
				msg = string(a.Phase) + ": " + a.Message
			}
			r.notSoaking = append(r.notSoaking, fmt.Sprintf("%s/%s (%s) %s", pr.Namespace, pr.Name, st.Phase, msg))
		} else {
			kept = append(kept, float64(len(a.Measurements)))
			b, err := json.Marshal(a)
			if err != nil {
				return err
			}
			r.analysisBytes += int64(len(b))
			if b, err = json.Marshal(a.Measurements); err != nil {
				return err
			}
			r.readingBytes += int64(len(b))
		}
	}
	for _, s := range sizes {
		r.statusBytes.total += s
		r.statusBytes.max = max(r.statusBytes.max, s)
	}
	if len(sizes) > 0 {
		r.statusBytes.mean = r.statusBytes.total / int64(len(sizes))
	}
	for _, k := range kept {
		r.measurements.mean += k / float64(len(kept))
		r.measurements.max = max(r.measurements.max, k)
	}
	return nil
}

// eventsBetween counts, by reason, the events in the tenants' namespaces that occurred between from and to: an
// event's own time, or its series' last observation (events.k8s.io/v1 folds repeats into a series).
func eventsBetween(ctx context.Context, c client.Client, f fleet, from, to time.Time) (map[string]int, error) {
	out := map[string]int{}
	for _, t := range f.tenants {
		var list eventsv1.EventList
		if err := c.List(ctx, &list, client.InNamespace(t)); err != nil {
			return nil, fmt.Errorf("listing events in %s: %w", t, err)
		}
		for _, e := range list.Items {
			at := e.EventTime.Time
			n := 1
			if e.Series != nil {
				at, n = e.Series.LastObservedTime.Time, int(e.Series.Count)
			}
			if !at.Before(from) && !at.After(to) {
				out[e.Reason] += n
			}
		}
	}
	return out, nil
}

// logErrorsSince counts the controller's error lines written after offset, and keeps a few.
func logErrorsSince(path string, offset int64) (int, []string) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		return 0, nil
	}
	n := 0
	var sample []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"level":"error"`) || strings.Contains(line, "ERROR") {
			n++
			if len(sample) < 3 {
				sample = append(sample, cutLine(line, 300))
			}
		}
	}
	return n, sample
}

func cutLine(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// gaugeOf is the value of a family's first series, counter or gauge.
func gaugeOf(families map[string]*dto.MetricFamily, name string) float64 {
	if mf := families[name]; mf != nil && len(mf.GetMetric()) > 0 {
		m := mf.GetMetric()[0]
		return m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return 0
}

// reconcileLatencyBetween is the reconcile latency of the reconciles between two scrapes: the difference of the
// two histograms.
func reconcileLatencyBetween(before, after map[string]*dto.MetricFamily) (latency, error) {
	a := promotionSeries(after, "controller_runtime_reconcile_time_seconds", nil)
	b := promotionSeries(before, "controller_runtime_reconcile_time_seconds", nil)
	if len(a) == 0 || a[0].GetHistogram() == nil {
		return latency{}, fmt.Errorf("no reconcile histogram")
	}
	h := a[0].GetHistogram()
	var prev map[float64]uint64
	var prevCount uint64
	var prevSum float64
	if len(b) > 0 && b[0].GetHistogram() != nil {
		prev = map[float64]uint64{}
		for _, bk := range b[0].GetHistogram().GetBucket() {
			prev[bk.GetUpperBound()] = bk.GetCumulativeCount()
		}
		prevCount, prevSum = b[0].GetHistogram().GetSampleCount(), b[0].GetHistogram().GetSampleSum()
	}
	diff := &dto.Histogram{SampleCount: ptr(h.GetSampleCount() - prevCount), SampleSum: ptr(h.GetSampleSum() - prevSum)}
	for _, bk := range h.GetBucket() {
		diff.Bucket = append(diff.Bucket, &dto.Bucket{UpperBound: ptr(bk.GetUpperBound()),
			CumulativeCount: ptr(bk.GetCumulativeCount() - prev[bk.GetUpperBound()])})
	}
	sort.Slice(diff.Bucket, func(i, j int) bool { return diff.Bucket[i].GetUpperBound() < diff.Bucket[j].GetUpperBound() })
	return histogramLatency(diff), nil
}

// reportAnalysis prints the analysis window's figures.
func reportAnalysis(cfg config, r analysisResults) {
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	secs := r.window.Seconds()
	readings := float64(r.values)
	expected := float64(r.stages*r.metrics) / r.interval.Seconds()
	fmt.Printf("\n==> Analysis: %d dev stages soaking under analysis, %d metrics each, every %s (%.0f readings per interval expected), window %s\n",
		r.stages, r.metrics, r.interval, float64(r.stages*r.metrics), r.window.Round(time.Second))
	info := func(name string, v float64, unit string) { fmt.Printf("%-58s %9.2f %-3s\n", name, v, unit) }
	line := func(name string, v, target float64, unit string) {
		fmt.Printf("%-58s %9.2f %-3s %7.2f %-2s %7.2f\n", name, v, unit, target, unit, v/target)
	}
	line("peak RSS while analysing (window)", mib(r.peakKiB), targetRSSMiB, "MiB")
	info("peak RSS before the window: resync, then the 2.0.0 wave", mib(r.wavePeakKiB), "MiB")
	info("  allocated in the wave (syncs patch existing Deployments)", r.waveAllocated/(1<<30), "GiB")
	info("RSS (VmRSS) at the window's start", mib(r.startRSSKiB), "MiB")
	info("RSS (VmRSS) at the window's end", mib(r.endRSSKiB), "MiB")
	info("queries per second served (Prometheus API stub)", float64(r.values+r.fresh)/secs, "/s")
	info("readings per second (value queries)", readings/secs, "/s")
	info("  expected: stages × metrics / interval", expected, "/s")
	if r.values > 0 {
		info("  queries per reading", float64(r.values+r.fresh)/readings, "")
		info("controller CPU per reading", 1000*r.ctlCPU/readings, "ms")
	}
	info("controller CPU over the window", r.ctlCPU/secs, "cor")
	info("benchmark process CPU (stub, rollouts, registries)", r.selfCPU/secs, "cor")
	info("kube-apiserver + etcd CPU", r.apiServerCPU/secs, "cor")
	fmt.Printf("%-58s %9.2f of %.0f cores (load average %s at the start, %s at the end)\n",
		"machine busy over the window (all processes and sessions)", r.machineBusyCores, r.cores, r.loadStart, r.loadEnd)
	info("busiest second (queries)", float64(r.busiestSecond), "")
	if readings > 0 {
		fmt.Printf("%-58s %9.2f %-3s\n", "  each stage read every (stages × metrics / readings per s)", float64(r.stages*r.metrics)/(readings/secs), "s")
	}
	fmt.Printf("reconciles in the window: %.0f (%.1f/s, p50 %.3f s, p99 %.3f s), errors %.0f, work queue depth at the end %.0f\n",
		r.reconciles, r.reconciles/secs, r.latency.p50, r.latency.p99, r.errors, r.queueDepth)
	var methods []string
	for m := range r.apiRequests {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	fmt.Printf("controller -> API server requests in the window:")
	rounds := readings / float64(max(r.metrics, 1))
	for _, m := range methods {
		fmt.Printf(" %s %.0f (%.2f a reading round)", m, r.apiRequests[m], r.apiRequests[m]/max(rounds, 1))
	}
	fmt.Println()
	var reasons []string
	for k := range r.events {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	fmt.Printf("events last seen in the window, by reason (occurrences; a series counts all of its own):")
	for _, k := range reasons {
		fmt.Printf(" %s %d", k, r.events[k])
	}
	if len(reasons) == 0 {
		fmt.Print(" none")
	}
	fmt.Println()
	fmt.Printf("status after the window: mean %.1f KiB per Promotion (max %.1f KiB, all %.1f MiB); readings kept per dev stage mean %.0f, max %.0f (bound %d)\n",
		float64(r.statusBytes.mean)/1024, float64(r.statusBytes.max)/1024, float64(r.statusBytes.total)/(1<<20),
		r.measurements.mean, r.measurements.max, readingsBound)
	if r.measurements.mean > 0 {
		n := float64(len(r.kept))
		perStage, perReading := float64(r.analysisBytes)/n, float64(r.readingBytes)/n/r.measurements.mean
		fmt.Printf("  a dev stage's status.analysis (JSON): %.1f KiB with %.0f readings (%.0f bytes a reading); at the bound of %d readings about %.0f KiB\n",
			perStage/1024, r.measurements.mean, perReading, readingsBound, (perStage+perReading*(readingsBound-r.measurements.mean))/1024)
	}
	fmt.Printf("memory at the window's end: %s\n", r.memory)
	if !r.peakFromHWM {
		fmt.Println("  (peak from VmRSS sampled every 0.5 s: VmHWM could not be reset)")
	}
	fmt.Printf("release %s → every dev stage soaking with a reading: %s (release and notification of all: %s; %d notifications accepted, %d not)\n",
		analysisVersion, r.toSoaking.Round(100*time.Millisecond), r.released.Round(100*time.Millisecond), r.notified, r.notifyFailed)
	fmt.Printf("controller log: %d error lines during the window\n", r.logErrors)
	for _, l := range r.logSample {
		fmt.Printf("  %s\n", l)
	}
	if len(r.notSoaking) > 0 {
		fmt.Printf("dev stages no longer soaking after the window: %d\n", len(r.notSoaking))
		for _, s := range r.notSoaking[:min(5, len(r.notSoaking))] {
			fmt.Printf("  %s\n", s)
		}
	}
	fmt.Printf("CPU profile of the window's first %s: go tool pprof -top %s\n", min(r.window, 30*time.Second).Round(time.Second), filepath.Join(cfg.dir, "cpu-analysis.pprof"))
	fmt.Printf("heap profiles: %s (window start), %s (window end); allocations in the window: go tool pprof -sample_index=alloc_space -base %s %s\n",
		filepath.Join(cfg.dir, "heap-analysis-start.pprof"), filepath.Join(cfg.dir, "heap-analysis.pprof"),
		filepath.Join(cfg.dir, "heap-analysis-start.pprof"), filepath.Join(cfg.dir, "heap-analysis.pprof"))
}
