package analysis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests run the real Prometheus and Pushgateway (Debian's packages, see hack/prometheus.sh) on loopback
// ports, each with a temporary config and storage.

// realTools returns the binaries from FERRY_PROMETHEUS and FERRY_PUSHGATEWAY, or skips the test without them
// (fails it when FERRY_REQUIRE_TOOLS=1, the convention of internal/testenv.RequireTools, read here directly so
// that this package's tests do not link a control plane).
func realTools(t *testing.T) (prometheus, pushgateway string) {
	t.Helper()
	prometheus, pushgateway = os.Getenv("FERRY_PROMETHEUS"), os.Getenv("FERRY_PUSHGATEWAY")
	if prometheus != "" && pushgateway != "" {
		return prometheus, pushgateway
	}
	msg := "FERRY_PROMETHEUS and FERRY_PUSHGATEWAY are not set: " +
		"{ read -r FERRY_PROMETHEUS; read -r FERRY_PUSHGATEWAY; } < <(hack/prometheus.sh), as `make test` does"
	if os.Getenv("FERRY_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return "", ""
}

// process is a server the test started; it is killed when the test ends, or earlier by stop.
type process struct {
	name   string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{}
	log    string
	once   sync.Once
}

func startProcess(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		cancel()
		logFile.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, cancel: cancel, done: make(chan struct{}), log: logPath}
	go func() {
		cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			p.dumpLog(t)
		}
	})
	return p
}

// stop kills the process and waits until it has exited.
func (p *process) stop() {
	p.once.Do(func() {
		p.cancel() // CommandContext kills the process
		<-p.done
	})
}

func (p *process) dumpLog(t *testing.T) {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	t.Logf("last lines of the %s log:\n%s", p.name, strings.Join(lines[max(0, len(lines)-20):], "\n"))
}

// waitReady polls base/-/ready until it answers 200, the process exits, or 30s pass.
func (p *process) waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			p.dumpLog(t)
			t.Fatalf("%s exited before it was ready", p.name)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s after 30s: %v", p.name, base, err)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// eventually polls cond every 100ms until it holds, failing the test with cond's last word after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, status := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exporter serves one gauge for the canary with an explicit timestamp, as federation or an exporter with
// timestamps does, and one for the stable track without. Freezing it keeps serving the canary's last sample with
// its old timestamp: the source has stopped, but Prometheus still has a sample within its lookback delta.
type exporter struct {
	mu     sync.Mutex
	frozen time.Time
}

func (e *exporter) freeze() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.frozen = time.Now()
}

func (e *exporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	ts := e.frozen
	e.mu.Unlock()
	if ts.IsZero() {
		ts = time.Now()
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# TYPE ferry_latency_seconds gauge\n")
	fmt.Fprintf(w, "ferry_latency_seconds{track=\"canary\"} 0.5 %d\n", ts.UnixMilli())
	fmt.Fprintf(w, "ferry_latency_seconds{track=\"stable\"} 0.4\n")
}

// push replaces a Pushgateway group job="ferry",track=<track> with metrics in the text format.
func push(t *testing.T, pushgateway, track, metrics string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, pushgateway+"/metrics/job/ferry/track/"+track, strings.NewReader(metrics))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("push %s: %s", track, resp.Status)
	}
}

// realPrometheus is a Prometheus the test can stop and start again on the same port and storage.
type realPrometheus struct {
	bin, addr, config, storage string
	proc                       *process
}

func (r *realPrometheus) start(t *testing.T) {
	t.Helper()
	r.proc = startProcess(t, "prometheus", r.bin,
		"--config.file="+r.config,
		"--storage.tsdb.path="+r.storage,
		"--web.listen-address="+r.addr,
	)
	r.proc.waitReady(t, "http://"+r.addr)
}

func writePrometheusConfig(t *testing.T, dir, pushgateway, exporter string) string {
	t.Helper()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: [%q]
  - job_name: exporter
    static_configs:
      - targets: [%q]
`, pushgateway, exporter)
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRealPrometheus(t *testing.T) {
	promBin, pgwBin := realTools(t)
	dir := t.TempDir()

	pgwAddr := freePort(t)
	pgw := startProcess(t, "pushgateway", pgwBin, "--web.listen-address="+pgwAddr)
	pgw.waitReady(t, "http://"+pgwAddr)
	pgwURL := "http://" + pgwAddr
	push(t, pgwURL, "canary", "ferry_error_ratio 0.004\nferry_requests_per_second 50\n")
	push(t, pgwURL, "bad", "ferry_error_ratio 0.052\n")
	push(t, pgwURL, "nan", "ferry_error_ratio NaN\n")
	push(t, pgwURL, "quiet", "ferry_requests_per_second 0.2\n")

	exp := &exporter{}
	expSrv := httptest.NewServer(exp)
	t.Cleanup(expSrv.Close)

	prom := &realPrometheus{
		bin:     promBin,
		addr:    freePort(t),
		config:  writePrometheusConfig(t, dir, pgwAddr, strings.TrimPrefix(expSrv.URL, "http://")),
		storage: filepath.Join(dir, "data"),
	}
	prom.start(t)
	p := newClient(t, Config{Address: "http://" + prom.addr, Timeout: 5 * time.Second})
	ctx := context.Background()
	atMost := Threshold{Max: ptr(0.01)}
	canary := Check{Metric: "error-ratio", Query: `ferry_error_ratio{track="canary"}`, Threshold: atMost, MaxAge: 10 * time.Second}

	measure := func(c Check) Measurement {
		t.Helper()
		m, err := Measure(ctx, p, c, time.Now())
		if err != nil {
			t.Fatalf("Measure(%s): %v", c.Query, err)
		}
		return m
	}
	// Wait for the first scrapes of both targets.
	eventually(t, 20*time.Second, "first scrape", func() (bool, string) {
		m := measure(canary)
		l := measure(Check{Metric: "latency", Query: `ferry_latency_seconds{track="stable"}`})
		return m.Verdict == Pass && l.Verdict == Pass, m.Message + "; " + l.Message
	})

	t.Run("within thresholds passes", func(t *testing.T) {
		now := time.Now()
		m := measure(canary)
		if m.Verdict != Pass || *m.Value != 0.004 || m.Message != "0.004 is at most max 0.01" {
			t.Fatalf("%+v", m)
		}
		if age := now.Sub(m.SampleTime); age < -time.Second || age > 5*time.Second {
			t.Errorf("sample time %s is %s before the measurement; the pushgateway is scraped every second", m.SampleTime, age)
		}
	})
	t.Run("above max fails", func(t *testing.T) {
		m := measure(Check{Metric: "error-ratio", Query: `ferry_error_ratio{track="bad"}`, Threshold: atMost, MaxAge: 10 * time.Second})
		if m.Verdict != Fail || m.Reason != ReasonAboveMax || m.Message != "0.052 is above max 0.01" {
			t.Fatalf("%+v", m)
		}
	})
	t.Run("no such track is no data", func(t *testing.T) {
		m := measure(Check{Metric: "error-ratio", Query: `ferry_error_ratio{track="nobody"}`, Threshold: atMost})
		if m.Verdict != Inconclusive || m.Reason != ReasonNoData {
			t.Fatalf("%+v", m)
		}
	})
	t.Run("NaN is not a number", func(t *testing.T) {
		m := measure(Check{Metric: "error-ratio", Query: `ferry_error_ratio{track="nan"}`, Threshold: atMost})
		if m.Verdict != Inconclusive || m.Reason != ReasonNotANumber || m.Value != nil {
			t.Fatalf("%+v", m)
		}
	})
	t.Run("low traffic", func(t *testing.T) {
		m, err := MeasureTraffic(ctx, p, "traffic", `ferry_requests_per_second{track="quiet"}`, 1, 10*time.Second, time.Now())
		if err != nil || m.Verdict != Inconclusive || m.Reason != ReasonLowTraffic || m.Message != "traffic 0.2 is below min 1" {
			t.Fatalf("%+v, %v", m, err)
		}
		m, err = MeasureTraffic(ctx, p, "traffic", `ferry_requests_per_second{track="canary"}`, 1, 10*time.Second, time.Now())
		if err != nil || m.Verdict != Pass {
			t.Fatalf("%+v, %v", m, err)
		}
	})
	t.Run("bad queries are errors", func(t *testing.T) {
		for query, says := range map[string]string{
			`sum(rate(ferry_error_ratio[1m]`: "parse error",
			`ferry_error_ratio`:              "series, want one",
			`ferry_error_ratio[1m]`:          "range vector",
		} {
			_, err := Measure(ctx, p, Check{Metric: "m", Query: query}, time.Now())
			if !errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), says) {
				t.Errorf("%s: error %v, want ErrBadQuery saying %q", query, err, says)
			}
		}
	})
	t.Run("a stopped source is stale while Prometheus still serves it", func(t *testing.T) {
		latency := Check{Metric: "latency", Query: `ferry_latency_seconds{track="canary"}`, Threshold: Threshold{Max: ptr(1)}, MaxAge: 3 * time.Second}
		// Canary against baseline: the stalest input decides.
		versus := Check{Metric: "latency-vs-stable",
			Query:     `ferry_latency_seconds{track="canary"} - ignoring(track) ferry_latency_seconds{track="stable"}`,
			Threshold: Threshold{Max: ptr(0.5)}, MaxAge: 3 * time.Second}
		if m := measure(latency); m.Verdict != Pass {
			t.Fatalf("before the source stopped: %+v", m)
		}
		exp.freeze()
		eventually(t, 20*time.Second, "the frozen sample goes stale", func() (bool, string) {
			m := measure(latency)
			return m.Verdict == Inconclusive && m.Reason == ReasonStale, m.Message
		})
		// Prometheus keeps answering with the dead sample: without MaxAge the canary would look fine.
		unchecked := latency
		unchecked.MaxAge = 0
		if m := measure(unchecked); m.Verdict != Pass || *m.Value != 0.5 {
			t.Fatalf("Prometheus no longer serves the frozen sample, so the test proves nothing: %+v", m)
		}
		m := measure(versus)
		if m.Verdict != Inconclusive || m.Reason != ReasonStale || !strings.HasPrefix(m.Message, "newest sample ") {
			t.Fatalf("a live baseline hid the dead canary: %+v", m)
		}
	})
	t.Run("stopped Prometheus is unavailable, restarted passes again", func(t *testing.T) {
		prom.proc.stop()
		m := measure(canary)
		if m.Verdict != Inconclusive || m.Reason != ReasonUnavailable || !strings.Contains(m.Message, "connection refused") {
			t.Fatalf("%+v", m)
		}
		prom.start(t)
		eventually(t, 20*time.Second, "pass after restart", func() (bool, string) {
			m := measure(canary)
			return m.Verdict == Pass, m.Message
		})
	})
}
