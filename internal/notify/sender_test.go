package notify

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestSlowReceiverTimesOut: a receiver that never answers costs one timeout per attempt.
func TestSlowReceiverTimesOut(t *testing.T) {
	release := make(chan struct{})
	var attempts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	d, outcomes := startDispatcher(t, Options{Policy: Policy{Attempts: 2, Backoff: time.Millisecond, Timeout: 50 * time.Millisecond}})
	d.Submit(Delivery{Owner: "o", Receiver: Receiver{Name: "ci", Type: Webhook, URL: srv.URL, Key: testKey}, Message: sampleMessage("d-7")})
	out := await(t, outcomes)
	if out.Delivered || out.Attempts != 2 || out.Err != "timed out" {
		t.Fatalf("outcome = %+v", out)
	}
}

// countingTransport counts the response body bytes the client reads.
type countingTransport struct {
	http.RoundTripper
	read atomic.Int64
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.RoundTripper.RoundTrip(r)
	if err == nil {
		resp.Body = countingBody{resp.Body, &c.read}
	}
	return resp, err
}

// TestOversizedAnswerIsReadOnlyInPart: an answer that never ends is read up to the bound and no further, and a
// refusal's body is quoted short.
func TestOversizedAnswerIsReadOnlyInPart(t *testing.T) {
	status := atomic.Int32{}
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		chunk := []byte(strings.Repeat("x", 32<<10))
		for range 2048 { // 64 MiB at most, and only while the client reads
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	counter := &countingTransport{RoundTripper: http.DefaultTransport.(*http.Transport).Clone()}
	client := &http.Client{Transport: counter}
	d, outcomes := startDispatcher(t, Options{Policy: Policy{Attempts: 1, MaxResponseBytes: 1024}, Client: client})
	d.Submit(Delivery{Owner: "o", Receiver: Receiver{Name: "ci", Type: Webhook, URL: srv.URL, Key: testKey}, Message: sampleMessage("d-8")})
	if out := await(t, outcomes); !out.Delivered {
		t.Fatalf("outcome = %+v", out)
	}
	if n := counter.read.Load(); n > 1024 {
		t.Errorf("read %d bytes of the answer, want at most 1024", n)
	}
	status.Store(http.StatusBadRequest)
	d.Submit(Delivery{Owner: "o", Receiver: Receiver{Name: "ci", Type: Webhook, URL: srv.URL, Key: testKey}, Message: sampleMessage("d-9")})
	out := await(t, outcomes)
	if out.Delivered || len(out.Err) > 300 || !strings.Contains(out.Err, "400") {
		t.Errorf("outcome = %+v (%d bytes of error)", out, len(out.Err))
	}
}

func TestBackoffDoublesUpToItsBound(t *testing.T) {
	p := Policy{Backoff: time.Second, MaxBackoff: 5 * time.Second}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 40: 5 * time.Second} {
		if got := p.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
}

// TestWhichAnswersAreRetried: throttling and timeouts are retried like 5xx; other refusals are not.
func TestWhichAnswersAreRetried(t *testing.T) {
	for status, attempts := range map[int]int{http.StatusTooManyRequests: 2, http.StatusRequestTimeout: 2,
		http.StatusBadGateway: 2, http.StatusForbidden: 1, http.StatusNotFound: 1} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
		d, outcomes := startDispatcher(t, Options{Policy: Policy{Attempts: 2, Backoff: time.Millisecond}})
		d.Submit(Delivery{Owner: "o", Receiver: Receiver{Name: "ci", Type: Webhook, URL: srv.URL, Key: testKey}, Message: sampleMessage("r")})
		if out := await(t, outcomes); out.Delivered || out.Attempts != attempts {
			t.Errorf("answer %d: outcome %+v, want %d attempts", status, out, attempts)
		}
		srv.Close()
	}
}
