package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/analysis"
)

// hangingProm answers nothing until the caller gives up, as a server that accepts connections and never answers.
type hangingProm struct{ asked atomic.Int32 }

func (h *hangingProm) Query(ctx context.Context, _ string, _ time.Time) (analysis.Sample, error) {
	h.asked.Add(1)
	qctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond) // the client's own query timeout
	defer cancel()
	<-qctx.Done()
	return analysis.Sample{}, fmt.Errorf("%w: %v", analysis.ErrUnavailable, qctx.Err())
}

// TestUnansweringPrometheusIsNotAskedAgainAtOnce: after a query that timed out, readings of the same server are
// inconclusive at once for a while — a hung Prometheus costs one query timeout, not one per reading of every
// Promotion that uses it — and it is asked again afterwards.
func TestUnansweringPrometheusIsNotAskedAgainAtOnce(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	h := &hangingProm{}
	q := &shieldedQuerier{q: h, now: func() time.Time { return now }, hold: unavailableHold(10 * time.Second)}
	ctx := context.Background()
	for n := 0; n < 5; n++ {
		m, err := analysis.Measure(ctx, q, analysis.Check{Metric: "m", Query: "up"}, now)
		if err != nil || m.Verdict != analysis.Inconclusive || m.Reason != analysis.ReasonUnavailable {
			t.Fatalf("reading %d: %+v, %v", n, m, err)
		}
	}
	if got := h.asked.Load(); got != 1 {
		t.Errorf("the hung server was asked %d times, want once", got)
	}
	now = now.Add(maxUnavailableHold)
	if _, err := q.Query(ctx, "up", now); !errors.Is(err, analysis.ErrUnavailable) || h.asked.Load() != 2 {
		t.Errorf("after the hold: asked %d times, err %v; want it asked again", h.asked.Load(), err)
	}
}

func TestQueryTimeoutFollowsTheInterval(t *testing.T) {
	for every, want := range map[time.Duration]time.Duration{
		time.Second: time.Second, 20 * time.Second: 5 * time.Second, time.Minute: 10 * time.Second} {
		if got := queryTimeout(every); got != want {
			t.Errorf("queryTimeout(%s) = %s, want %s", every, got, want)
		}
	}
}
