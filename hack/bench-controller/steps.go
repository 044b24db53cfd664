package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// stepSpans are the pipeline's steps as the controller's events bound them, in order: each span runs from the
// event that ends the previous step to the event that ends this one.
var stepSpans = []struct{ name, from, to string }{
	{"copy + re-verify", "PromotionStarted", "Copied"},
	{"pin: commit + push", "Copied", "Committed"},
	{"sync: checkout + render + apply", "Committed", "Synced"},
	{"health (includes the requeue wait)", "Synced", "Healthy"},
	{"healthy -> promoted", "Healthy", "Promoted"},
}

// stepStats is the distribution of one span over every stage of the fleet.
type stepStats struct {
	name          string
	n             int
	slow          int // spans of 5 s or more
	p50, p99, max time.Duration
}

// stepBreakdown reads the events of every tenant namespace and returns, per step, how long it took across the
// fleet's stages: what dominated the first run. Events carry microsecond times (events.k8s.io/v1 eventTime).
func stepBreakdown(ctx context.Context, c client.Client, f fleet) ([]stepStats, error) {
	// times[stage key][reason] is the first time the event was emitted for that stage.
	times := map[string]map[string]time.Time{}
	for _, t := range f.tenants {
		var list eventsv1.EventList
		if err := c.List(ctx, &list, client.InNamespace(t)); err != nil {
			return nil, fmt.Errorf("listing events in %s: %w", t, err)
		}
		for _, e := range list.Items {
			stage, ok := stageOf(e.Note)
			if !ok || e.EventTime.IsZero() {
				continue
			}
			key := e.Regarding.Namespace + "/" + e.Regarding.Name + "/" + stage
			if times[key] == nil {
				times[key] = map[string]time.Time{}
			}
			if prev, seen := times[key][e.Reason]; !seen || e.EventTime.Time.Before(prev) {
				times[key][e.Reason] = e.EventTime.Time
			}
		}
	}
	var out []stepStats
	for _, span := range stepSpans {
		var ds []time.Duration
		for _, reasons := range times {
			from, okFrom := reasons[span.from]
			to, okTo := reasons[span.to]
			if okFrom && okTo && !to.Before(from) {
				ds = append(ds, to.Sub(from))
			}
		}
		out = append(out, summarize(span.name, ds))
	}
	return out, nil
}

// stageOf reads the stage from a stage event's note ("stage dev: ...").
func stageOf(note string) (string, bool) {
	rest, ok := strings.CutPrefix(note, "stage ")
	if !ok {
		return "", false
	}
	stage, _, ok := strings.Cut(rest, ":")
	return stage, ok
}

func summarize(name string, ds []time.Duration) stepStats {
	s := stepStats{name: name, n: len(ds)}
	if len(ds) == 0 {
		return s
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	s.p50, s.p99, s.max = at(0.50), at(0.99), ds[len(ds)-1]
	for _, d := range ds {
		if d >= 5*time.Second {
			s.slow++
		}
	}
	return s
}
