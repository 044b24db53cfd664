package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef-test-key")

// startDispatcher runs a dispatcher with o until the test ends and returns it with a channel of its outcomes.
func startDispatcher(t *testing.T, o Options) (*Dispatcher, <-chan Outcome) {
	t.Helper()
	d := NewDispatcher(o)
	outcomes := make(chan Outcome, 16)
	d.OnDone(func(out Outcome) { outcomes <- out })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return d, outcomes
}

func await(t *testing.T, outcomes <-chan Outcome) Outcome {
	t.Helper()
	select {
	case out := <-outcomes:
		return out
	case <-time.After(30 * time.Second):
		t.Fatal("no outcome within 30s")
		return Outcome{}
	}
}

func sampleMessage(id string) Message {
	return Message{DeliveryID: id, Event: "Promoted", Namespace: "shop", Promotion: "web", Stage: "prod",
		Digest: "sha256:" + strings.Repeat("a", 64), PreviousDigest: "sha256:" + strings.Repeat("b", 64),
		Commit: strings.Repeat("c", 40), PullRequestURL: "https://git.example/acme/deploy/pulls/7", Approver: "alice",
		Message: "healthy and soaked", Time: time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)}
}

// recordingReceiver is a real HTTP receiver that hands the test the one request it gets and its body.
func recordingReceiver(t *testing.T) (*httptest.Server, <-chan *http.Request, <-chan []byte) {
	t.Helper()
	got := make(chan *http.Request, 1)
	bodies := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
	}))
	t.Cleanup(srv.Close)
	return srv, got, bodies
}

// TestWebhookIsSignedWithTheReceiversKey: a real receiver recomputes the HMAC of the exact body with the key and
// finds the facts of the change in the body and the delivery id in the header.
func TestWebhookIsSignedWithTheReceiversKey(t *testing.T) {
	srv, got, bodies := recordingReceiver(t)
	d, outcomes := startDispatcher(t, Options{})
	if !d.Submit(Delivery{Owner: "shop/web", Receiver: Receiver{Name: "ci", Type: Webhook, URL: srv.URL, Key: testKey},
		Message: sampleMessage("d-1")}) {
		t.Fatal("the delivery was not taken")
	}
	out := await(t, outcomes)
	if !out.Delivered || out.Attempts != 1 || out.Receiver != "ci" || out.Owner != "shop/web" {
		t.Fatalf("outcome = %+v", out)
	}
	r, body := <-got, <-bodies
	mac := hmac.New(sha256.New, testKey)
	mac.Write(body)
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); r.Header.Get(SignatureHeader) != want {
		t.Errorf("signature %q, want %q", r.Header.Get(SignatureHeader), want)
	}
	if !Verify(testKey, body, r.Header.Get(SignatureHeader)) || Verify([]byte("another key of 16+ bytes"), body, r.Header.Get(SignatureHeader)) {
		t.Error("Verify disagrees with the HMAC")
	}
	if r.Header.Get(DeliveryHeader) != "d-1" || r.Header.Get(EventHeader) != "Promoted" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers = %v", r.Header)
	}
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if ts, _ := strconv.ParseInt(r.Header.Get(TimestampHeader), 10, 64); ts != m.SentAt.Unix() || ts == 0 {
		t.Errorf("timestamp header %q, sentAt %v", r.Header.Get(TimestampHeader), m.SentAt)
	}
	want := sampleMessage("d-1")
	want.SentAt = m.SentAt
	if m != want {
		t.Errorf("body = %+v\nwant   %+v", m, want)
	}
}

func TestSlackGetsTextWithoutSignature(t *testing.T) {
	srv, got, bodies := recordingReceiver(t)
	d, outcomes := startDispatcher(t, Options{})
	m := sampleMessage("d-2")
	m.Message = "<!channel> failed & rolled back"
	d.Submit(Delivery{Owner: "shop/web", Receiver: Receiver{Name: "chat", Type: Slack, URL: srv.URL}, Message: m})
	if out := await(t, outcomes); !out.Delivered {
		t.Fatalf("outcome = %+v", out)
	}
	r, body := <-got, <-bodies
	var payload map[string]any
	if err := json.Unmarshal(body, &payload); err != nil {
		t.Fatal(err)
	}
	txt, _ := payload["text"].(string)
	for _, want := range []string{"*shop/web* stage *prod*: Promoted", "`sha256:aaaaaaaaaaaa`", "(was `sha256:bbbbbbbbbbbb`)",
		"&lt;!channel&gt; failed &amp; rolled back", "approved by alice", "commit `cccccccccccc`", "pull request https://git.example/acme/deploy/pulls/7"} {
		if !strings.Contains(txt, want) {
			t.Errorf("text does not hold %q:\n%s", want, txt)
		}
	}
	if len(payload) != 1 {
		t.Errorf("payload has more than text: %v", payload)
	}
	if r.Header.Get(SignatureHeader) != "" || r.Header.Get(DeliveryHeader) != "d-2" {
		t.Errorf("headers = %v", r.Header)
	}
}

// TestFailingReceiverIsRetriedWithBackoffThenGivenUp: a receiver answering 500 gets exactly the policy's attempts,
// each after a wait at least as long as the backoff says, and the outcome names the answer.
func TestFailingReceiverIsRetriedWithBackoffThenGivenUp(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		http.Error(w, "database is down", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	p := Policy{Attempts: 4, Backoff: 20 * time.Millisecond, MaxBackoff: time.Second}
	d, outcomes := startDispatcher(t, Options{Policy: p})
	d.Submit(Delivery{Owner: "shop/web", Receiver: Receiver{Name: "ci", Type: Webhook, URL: srv.URL, Key: testKey}, Message: sampleMessage("d-3")})
	out := await(t, outcomes)
	if out.Delivered || out.Attempts != 4 || !strings.Contains(out.Err, "500") || !strings.Contains(out.Err, "database is down") {
		t.Fatalf("outcome = %+v", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 4 {
		t.Fatalf("%d attempts reached the receiver, want 4", len(times))
	}
	for i := 1; i < len(times); i++ {
		if gap, least := times[i].Sub(times[i-1]), p.Delay(i); gap < least {
			t.Errorf("attempt %d came %v after the one before, before the backoff of %v", i+1, gap, least)
		}
	}
}

func TestReceiverThatIsDownIsRetriedThenGivenUpWithoutNamingTheURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String() + "/hooks/T0/B0/secret-path"
	l.Close() // nothing listens there now: connection refused
	d, outcomes := startDispatcher(t, Options{Policy: Policy{Attempts: 3, Backoff: time.Millisecond}})
	d.Submit(Delivery{Owner: "shop/web", Receiver: Receiver{Name: "chat", Type: Slack, URL: url}, Message: sampleMessage("d-4")})
	out := await(t, outcomes)
	if out.Delivered || out.Attempts != 3 || !strings.Contains(out.Err, "connection refused") {
		t.Fatalf("outcome = %+v", out)
	}
	if strings.Contains(out.Err, "secret-path") || strings.Contains(out.Err, l.Addr().String()) {
		t.Errorf("the error repeats the URL: %s", out.Err)
	}
}

func TestRefusalIsNotRetriedAndRedirectsAreNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	var attempts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
			return
		}
		http.Error(w, "bad signature", http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	d, outcomes := startDispatcher(t, Options{Policy: Policy{Attempts: 3, Backoff: time.Millisecond}})
	d.Submit(Delivery{Owner: "o", Receiver: Receiver{Name: "ci", Type: Webhook, URL: srv.URL, Key: testKey}, Message: sampleMessage("d-5")})
	if out := await(t, outcomes); out.Delivered || out.Attempts != 1 || !strings.Contains(out.Err, "401") {
		t.Errorf("outcome of a 401 = %+v", out)
	}
	d.Submit(Delivery{Owner: "o", Receiver: Receiver{Name: "ci", Type: Webhook, URL: srv.URL + "/moved", Key: testKey}, Message: sampleMessage("d-6")})
	if out := await(t, outcomes); out.Delivered || out.Attempts != 1 || !strings.Contains(out.Err, "307") {
		t.Errorf("outcome of a redirect = %+v", out)
	}
	if attempts.Load() != 2 || elsewhere.Load() != 0 {
		t.Errorf("%d attempts, %d requests followed a redirect", attempts.Load(), elsewhere.Load())
	}
}

// TestDeliveryIsTakenOnce: a delivery id offered again while queued, in flight or reported is not sent again,
// and its outcome is read back by its owner only.
func TestDeliveryIsTakenOnce(t *testing.T) {
	var attempts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { attempts.Add(1) }))
	t.Cleanup(srv.Close)
	d, outcomes := startDispatcher(t, Options{})
	dl := Delivery{Owner: "shop/web", Receiver: Receiver{Name: "ci", Type: Webhook, URL: srv.URL, Key: testKey}, Message: sampleMessage("d-10")}
	if !d.Submit(dl) || d.Submit(dl) {
		t.Fatal("want the first offer taken and the second refused")
	}
	await(t, outcomes)
	if d.Submit(dl) || !d.Known("d-10") {
		t.Error("a delivered id was taken again")
	}
	if got := d.Outcomes("shop/web", []string{"d-10", "d-unknown"}); len(got) != 1 || !got[0].Delivered {
		t.Errorf("outcomes = %+v", got)
	}
	if got := d.Outcomes("shop/other", []string{"d-10"}); len(got) != 0 {
		t.Errorf("another owner read %+v", got)
	}
	d.Forget("shop/web")
	if d.Known("d-10") {
		t.Error("Forget kept the delivery")
	}
	if attempts.Load() != 1 {
		t.Errorf("%d requests, want 1", attempts.Load())
	}
}

func TestDispatcherTracksABoundedNumberOfDeliveries(t *testing.T) {
	d := NewDispatcher(Options{MaxTracked: 2}) // not started: nothing leaves the queue
	for i, want := range []bool{true, true, false} {
		dl := Delivery{Owner: "o", Receiver: Receiver{Name: "ci", Type: Webhook, URL: "http://127.0.0.1:1/", Key: testKey},
			Message: sampleMessage(strconv.Itoa(i))}
		if got := d.Submit(dl); got != want {
			t.Errorf("Submit #%d = %v, want %v", i+1, got, want)
		}
	}
}
