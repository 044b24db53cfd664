package idle

import (
	"errors"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestIdleValuesAreReleasedAndUsedOnesKept(t *testing.T) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	var released []string
	p := New(time.Hour, func(v string) { released = append(released, v) }, c.now)
	opened := 0
	open := func(v string) func() (string, error) { return func() (string, error) { opened++; return v, nil } }

	for _, k := range []string{"a", "b"} {
		if _, err := p.Get(k, open(k)); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := p.Get("a", open("a-again")); v != "a" || opened != 2 {
		t.Fatalf("second Get of a = %q after %d opens, want the kept value after 2", v, opened)
	}
	for range 4 { // "a" is used every 40 minutes, "b" never again
		c.add(40 * time.Minute)
		if _, err := p.Get("a", open("a-again")); err != nil {
			t.Fatal(err)
		}
	}
	if len(released) != 1 || released[0] != "b" || p.Len() != 1 {
		t.Fatalf("released %v, %d kept; want b released and a kept", released, p.Len())
	}
	if v, _ := p.Get("b", open("b2")); v != "b2" {
		t.Errorf("b after its release = %q, want a new value", v)
	}
}

func TestFailedOpenKeepsNothing(t *testing.T) {
	p := New[int](time.Hour, nil, nil)
	boom := errors.New("boom")
	if _, err := p.Get("k", func() (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("Get = %v, want the open error", err)
	}
	if p.Len() != 0 {
		t.Fatalf("a failed open kept %d values", p.Len())
	}
	if v, err := p.Get("k", func() (int, error) { return 7, nil }); err != nil || v != 7 {
		t.Fatalf("Get after a failure = %d, %v; want 7", v, err)
	}
}

func TestConcurrentGetsOpenOnce(t *testing.T) {
	p := New[*int](time.Hour, nil, nil)
	var mu sync.Mutex
	opens := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			_, _ = p.Get("k", func() (*int, error) { mu.Lock(); opens++; mu.Unlock(); return new(int), nil })
		})
	}
	wg.Wait()
	if opens != 1 {
		t.Fatalf("16 concurrent Gets opened %d values, want 1", opens)
	}
}
