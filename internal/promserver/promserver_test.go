package promserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sample is one instant query's single result.
type sample struct {
	at    time.Time
	value string
}

// query asks Prometheus's HTTP API for expr at time at (now when zero) and returns its only sample.
func query(ctx context.Context, base, expr string, at time.Time) (sample, error) {
	q := url.Values{"query": {expr}}
	if !at.IsZero() {
		q.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?"+q.Encode(), nil)
	if err != nil {
		return sample{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return sample{}, fmt.Errorf("%s: %w", resp.Status, err)
	}
	if body.Status != "success" {
		return sample{}, fmt.Errorf("%s: %s", resp.Status, body.Error)
	}
	if n := len(body.Data.Result); n != 1 {
		return sample{}, fmt.Errorf("%d series for %s, want 1", n, expr)
	}
	v := body.Data.Result[0].Value
	ts, _ := v[0].(float64)
	s, _ := v[1].(string)
	return sample{at: time.UnixMilli(int64(ts * 1000)), value: s}, nil
}

// eventually polls cond every 50ms until it holds, failing the test with its last word after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStartPushStopRestart: a pushed value is scraped and queryable; a stopped Prometheus refuses connections
// while the Pushgateway keeps taking pushes; restarted on the same port with the same storage, it still has the
// value from before the outage and scrapes the new one.
func TestStartPushStopRestart(t *testing.T) {
	promBin, pgwBin := BinariesFromEnv(t)
	ctx := t.Context()
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# TYPE ferry_exported gauge\nferry_exported 7\n")
	}))
	t.Cleanup(exporter.Close)

	var log LogBuffer
	s, err := Start(ctx, Options{Prometheus: promBin, Pushgateway: pgwBin, ScrapeInterval: 200 * time.Millisecond,
		Targets: []string{strings.TrimPrefix(exporter.URL, "http://")}, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("processes' output:\n%s", log.String())
		}
	})
	if err := s.WaitScraped(ctx); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{s.URL, s.PushURL} {
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Fatalf("URL %q, want loopback", u)
		}
	}

	// A grouping label with a slash travels base64-encoded; honor_labels keeps the pushed job and labels.
	if err := s.Push(ctx, "ferry", map[string]string{"track": "canary", "namespace": "shop/dev"}, "ferry_value 1"); err != nil {
		t.Fatal(err)
	}
	const expr = `ferry_value{job="ferry",track="canary",namespace="shop/dev"}`
	var before sample
	eventually(t, 30*time.Second, "the pushed value to be scraped", func() (bool, string) {
		got, err := query(ctx, s.URL, expr, time.Time{})
		before = got
		return err == nil && got.value == "1", fmt.Sprintf("%+v, %v", got, err)
	})
	if got, err := query(ctx, s.URL, "ferry_exported", time.Time{}); err != nil || got.value != "7" {
		t.Fatalf("the extra target after WaitScraped: %+v, %v", got, err)
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Error("Running after Stop")
	}
	if _, err := query(ctx, s.URL, expr, time.Time{}); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("query to a stopped Prometheus: %v, want connection refused", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := s.Push(ctx, "ferry", map[string]string{"track": "canary", "namespace": "shop/dev"}, "ferry_value 2\n"); err != nil {
		t.Fatalf("push during the outage: %v", err)
	}

	url := s.URL
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.URL != url || !s.Running() {
		t.Fatalf("after Restart: URL %s (was %s), running %v", s.URL, url, s.Running())
	}
	got, err := query(ctx, s.URL, expr, before.at)
	if err != nil || got.value != "1" {
		t.Fatalf("the value scraped before the outage, at %s: %+v, %v; the storage was not kept", before.at, got, err)
	}
	eventually(t, 30*time.Second, "the value pushed during the outage to be scraped", func() (bool, string) {
		got, err := query(ctx, s.URL, expr, time.Time{})
		return err == nil && got.value == "2", fmt.Sprintf("%+v, %v", got, err)
	})

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the temporary folder %s is still there after Close: %v", dir, err)
	}
	if _, err := http.Get(s.PushURL + "/-/ready"); err == nil || !errorsIsRefused(err) {
		t.Errorf("the Pushgateway still answers after Close: %v", err)
	}
}

func errorsIsRefused(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), syscall.ECONNREFUSED.Error()))
}

// TestStartFailsCleanly: a target beyond loopback is refused before anything starts, and a binary that exits at
// once is reported as such rather than waited for until the deadline.
func TestStartFailsCleanly(t *testing.T) {
	promBin, _ := BinariesFromEnv(t)
	dir := t.TempDir()
	_, err := Start(t.Context(), Options{Prometheus: promBin, Dir: dir, Targets: []string{"10.0.0.1:9100"}})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("Start with a non-loopback target: %v", err)
	}
	_, err = Start(t.Context(), Options{Prometheus: "/bin/false"})
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("Start with a binary that exits: %v", err)
	}
	if _, err := Start(t.Context(), Options{}); err == nil {
		t.Fatal("Start without a binary succeeded")
	}
}

func TestPathLabel(t *testing.T) {
	for _, c := range []struct{ name, value, want string }{
		{"", "ferry", "/ferry"},
		{"", "a/b", "@base64/YS9i"},
		{"track", "canary", "/track/canary"},
		{"namespace", "shop/dev", "/namespace@base64/c2hvcC9kZXY="},
		{"code", "", "/code@base64/="},
		{"instance", "a b", "/instance/a%20b"},
	} {
		if got := pathLabel(c.name, c.value); got != c.want {
			t.Errorf("pathLabel(%q, %q) = %q, want %q", c.name, c.value, got, c.want)
		}
	}
}
