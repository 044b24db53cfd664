package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// progress counts where the fleet's Promotions are.
type progress struct {
	total, observed, settled, stalled int
	promoted                          map[string]int // per stage: Promoted with a digest and nothing in flight
}

func (p progress) String() string {
	return fmt.Sprintf("%d/%d observed, promoted dev %d staging %d prod %d, %d Ready, %d stalled",
		p.observed, p.total, p.promoted["dev"], p.promoted["staging"], p.promoted["prod"], p.settled, p.stalled)
}

// look lists every Promotion and counts: observed (status.observedGeneration == generation and a Ready
// condition: the controller has reconciled the current spec), settled (Ready=True: every stage runs the
// newest digest it may take), stalled.
func look(ctx context.Context, c client.Client) (progress, error) {
	var list ferryv1.PromotionList
	if err := c.List(ctx, &list); err != nil {
		return progress{}, fmt.Errorf("listing Promotions: %w", err)
	}
	p := progress{total: len(list.Items), promoted: map[string]int{}}
	for i := range list.Items {
		pr := &list.Items[i]
		ready := apimeta.FindStatusCondition(pr.Status.Conditions, ferryv1.ConditionReady)
		if ready != nil && pr.Status.ObservedGeneration == pr.Generation {
			p.observed++
		}
		if ready != nil && ready.Status == metav1.ConditionTrue {
			p.settled++
		}
		if apimeta.IsStatusConditionTrue(pr.Status.Conditions, ferryv1.ConditionStalled) {
			p.stalled++
		}
		for _, st := range pr.Status.Stages {
			if st.Phase == ferryv1.PhasePromoted && st.Digest != "" && st.InFlightDigest == "" {
				p.promoted[st.Name]++
			}
		}
	}
	return p, nil
}

// firstPass is how long the controller took, from its start, until every Promotion was observed, and until every
// Promotion was settled with all its stages promoted.
type firstPass struct {
	observed, settled time.Duration
	last              progress
}

// waitFirstPass polls the API server once a second until the whole fleet is settled or ctx ends.
func waitFirstPass(ctx context.Context, c client.Client, n int, start time.Time) (firstPass, error) {
	var fp firstPass
	lastPrint := time.Now()
	err := waitFor(ctx, time.Second, func() (bool, error) {
		p, err := look(ctx, c)
		if err != nil {
			return false, err
		}
		fp.last = p
		if fp.observed == 0 && p.observed == n {
			fp.observed = time.Since(start)
			fmt.Printf("  every Promotion observed after %s\n", fp.observed.Round(100*time.Millisecond))
		}
		if p.settled == n && p.promoted["prod"] == n {
			fp.settled = time.Since(start)
			return true, nil
		}
		if time.Since(lastPrint) >= 15*time.Second {
			lastPrint = time.Now()
			fmt.Printf("  %s: %s\n", time.Since(start).Round(time.Second), p)
		}
		return false, nil
	})
	return fp, err
}

// resync is the restarted controller's pass over a settled fleet.
type resync struct {
	took       time.Duration
	reconciles float64
}

// waitResync waits until the restarted controller has reconciled every Promotion and its queue is empty: the
// informer lists all n Promotions at start, so the first n reconciles are the resync.
func waitResync(ctx context.Context, ctl *controller, n int) (resync, error) {
	var r resync
	err := waitFor(ctx, 100*time.Millisecond, func() (bool, error) {
		families, err := ctl.scrape()
		if err != nil {
			return false, nil // the endpoint is up with the manager; keep polling until it answers
		}
		total := sumValues(promotionSeries(families, "controller_runtime_reconcile_total", nil))
		depth := sumValues(promotionSeries(families, "workqueue_depth", nil))
		active := sumValues(promotionSeries(families, "controller_runtime_active_workers", nil))
		if total >= float64(n) && depth == 0 && active == 0 {
			r = resync{took: time.Since(ctl.started), reconciles: total}
			return true, nil
		}
		return false, nil
	})
	return r, err
}

// webhookRun is the time from a registry notification to the dev commit for the new digest on the Git server,
// with the steps the controller's events time.
type webhookRun struct {
	digest                              string
	toCommit                            time.Duration // notification sent -> commit on the server
	toStarted, copyTime, toCommittedEvt time.Duration // from events; zero when an event was not found
	pushAndSign                         time.Duration // CI's part, before the notification
}

// measureWebhook releases 1.1.0 of a, notifies the controller as a registry would, and waits for the dev pin.
func measureWebhook(ctx context.Context, c client.Client, w *world, ctl *controller, a app) (webhookRun, error) {
	var run webhookRun
	began := time.Now()
	d, err := w.release(a.source(), "1.1.0")
	if err != nil {
		return run, err
	}
	run.digest, run.pushAndSign = d.DigestStr(), time.Since(began)
	sent := time.Now()
	if err := ctl.notify(w.SourceRegistry + "/" + a.source()); err != nil {
		return run, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := waitFor(waitCtx, 20*time.Millisecond, func() (bool, error) {
		return pinnedOnServer(w.repoDir(a.tenant), run.digest, "dev")
	}); err != nil {
		return run, fmt.Errorf("waiting for the dev commit of %s: %w", run.digest, err)
	}
	run.toCommit = time.Since(sent)
	run.toStarted, run.copyTime, run.toCommittedEvt = stepTimes(ctx, c, a, run.digest, sent)
	return run, nil
}

// pinnedOnServer reports whether main in the bare repository has Ferry's commit of digest for stage.
func pinnedOnServer(bare, digest, stage string) (bool, error) {
	out, err := exec.Command("git", "-C", bare, "log", "main", "-n", "20", "--format=%H",
		"--grep=Ferry-Digest: "+digest, "--grep=Ferry-Stage: "+stage, "--all-match").Output()
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", bare, err)
	}
	return strings.TrimSpace(string(out)) != "", nil
}

// stepTimes reads the controller's events for the dev stage of digest: PromotionStarted (discovered and
// verified), Copied (copied and verified in the stage registry) and Committed, as offsets from sent and the copy
// as Copied minus PromotionStarted. Events are written asynchronously, so it waits a little for them.
func stepTimes(ctx context.Context, c client.Client, a app, digest string, sent time.Time) (started, copied, committed time.Duration) {
	find := func(list *eventsv1.EventList, reason string) time.Time {
		for _, e := range list.Items {
			if e.Reason == reason && e.Regarding.Name == a.name && strings.Contains(e.Note, "stage dev:") &&
				strings.Contains(e.Note, digest) {
				return e.EventTime.Time
			}
		}
		return time.Time{}
	}
	var ts, tc, tg time.Time
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = waitFor(waitCtx, 200*time.Millisecond, func() (bool, error) {
		var list eventsv1.EventList
		if err := c.List(ctx, &list, client.InNamespace(a.tenant)); err != nil {
			return false, nil
		}
		ts, tc, tg = find(&list, "PromotionStarted"), find(&list, "Copied"), find(&list, "Committed")
		return !ts.IsZero() && !tc.IsZero() && !tg.IsZero(), nil
	})
	offset := func(t time.Time) time.Duration {
		if t.IsZero() {
			return 0
		}
		return t.Sub(sent)
	}
	if !ts.IsZero() && !tc.IsZero() {
		copied = tc.Sub(ts)
	}
	return offset(ts), copied, offset(tg)
}
