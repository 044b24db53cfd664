package webhook

import (
	"sync"
	"time"
)

// throttle passes on at most one wake-up per repository per interval. The first notification for a repository
// is passed on at once and opens an interval; notifications during the interval are folded into one more
// wake-up when it ends (which opens the next interval). So a flood for one repository costs one wake-up per
// interval and never delays other repositories, and the last push of a flood is never lost: the reconciler
// reads the registry after it, not before.
//
// The controller may refuse a wake-up when too many are waiting (pushed returns false). A refused first
// notification opens no interval and is reported refused, so that the caller answers 503 and the registry's retry
// is passed on at once; a refused wake-up at an interval's end (its notifications were already answered) is
// passed on at the end of the next interval instead.
//
// Only repositories notified within the last interval, or with a wake-up still to pass on, are remembered.
//
// K is what a wake-up is for: a registry repository, or a forge change.
type throttle[K comparable] struct {
	interval time.Duration
	pushed   func(key K) bool
	// afterFunc runs f after d, on its own goroutine, and returns what stops it (time.AfterFunc; tests fire by hand).
	afterFunc func(d time.Duration, f func()) (stop func() bool)

	mu     sync.Mutex
	open   map[K]*interval
	closed bool
}

// interval is a repository's current interval: again records a notification to pass on when it ends.
type interval struct {
	again bool
	stop  func() bool
}

// outcome is what became of a notification.
type outcome int

const (
	passed  outcome = iota // passed on at once
	folded                 // folded into the wake-up at the end of the repository's interval
	refused                // not taken: too many wake-ups are waiting, or the throttle is closed
)

func newThrottle[K comparable](every time.Duration, pushed func(K) bool) *throttle[K] {
	return &throttle[K]{
		interval: every,
		pushed:   pushed,
		afterFunc: func(d time.Duration, f func()) func() bool {
			return time.AfterFunc(d, f).Stop
		},
		open: map[K]*interval{},
	}
}

// notify records a notification for repository and says what became of it.
func (t *throttle[K]) notify(repository K) outcome {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return refused
	}
	if iv, ok := t.open[repository]; ok {
		iv.again = true
		t.mu.Unlock()
		return folded
	}
	iv := t.openLocked(repository)
	t.mu.Unlock()
	if t.pushed(repository) {
		return passed
	}
	// Not taken: forget the interval, so that the registry's retry is passed on at once — unless a notification
	// folded into it meanwhile (and was answered), which its end passes on.
	t.mu.Lock()
	if t.open[repository] == iv && !iv.again {
		iv.stop()
		delete(t.open, repository)
	}
	t.mu.Unlock()
	return refused
}

func (t *throttle[K]) openLocked(repository K) *interval {
	iv := &interval{}
	t.open[repository] = iv
	iv.stop = t.afterFunc(t.interval, func() { t.end(repository, iv) })
	return iv
}

// end closes iv, repository's interval, passing on what it folded and opening the next interval if so.
func (t *throttle[K]) end(repository K, iv *interval) {
	t.mu.Lock()
	if t.closed || t.open[repository] != iv {
		t.mu.Unlock()
		return
	}
	delete(t.open, repository)
	if !iv.again {
		t.mu.Unlock()
		return
	}
	next := t.openLocked(repository)
	t.mu.Unlock()
	if t.pushed(repository) {
		return
	}
	// Refused: the notifications folded here were answered already, so the wake-up is passed on at the end of the
	// next interval rather than lost.
	t.mu.Lock()
	if t.open[repository] == next {
		next.again = true
	}
	t.mu.Unlock()
}

// close stops every interval; folded notifications are not passed on (the process is stopping).
func (t *throttle[K]) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for repo, iv := range t.open {
		iv.stop()
		delete(t.open, repo)
	}
}

// tracked is how many repositories have an open interval.
func (t *throttle[K]) tracked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}
