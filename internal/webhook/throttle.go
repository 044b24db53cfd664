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
// Only repositories notified within the last interval are remembered.
type throttle struct {
	interval time.Duration
	pushed   func(repository string)
	// afterFunc runs f after d, on its own goroutine, and returns what stops it (time.AfterFunc; tests fire by hand).
	afterFunc func(d time.Duration, f func()) (stop func() bool)

	mu     sync.Mutex
	open   map[string]*interval
	closed bool
}

// interval is a repository's current interval: again records a notification to pass on when it ends.
type interval struct {
	again bool
	stop  func() bool
}

func newThrottle(every time.Duration, pushed func(string)) *throttle {
	return &throttle{
		interval: every,
		pushed:   pushed,
		afterFunc: func(d time.Duration, f func()) func() bool {
			return time.AfterFunc(d, f).Stop
		},
		open: map[string]*interval{},
	}
}

// notify records a notification for repository and reports whether it was passed on at once (false: folded
// into the wake-up at the end of the repository's interval).
func (t *throttle) notify(repository string) bool {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return false
	}
	if iv, ok := t.open[repository]; ok {
		iv.again = true
		t.mu.Unlock()
		return false
	}
	t.openLocked(repository)
	t.mu.Unlock()
	t.pushed(repository)
	return true
}

func (t *throttle) openLocked(repository string) {
	iv := &interval{}
	t.open[repository] = iv
	iv.stop = t.afterFunc(t.interval, func() { t.end(repository, iv) })
}

// end closes iv, repository's interval, passing on what it folded and opening the next interval if so.
func (t *throttle) end(repository string, iv *interval) {
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
	t.openLocked(repository)
	t.mu.Unlock()
	t.pushed(repository)
}

// close stops every interval; folded notifications are not passed on (the process is stopping).
func (t *throttle) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for repo, iv := range t.open {
		iv.stop()
		delete(t.open, repo)
	}
}

// tracked is how many repositories have an open interval.
func (t *throttle) tracked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}
