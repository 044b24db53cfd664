package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// controller is one run of the real ferry-controller binary as a child process, so that its memory is its own.
type controller struct {
	cmd        *exec.Cmd
	log        *os.File
	metrics    string // http://127.0.0.1:port/metrics
	webhook    string // http://127.0.0.1:port/registry
	token      string // the bearer token the webhook requires
	pprof      string // http://127.0.0.1:port/debug/pprof/
	started    time.Time
	peakRSSKiB int64
	// windowRSSKiB is the highest VmRSS sampled since the last resetPeak (0: no window open).
	windowRSSKiB int64
	windowOpen   bool

	stopSampling chan struct{}
	sampled      sync.WaitGroup
	mu           sync.Mutex
}

// startController starts bin at kubeconfig and waits for its readiness probe.
func startController(ctx context.Context, bin, kubeconfig, dir, logName string) (*controller, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, logName))
	if err != nil {
		return nil, err
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	// The registry webhook accepts only callers that prove a shared secret: a random token, as a registry's
	// notification endpoint would be configured with.
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	token := hex.EncodeToString(secret)
	tokenFile := filepath.Join(dir, "webhook-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--kubeconfig", kubeconfig, "--leader-elect=false",
		"--metrics-bind-address="+addr(ports[0]), "--metrics-secure=false", "--health-probe-bind-address="+addr(ports[1]),
		"--webhook-bind-address="+addr(ports[2]), "--webhook-token-file="+tokenFile,
		"--pprof-bind-address="+addr(ports[3]), "--cache-dir", filepath.Join(dir, "cache"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	c := &controller{cmd: cmd, log: logFile, token: token, metrics: "http://" + addr(ports[0]) + "/metrics",
		webhook: "http://" + addr(ports[2]) + "/registry", pprof: "http://" + addr(ports[3]) + "/debug/pprof/",
		stopSampling: make(chan struct{})}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	c.sampled.Add(1)
	go c.sampleRSS()
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := waitFor(waitCtx, 100*time.Millisecond, func() (bool, error) {
		resp, err := http.Get("http://" + addr(ports[1]) + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		c.stop()
		return nil, fmt.Errorf("waiting for the controller to be ready (log %s): %w", logFile.Name(), err)
	}
	return c, nil
}

// notify sends the registry notification for a push to repository (host/path), with the webhook's token, and
// returns an error unless the controller accepted it.
func (c *controller) notify(repository string) error {
	body := fmt.Sprintf(`{"repository":%q}`, repository)
	req, err := http.NewRequest(http.MethodPost, c.webhook, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("notifying %s: %w", c.webhook, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("webhook answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// stop interrupts the controller, waits for it to exit and stops sampling.
func (c *controller) stop() {
	_ = c.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
	close(c.stopSampling)
	c.sampled.Wait()
	_ = c.log.Close()
}

// memory is the controller's resident memory as the kernel counts it.
type memory struct{ rssKiB, hwmKiB, anonKiB, fileKiB int64 }

// readMemory reads VmRSS and VmHWM (the peak resident set) from /proc.
func (c *controller) readMemory() (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			m.rssKiB = v
		case "VmHWM:":
			m.hwmKiB = v
		case "RssAnon:":
			m.anonKiB = v
		case "RssFile:":
			m.fileKiB = v
		}
	}
	return m, sc.Err()
}

// sampleRSS keeps the peak VmHWM seen, since /proc disappears when the process exits.
func (c *controller) sampleRSS() {
	defer c.sampled.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if m, err := c.readMemory(); err == nil {
			c.mu.Lock()
			c.peakRSSKiB = max(c.peakRSSKiB, m.hwmKiB)
			if c.windowOpen {
				c.windowRSSKiB = max(c.windowRSSKiB, m.rssKiB)
			}
			c.mu.Unlock()
		}
		select {
		case <-c.stopSampling:
			return
		case <-t.C:
		}
	}
}

// resetPeak opens a measuring window: from now on windowPeak is the highest resident set seen, and the kernel's
// VmHWM is reset to the current RSS (writing 5 to clear_refs), so that it too covers only the window. The
// lifetime peak kept by peak() is not affected.
func (c *controller) resetPeak() error {
	c.mu.Lock()
	c.windowOpen, c.windowRSSKiB = true, 0
	c.mu.Unlock()
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", c.cmd.Process.Pid), []byte("5"), 0)
}

// windowPeak is the highest VmRSS sampled since resetPeak.
func (c *controller) windowPeak() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.windowRSSKiB
}

func (c *controller) peak() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peakRSSKiB
}

// scrape reads the controller's Prometheus endpoint.
func (c *controller) scrape() (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(c.metrics)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", c.metrics, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", c.metrics, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// promotionSeries selects the series of family labelled controller="promotion" (plus extra label matches).
func promotionSeries(families map[string]*dto.MetricFamily, family string, match map[string]string) []*dto.Metric {
	mf := families[family]
	if mf == nil {
		return nil
	}
	var out []*dto.Metric
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["controller"] != "promotion" && labels["name"] != "promotion" {
			continue
		}
		ok := true
		for k, v := range match {
			ok = ok && labels[k] == v
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// sumValues adds the counters or gauges of series.
func sumValues(series []*dto.Metric) float64 {
	var total float64
	for _, m := range series {
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return total
}

// latency is a reconcile-time histogram reduced to what the report needs.
type latency struct {
	count         uint64
	sum           float64
	p50, p99, max float64 // max: the upper bound of the highest non-empty bucket
}

// reconcileLatency reads controller_runtime_reconcile_time_seconds for the promotion controller and estimates
// quantiles from its buckets by linear interpolation, as Prometheus' histogram_quantile does.
func reconcileLatency(families map[string]*dto.MetricFamily) (latency, error) {
	series := promotionSeries(families, "controller_runtime_reconcile_time_seconds", nil)
	if len(series) == 0 || series[0].GetHistogram() == nil {
		return latency{}, errors.New("no controller_runtime_reconcile_time_seconds histogram for controller=\"promotion\"")
	}
	return histogramLatency(series[0].GetHistogram()), nil
}

// histogramLatency reduces a histogram to the report's figures.
func histogramLatency(h *dto.Histogram) latency {
	type bucket struct {
		upper float64
		count uint64
	}
	var buckets []bucket
	for _, b := range h.GetBucket() {
		buckets = append(buckets, bucket{b.GetUpperBound(), b.GetCumulativeCount()})
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].upper < buckets[j].upper })
	l := latency{count: h.GetSampleCount(), sum: h.GetSampleSum()}
	quantile := func(q float64) float64 {
		rank := q * float64(l.count)
		lower, below := 0.0, uint64(0)
		for _, b := range buckets {
			if float64(b.count) >= rank {
				if b.count == below {
					return b.upper
				}
				return lower + (b.upper-lower)*(rank-float64(below))/float64(b.count-below)
			}
			lower, below = b.upper, b.count
		}
		return math.Inf(1) // in the +Inf bucket: beyond the largest bound
	}
	l.p50, l.p99 = quantile(0.50), quantile(0.99)
	prev := uint64(0)
	for _, b := range buckets {
		if b.count > prev {
			l.max = b.upper
		}
		prev = b.count
	}
	if l.count > prev {
		l.max = math.Inf(1)
	}
	return l
}

// freePorts reserves n loopback ports for the controller's listeners.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFor polls cond every interval until it holds, fails, or ctx ends.
func waitFor(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// saveCPUProfile records the controller's CPU profile for d into path; a failure is only reported.
func (c *controller) saveCPUProfile(path string, d time.Duration) {
	url := fmt.Sprintf("%sprofile?seconds=%d", c.pprof, int(d.Seconds()))
	if err := download(url, path, d+30*time.Second); err != nil {
		fmt.Printf("  (CPU profile not saved: %v)\n", err)
	}
}

// saveProfile writes the controller's heap profile to path for `go tool pprof`; a failure is only reported, the
// figures do not depend on it.
func (c *controller) saveProfile(path string) {
	if err := download(c.pprof+"heap", path, time.Minute); err != nil {
		fmt.Printf("  (heap profile not saved: %v)\n", err)
		return
	}
	fmt.Printf("  heap profile: go tool pprof -top %s\n", path)
}

// download writes what GET url answers into path.
func download(url, path string, timeout time.Duration) error {
	resp, err := (&http.Client{Timeout: timeout}).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// runtimeBreakdown says where resident memory goes, from /proc and the Go runtime's own metrics.
func runtimeBreakdown(m memory, families map[string]*dto.MetricFamily) string {
	gauge := func(name string) float64 {
		if mf := families[name]; mf != nil && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
		return 0
	}
	return fmt.Sprintf("RSS %.0f MiB = anonymous %.0f + file-backed %.0f (the binary's pages); Go heap in use %.0f MiB, "+
		"stacks %.0f MiB, %0.f goroutines", float64(m.rssKiB)/1024, float64(m.anonKiB)/1024, float64(m.fileKiB)/1024,
		gauge("go_memstats_heap_inuse_bytes")/(1<<20), gauge("go_memstats_stack_inuse_bytes")/(1<<20), gauge("go_goroutines"))
}
