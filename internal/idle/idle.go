// Package idle shares long-lived clients by key and lets go of those nobody has asked for in a while, so that a
// deleted Promotion or a rotated credential does not leave its client — and its pooled connections — behind for
// the life of the process.
package idle

import (
	"sync"
	"time"
)

// Pool keeps one value per key. The zero value is not ready: use New.
type Pool[V any] struct {
	ttl   time.Duration
	close func(V)
	now   func() time.Time

	mu      sync.Mutex
	entries map[string]*entry[V]
	swept   time.Time
}

type entry[V any] struct {
	value V
	used  time.Time
}

// New returns a Pool that lets go of values unused for ttl, calling release (when not nil) on each; now (time.Now
// when nil) tells the time.
func New[V any](ttl time.Duration, release func(V), now func() time.Time) *Pool[V] {
	if now == nil {
		now = time.Now
	}
	return &Pool[V]{ttl: ttl, close: release, now: now, entries: map[string]*entry[V]{}}
}

// Get returns the value kept for key, or the one open returns, kept from then on. Opening happens under the
// pool's lock, so that two callers never open the same key twice; open must not block on the network.
func (p *Pool[V]) Get(key string, open func() (V, error)) (V, error) {
	defer p.sweep()
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if e, ok := p.entries[key]; ok {
		e.used = now
		return e.value, nil
	}
	v, err := open()
	if err != nil {
		return v, err
	}
	p.entries[key] = &entry[V]{value: v, used: now}
	return v, nil
}

// Len says how many values are kept.
func (p *Pool[V]) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// sweep lets go of the values idle longer than the TTL, looking at most twice per TTL so that Get stays cheap.
func (p *Pool[V]) sweep() {
	p.mu.Lock()
	now := p.now()
	if now.Sub(p.swept) < p.ttl/2 {
		p.mu.Unlock()
		return
	}
	p.swept = now
	var idle []V
	for k, e := range p.entries {
		if now.Sub(e.used) > p.ttl {
			idle = append(idle, e.value)
			delete(p.entries, k)
		}
	}
	p.mu.Unlock()
	if p.close != nil {
		for _, v := range idle { // outside the lock: closing may take a while
			p.close(v)
		}
	}
}
