package controllers

import (
	"context"
	"errors"
	"fmt"
	gosync "sync"
	"time"

	"github.com/ferrycd/ferry/internal/analysis"
)

// maxUnavailableHold bounds how long a Prometheus that did not answer is not asked again. Readings meanwhile are
// inconclusive at once: a server that hangs costs its own Promotions inconclusive readings, not every other
// Promotion a reconcile worker for the length of a query timeout.
const maxUnavailableHold = 30 * time.Second

// shieldedQuerier asks a Prometheus, remembering for hold that it did not answer. One is shared by every
// Promotion that uses the same server with the same credentials and query timeout.
type shieldedQuerier struct {
	q    analysis.Querier
	now  func() time.Time
	hold time.Duration

	mu        gosync.Mutex
	downUntil time.Time
	why       error
}

func (s *shieldedQuerier) Query(ctx context.Context, query string, at time.Time) (analysis.Sample, error) {
	if err := s.down(); err != nil {
		return analysis.Sample{}, err
	}
	sample, err := s.q.Query(ctx, query, at)
	if errors.Is(err, analysis.ErrUnavailable) && ctx.Err() == nil {
		s.mu.Lock()
		s.downUntil, s.why = s.now().Add(s.hold), err
		s.mu.Unlock()
	}
	return sample, err
}

// down returns why the server is not asked now, or nil.
func (s *shieldedQuerier) down() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.now().Before(s.downUntil) {
		return fmt.Errorf("not asked again until %s after: %w", s.downUntil.Format(time.RFC3339), s.why)
	}
	return nil
}

// unavailableHold is how long a server whose queries time out after timeout is left alone: about the analysis
// interval (four query timeouts), at most maxUnavailableHold.
func unavailableHold(timeout time.Duration) time.Duration { return min(4*timeout, maxUnavailableHold) }

// queryTimeout bounds one query to a fraction of the analysis interval, between 1 and 10 seconds: a reading that
// takes longer than that is of no use to the next one anyway.
func queryTimeout(every time.Duration) time.Duration {
	return min(max(every/4, time.Second), 10*time.Second)
}
