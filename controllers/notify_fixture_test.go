package controllers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/metrics"
	"github.com/ferrycd/ferry/internal/notify"
	"github.com/ferrycd/ferry/internal/testenv"
)

const hookKey = "a-test-hmac-key-of-32-bytes-long"

// hookReceiver is a real HTTP receiver on loopback. A Webhook receiver checks the HMAC of every body with the
// key and refuses a body whose signature does not verify; it records what it accepted, and every delivery id it
// was offered, accepted or not.
type hookReceiver struct {
	srv     *httptest.Server
	slack   bool
	failing atomic.Bool // answer 503 while set

	mu       sync.Mutex
	accepted []notify.Message
	texts    []string
	offered  map[string]int
	badSig   int
}

func startHookReceiver(t *testing.T, slack bool) *hookReceiver {
	t.Helper()
	h := &hookReceiver{slack: slack, offered: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	h.mu.Lock()
	defer h.mu.Unlock()
	h.offered[r.Header.Get(notify.DeliveryHeader)]++
	if !h.slack && !notify.Verify([]byte(hookKey), body, r.Header.Get(notify.SignatureHeader)) {
		h.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if h.failing.Load() {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	if h.slack {
		var p struct{ Text string }
		_ = json.Unmarshal(body, &p)
		h.texts = append(h.texts, p.Text)
		return
	}
	var m notify.Message
	if err := json.Unmarshal(body, &m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	m.SentAt = time.Time{}
	h.accepted = append(h.accepted, m)
}

// events lists what was accepted as "Event stage digest", sorted: deliveries run in parallel, so their order is not
// the order of the changes (each carries its time).
func (h *hookReceiver) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, m := range h.accepted {
		out = append(out, strings.TrimSpace(m.Event+" "+m.Stage+" "+m.Digest))
	}
	slices.Sort(out)
	return out
}

func (h *hookReceiver) snapshot() (offered map[string]int, accepted []notify.Message, texts []string, badSig int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	offered = map[string]int{}
	for k, v := range h.offered {
		offered[k] = v
	}
	return offered, slices.Clone(h.accepted), slices.Clone(h.texts), h.badSig
}

// notifyManager runs a manager with the Promotion reconciler, a dispatcher with policy and metrics of its own;
// stop ends it (and waits), so that a test can start another on the same API server.
func notifyManager(t *testing.T, engines Engines, policy notify.Policy) (reg *prometheus.Registry, stop func()) {
	t.Helper()
	reg = prometheus.NewRegistry()
	rec, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	_, stop = runManager(t, testenv.Need(t, env), engines, func(r *PromotionReconciler) {
		r.Metrics = rec
		r.Notifier = notify.NewDispatcher(notify.Options{Policy: policy})
	})
	return reg, stop
}

// notifyStages is the stages fixture (dev and staging synced by the real sync engine) with its own manager.
func notifyStages(t *testing.T, policy notify.Policy) (*stagesFixture, *prometheus.Registry, func()) {
	t.Helper()
	f, engines := stagesFixtureEngines(t)
	reg, stop := notifyManager(t, engines, policy)
	return f, reg, stop
}

func hookSecret(t *testing.T, f *stagesFixture, name, url string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		StringData: map[string]string{"url": url + "\n", "hmac-key": hookKey}}
	if err := f.e.Client.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func webhookReceiver(name, secret string, events ...ferryv1.NotificationEvent) ferryv1.NotificationReceiver {
	return ferryv1.NotificationReceiver{Name: name, Type: ferryv1.NotificationWebhook, Events: events,
		URLSecretRef: ferryv1.SecretKeyReference{Name: secret}, HMACKeySecretRef: &ferryv1.SecretKeyReference{Name: secret}}
}

var fastPolicy = notify.Policy{Attempts: 3, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Timeout: 5 * time.Second}
