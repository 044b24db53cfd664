package analysis

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/promserver"
)

// These tests run the real Prometheus and Pushgateway (Debian's packages, see hack/prometheus.sh) on loopback
// ports, each with a temporary config and storage, through internal/promserver.

// startReal runs Prometheus and the Pushgateway (promserver) scraping the Pushgateway and the extra targets
// every second, stopped when the test ends; their output is shown when the test failed.
func startReal(t *testing.T, targets ...string) *promserver.Server {
	t.Helper()
	promBin, pgwBin := promserver.BinariesFromEnv(t)
	var log promserver.LogBuffer
	s, err := promserver.Start(t.Context(), promserver.Options{Prometheus: promBin, Pushgateway: pgwBin,
		Targets: targets, ScrapeInterval: time.Second, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stopping Prometheus: %v", err)
		}
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(log.String()), "\n")
			t.Logf("last lines of Prometheus and the Pushgateway:\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	return s
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

// push replaces the Pushgateway group job="ferry",track=<track> with metrics in the text format.
func push(t *testing.T, s *promserver.Server, track, metrics string) {
	t.Helper()
	if err := s.Push(t.Context(), "ferry", map[string]string{"track": track}, metrics); err != nil {
		t.Fatal(err)
	}
}

func TestRealPrometheus(t *testing.T) {
	exp := &exporter{}
	expSrv := httptest.NewServer(exp)
	t.Cleanup(expSrv.Close)
	prom := startReal(t, strings.TrimPrefix(expSrv.URL, "http://"))
	push(t, prom, "canary", "ferry_error_ratio 0.004\nferry_requests_per_second 50\n")
	push(t, prom, "bad", "ferry_error_ratio 0.052\n")
	push(t, prom, "nan", "ferry_error_ratio NaN\n")
	push(t, prom, "quiet", "ferry_requests_per_second 0.2\n")

	p := newClient(t, Config{Address: prom.URL, Timeout: 5 * time.Second})
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
		if err := prom.Stop(); err != nil {
			t.Fatal(err)
		}
		m := measure(canary)
		if m.Verdict != Inconclusive || m.Reason != ReasonUnavailable || !strings.Contains(m.Message, "connection refused") {
			t.Fatalf("%+v", m)
		}
		if err := prom.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "pass after restart", func() (bool, string) {
			m := measure(canary)
			return m.Verdict == Pass, m.Message
		})
	})
}
