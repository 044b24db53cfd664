package webhook_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrycd/ferry/controllers"
	"github.com/ferrycd/ferry/internal/metrics"
	"github.com/ferrycd/ferry/internal/webhook"
)

// TestControllersFullQueueAnswers503AndCountsTheDrop wires the webhook to the controller as ferry-controller
// does (Config.Pushed is the reconciler's Pushed) with nothing draining the reconciler's wake-ups, fills them,
// and posts a notification: the registry hears 503 with Retry-After, and the drop is counted in
// ferry_webhook_notifications_dropped_total.
func TestControllersFullQueueAnswers503AndCountsTheDrop(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	rec, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := &controllers.PromotionReconciler{Metrics: rec}

	// Fill the queue: the reconciler takes wake-ups until its buffer is full.
	const bound = 1 << 20 // far beyond any buffer the reconciler keeps; reaching it means Pushed never refuses
	filled := 0
	for r.Pushed(fmt.Sprintf("registry.example.com/team/app-%d", filled)) {
		if filled++; filled == bound {
			t.Fatalf("the reconciler took %d wake-ups without refusing one", bound)
		}
	}
	before := dropped(t, reg)
	if before != 1 {
		t.Fatalf("%s = %v after the refusal that showed the queue full, want 1", metrics.WebhookNotificationsDroppedTotal, before)
	}

	const token = "0123456789abcdef-token"
	srv, err := webhook.NewServer("", webhook.Config{Token: []byte(token), Pushed: r.Pushed}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	req, err := http.NewRequest(http.MethodPost, "http://"+l.Addr().String()+webhook.Path,
		strings.NewReader(`{"repository":"registry.example.com/team/shop"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with the reconciler's %d wake-ups waiting: %s %s, want 503", filled, resp.Status, body)
	}
	if got := resp.Header.Get("Retry-After"); got == "" {
		t.Error("503 without Retry-After: the registry is not told when to retry")
	}
	if got := dropped(t, reg); got != before+1 {
		t.Errorf("%s = %v after the refused notification, want %v", metrics.WebhookNotificationsDroppedTotal, got, before+1)
	}
}

// dropped reads ferry_webhook_notifications_dropped_total from reg.
func dropped(t *testing.T, reg prometheus.Gatherer) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == metrics.WebhookNotificationsDroppedTotal && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s is not registered", metrics.WebhookNotificationsDroppedTotal)
	return 0
}
