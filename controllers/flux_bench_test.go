package controllers

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// BenchmarkSyncModeCommitToHealthy measures, for one stage on the real API server and Git server, the time from
// Ferry's commit (seen in the stage's status) to the stage seen healthy, for each new release: synced by Ferry
// itself (gitops-engine), and by a real Flux Kustomization that Ferry asks to reconcile (its GitRepository and
// Kustomization intervals are an hour, so only Ferry's request makes Flux act). Run it with
// `go test -run '^$' -bench SyncModeCommitToHealthy -benchtime 5x ./controllers/`; each iteration is a release.
func BenchmarkSyncModeCommitToHealthy(b *testing.B) {
	for _, mode := range []ferryv1.SyncMode{ferryv1.SyncFerry, ferryv1.SyncFlux} {
		b.Run(string(mode), func(b *testing.B) {
			f := newFluxFixture(b, "dev")
			p := f.promotion()
			if mode == ferryv1.SyncFerry {
				p.Spec.Stages[0].Sync.Mode, p.Spec.Stages[0].Sync.Flux = ferryv1.SyncFerry, nil
			} else {
				f.createKustomization(b, "dev", false)
			}
			startManager(b, f.engines(b))
			if err := f.e.Client.Create(context.Background(), p); err != nil {
				b.Fatal(err)
			}
			var took, ready []time.Duration
			commit := ""
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				digest := f.pushRelease(b, fmt.Sprintf("1.%d.0", n), true).DigestStr()
				var d, r time.Duration
				d, r, commit = f.commitToHealthy(b, p.Name, digest, commit, mode == ferryv1.SyncFlux)
				took, ready = append(took, d), append(ready, r)
			}
			b.StopTimer()
			reportSeconds(b, took, "commit-to-healthy")
			if mode == ferryv1.SyncFlux {
				reportSeconds(b, ready, "commit-to-flux-ready")
			}
		})
	}
}

// reportSeconds reports the mean, median and maximum of durations.
func reportSeconds(b *testing.B, durations []time.Duration, what string) {
	sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
	var sum time.Duration
	for _, d := range durations {
		sum += d
	}
	b.ReportMetric(sum.Seconds()/float64(len(durations)), "mean-"+what+"-s")
	b.ReportMetric(durations[len(durations)/2].Seconds(), "median-"+what+"-s")
	b.ReportMetric(durations[len(durations)-1].Seconds(), "max-"+what+"-s")
}

// commitToHealthy polls the stage every 10 ms and returns the time from its last commit first differing from
// previous (Ferry recorded its commit pinning digest) to digest first showing healthy, and that commit. With
// flux, it also returns the time from the commit to the Kustomization first showing it applied and Ready, so that
// what Flux takes and what Ferry adds are told apart.
func (f *fluxFixture) commitToHealthy(b *testing.B, name, digest, previous string, flux bool) (healthy, fluxReady time.Duration, commit string) {
	b.Helper()
	var committed, healthyAt, readyAt time.Time
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ; healthyAt.IsZero() && time.Now().Before(deadline); <-tick.C {
		st := getPromotion(b, f.e.Client, f.pipelineFixture.ns, name).Status.Stages
		now := time.Now()
		if len(st) > 0 && committed.IsZero() && st[0].LastCommit != previous {
			committed, commit = now, st[0].LastCommit
		}
		if flux && !committed.IsZero() && readyAt.IsZero() {
			if ok, _ := f.appliedCommit(b, "dev", commit); ok {
				readyAt = now
			}
		}
		if len(st) > 0 && st[0].Digest == digest && !committed.IsZero() {
			healthyAt = now
		}
	}
	if healthyAt.IsZero() {
		b.Fatalf("%s: committed at %v, never healthy", digest, committed)
	}
	if readyAt.IsZero() {
		readyAt = healthyAt // seen together within one poll
	}
	return healthyAt.Sub(committed), readyAt.Sub(committed), commit
}
