package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// change is what an open page learns about a Promotion: which one changed and how. The page fetches the fresh
// server-rendered fragment itself, so no status content travels in the stream.
type change struct {
	Type      string `json:"type"` // ADDED, MODIFIED, DELETED, or one of the types below
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Problem   string `json:"problem,omitempty"`
}

// Changes that concern every page: live updates stopped (problem says why), or resumed after a gap in which
// changes may have been missed, so every page refreshes.
const (
	changeProblem = "PROBLEM"
	changeResync  = "RESYNC"
)

// subscriberBuffer bounds the changes queued for one page; a page that falls further behind is disconnected,
// and its browser reconnects and re-renders everything.
const subscriberBuffer = 64

// broker fans the watch out to the event streams of open pages.
type broker struct {
	mu      sync.Mutex
	subs    map[chan change]struct{}
	problem string // why live updates are not flowing, or ""
}

func newBroker() *broker { return &broker{subs: map[chan change]struct{}{}} }

func (b *broker) subscribe() (chan change, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan change, subscriberBuffer)
	b.subs[ch] = struct{}{}
	return ch, b.problem
}

func (b *broker) unsubscribe(ch chan change) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[ch]; ok {
		delete(b.subs, ch)
		close(ch)
	}
}

func (b *broker) publish(c change) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.publishLocked(c)
}

func (b *broker) publishLocked(c change) {
	for ch := range b.subs {
		select {
		case ch <- c:
		default: // too far behind: drop the page, which reconnects and refreshes
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// setProblem records why live updates stopped ("" when they flow) and tells open pages when that changes.
func (b *broker) setProblem(p string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p == b.problem {
		return
	}
	b.problem = p
	if p == "" {
		b.publishLocked(change{Type: changeResync})
		return
	}
	b.publishLocked(change{Type: changeProblem, Problem: p})
}

// Watch restarts back off from a second to half a minute, so that a user without the right to watch does not
// hammer the API server.
const (
	minWatchBackoff = time.Second
	maxWatchBackoff = 30 * time.Second
)

// run watches Promotions until ctx ends, resuming from the last resourceVersion it saw after the API server
// closes a watch, and starting afresh when that version is too old.
func (b *broker) run(ctx context.Context, c client.WithWatch, ns string, log io.Writer) {
	backoff, version := minWatchBackoff, ""
	for ctx.Err() == nil {
		var err error
		version, err = b.watchOnce(ctx, c, ns, version)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = minWatchBackoff
			continue // the API server ended the watch, as it does every few minutes
		}
		if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
			version = ""
			continue
		}
		b.setProblem(fmt.Sprintf("live updates stopped: watching Promotions: %v; retrying", err))
		fmt.Fprintf(log, "dashboard: watching Promotions: %v (retrying in %s)\n", err, backoff)
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		backoff = min(2*backoff, maxWatchBackoff)
	}
}

// watchOnce runs one watch and returns the last resourceVersion it saw.
func (b *broker) watchOnce(ctx context.Context, c client.WithWatch, ns, version string) (string, error) {
	opts := &client.ListOptions{Namespace: ns, Raw: &metav1.ListOptions{ResourceVersion: version, AllowWatchBookmarks: true}}
	w, err := c.Watch(ctx, &ferryv1.PromotionList{}, opts)
	if err != nil {
		return version, err
	}
	defer w.Stop()
	b.setProblem("")
	for {
		select {
		case <-ctx.Done():
			return version, nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return version, nil
			}
			switch ev.Type {
			case watch.Error:
				return version, apierrors.FromObject(ev.Object)
			case watch.Bookmark:
				if p, ok := ev.Object.(*ferryv1.Promotion); ok {
					version = p.ResourceVersion
				}
			case watch.Added, watch.Modified, watch.Deleted:
				if p, ok := ev.Object.(*ferryv1.Promotion); ok {
					version = p.ResourceVersion
					b.publish(change{Type: string(ev.Type), Namespace: p.Namespace, Name: p.Name})
				}
			}
		}
	}
}

// eventsHeartbeat keeps the stream alive through idle periods and notices a closed page.
const eventsHeartbeat = 25 * time.Second

// handleEvents streams changes to one open page as Server-Sent Events named "change": each names the Promotion
// that changed, or says that live updates stopped (and why) or resumed.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported", http.StatusInternalServerError)
		return
	}
	ch, problem := s.events.subscribe()
	defer s.events.unsubscribe(ch)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	fmt.Fprint(w, "retry: 2000\n\n")
	if problem != "" {
		writeEvent(w, "change", change{Type: changeProblem, Problem: problem})
	}
	flusher.Flush()
	heartbeat := time.NewTicker(eventsHeartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-heartbeat.C:
			fmt.Fprint(w, ": heartbeat\n\n")
		case c, ok := <-ch:
			if !ok {
				return // fell behind: the browser reconnects and refreshes
			}
			writeEvent(w, "change", c)
		}
		flusher.Flush()
	}
}

// writeEvent writes one event; its data is JSON, which holds no newline, so one data line carries it.
func writeEvent(w io.Writer, name string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
}
