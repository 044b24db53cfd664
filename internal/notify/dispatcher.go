package notify

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// Bounds of the dispatcher.
const (
	DefaultWorkers = 4
	// DefaultMaxTracked bounds the deliveries queued, in flight, waiting for a retry or waiting to be reported:
	// Submit refuses more, and the caller offers them again later.
	DefaultMaxTracked = 4096
	// outcomeTTL is how long a finished delivery's outcome is kept for the caller to read, again and again if it
	// must (a status write that failed, a cache that lags), before it is forgotten.
	outcomeTTL = 10 * time.Minute
)

// Options configure a Dispatcher; zero values take the defaults.
type Options struct {
	Policy
	Workers    int
	MaxTracked int
	// Client sends the requests; nil builds one that follows no redirects.
	Client *http.Client
	// Now is the clock (time.Now by default).
	Now func() time.Time
}

// Delivery is one message for one receiver, on behalf of an owner (a Promotion's "namespace/name").
type Delivery struct {
	Owner    string
	Receiver Receiver
	Message  Message
}

// Outcome is what became of a delivery.
type Outcome struct {
	ID        string
	Owner     string
	Receiver  string
	Delivered bool
	Attempts  int
	// Err says why the last attempt failed; it never holds the URL or the key.
	Err string
}

// tracked is a delivery the dispatcher knows of: waiting or in flight (done nil), or finished.
type tracked struct {
	delivery Delivery
	attempts int
	done     *Outcome
	doneAt   time.Time
}

// Dispatcher posts deliveries off the caller's path: a bounded queue, a fixed number of workers each making one
// attempt at a time, and retries scheduled with exponential backoff rather than waited for, so that a receiver
// that is down never holds a worker others need. It remembers each delivery id it was given until its outcome was
// reported and kept for a while, so that a delivery offered again meanwhile is not sent twice.
type Dispatcher struct {
	o      Options
	client *http.Client
	queue  chan string

	mu      sync.Mutex
	tracked map[string]*tracked
	onDone  func(Outcome)
	ctx     context.Context // set by Start; retries scheduled after it ends are dropped
}

// NewDispatcher builds a Dispatcher; Start runs its workers.
func NewDispatcher(o Options) *Dispatcher {
	o.Policy = o.Policy.withDefaults()
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.MaxTracked <= 0 {
		o.MaxTracked = DefaultMaxTracked
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	client := o.Client
	if client == nil {
		client = newClient()
	}
	return &Dispatcher{o: o, client: client, queue: make(chan string, 2*o.MaxTracked), tracked: map[string]*tracked{}}
}

// OnDone sets the function told of each finished delivery, from a worker; it must not block.
func (d *Dispatcher) OnDone(f func(Outcome)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.onDone = f
}

// Submit queues a delivery and reports whether it was taken. A delivery whose id the dispatcher already knows
// (queued, in flight, or finished and not yet forgotten) is not taken again; nor is any delivery while MaxTracked
// are known.
func (d *Dispatcher) Submit(dl Delivery) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sweepLocked()
	id := dl.Message.DeliveryID
	if _, known := d.tracked[id]; known || id == "" || len(d.tracked) >= d.o.MaxTracked {
		return false
	}
	select {
	case d.queue <- id:
		d.tracked[id] = &tracked{delivery: dl}
		return true
	default: // ids of forgotten deliveries still fill the queue; offer it again later
		return false
	}
}

// Known reports whether the dispatcher knows a delivery id (queued, in flight, or finished and kept).
func (d *Dispatcher) Known(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.tracked[id]
	return ok
}

// Outcomes returns the outcomes of owner's finished deliveries among ids.
func (d *Dispatcher) Outcomes(owner string, ids []string) []Outcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Outcome
	for _, id := range ids {
		if t, ok := d.tracked[id]; ok && t.done != nil && t.delivery.Owner == owner {
			out = append(out, *t.done)
		}
	}
	return out
}

// Forget drops everything known of owner's deliveries (its Promotion is gone); attempts under way finish.
func (d *Dispatcher) Forget(owner string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, t := range d.tracked {
		if t.delivery.Owner == owner {
			delete(d.tracked, id)
		}
	}
}

// sweepLocked forgets outcomes older than outcomeTTL.
func (d *Dispatcher) sweepLocked() {
	now := d.o.Now()
	for id, t := range d.tracked {
		if t.done != nil && now.Sub(t.doneAt) > outcomeTTL {
			delete(d.tracked, id)
		}
	}
}

// Start runs the workers until ctx ends (a manager.Runnable). Deliveries still waiting then are abandoned: the
// caller keeps what it owes and offers it again to the next Dispatcher.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.mu.Lock()
	d.ctx = ctx
	d.mu.Unlock()
	var wg sync.WaitGroup
	for range d.o.Workers {
		wg.Go(func() { d.work(ctx) })
	}
	wg.Wait()
	return nil
}

func (d *Dispatcher) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-d.queue:
			d.try(ctx, id)
		}
	}
}

// try makes one attempt of delivery id, then finishes it or schedules its next attempt.
func (d *Dispatcher) try(ctx context.Context, id string) {
	d.mu.Lock()
	t, ok := d.tracked[id]
	if !ok || t.done != nil {
		d.mu.Unlock()
		return // forgotten meanwhile
	}
	t.attempts++
	dl, n := t.delivery, t.attempts
	d.mu.Unlock()

	err := attempt(ctx, d.client, d.o.Policy, dl.Receiver, dl.Message, d.o.Now())
	if ctx.Err() != nil {
		return // stopping: the attempt says nothing about the receiver
	}
	var ae *attemptError
	if errors.As(err, &ae) && ae.retry && n < d.o.Attempts {
		time.AfterFunc(d.o.Delay(n), func() { d.requeue(id) })
		return
	}
	out := Outcome{ID: id, Owner: dl.Owner, Receiver: dl.Receiver.Name, Delivered: err == nil, Attempts: n}
	if err != nil {
		out.Err = err.Error()
	}
	d.mu.Lock()
	t.done, t.doneAt = &out, d.o.Now()
	onDone := d.onDone
	d.mu.Unlock()
	if onDone != nil {
		onDone(out)
	}
}

// requeue puts a delivery back in the queue for its next attempt, unless it was forgotten or the dispatcher stopped.
func (d *Dispatcher) requeue(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tracked[id]; !ok || (d.ctx != nil && d.ctx.Err() != nil) {
		return
	}
	select {
	case d.queue <- id:
	default: // full for now: wait once more rather than block a timer or drop the delivery
		time.AfterFunc(d.o.Backoff, func() { d.requeue(id) })
	}
}
