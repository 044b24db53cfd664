package controllers

import (
	"testing"
	"time"
)

func TestYieldAfterWorkOnlyAfterProgressAndTheBudget(t *testing.T) {
	for _, c := range []struct {
		name    string
		moves   int
		elapsed time.Duration
		yield   bool
	}{
		{"nothing moved yet, however long the reads took", 0, 10 * workBudget, false},
		{"moved, within the budget", 2, workBudget / 3, false},
		{"moved, budget used up", 1, workBudget + time.Millisecond, true},
	} {
		s := &scope{moves: c.moves, started: time.Now().Add(-c.elapsed)}
		if got := s.yieldAfterWork(); got != c.yield {
			t.Errorf("%s: yield = %v, want %v", c.name, got, c.yield)
		}
		if want := map[bool]time.Duration{true: yieldDelay}[c.yield]; s.wait != want {
			t.Errorf("%s: asked to come back after %s, want %s", c.name, s.wait, want)
		}
	}
}
