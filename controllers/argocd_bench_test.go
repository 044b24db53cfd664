package controllers

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// BenchmarkArgoCDCommitToHealthy measures, for one stage synced by a real Argo CD on the test API server and Git
// server, the time from Ferry's commit to Ferry seeing the stage healthy, for each new release: with an
// Application that syncs automatically (Ferry asks for a refresh) and one that does not (Ferry asks for a sync to
// its commit). Argo CD's own resync is an hour away, so only Ferry's request makes it act, and only its watch of
// the Application makes Ferry look again before its 15 s health poll. Run it with
// `go test -run '^$' -bench ArgoCDCommitToHealthy -benchtime 5x ./controllers/`; each iteration is a release.
func BenchmarkArgoCDCommitToHealthy(b *testing.B) {
	for _, automated := range []bool{true, false} {
		name := "manual"
		if automated {
			name = "automated"
		}
		b.Run(name, func(b *testing.B) {
			f := newArgoFixture(b, "dev")
			f.application(b, "dev", automated)
			startManager(b, f.engines(b, newArgoSyncer(b)))
			p := f.promotion("dev")
			if err := f.e.Client.Create(context.Background(), p); err != nil {
				b.Fatal(err)
			}
			var took, argo []time.Duration
			commit := ""
			b.ResetTimer()
			for n := range b.N {
				digest := f.pushRelease(b, fmt.Sprintf("1.%d.0", n), true).DigestStr()
				var a time.Duration
				a, commit = f.argoCDHealthyAfterCommit(b, p.Name, commit)
				got := f.waitStages(b, p.Name, digest, ferryv1.PhasePromoted, "dev")
				took, argo = append(took, f.commitToHealthy(b, got, "dev", digest)), append(argo, a)
			}
			b.StopTimer()
			argoReport(b, took, "commit-to-healthy")
			argoReport(b, argo, "commit-to-argocd-healthy")
		})
	}
}

// argoCDHealthyAfterCommit polls every 10 ms for the stage's next commit (its last commit differing from
// previous) and returns how long after it Argo CD reported that commit synced and healthy, and the commit: what
// Argo CD takes, told apart from what Ferry adds.
func (f *argoFixture) argoCDHealthyAfterCommit(b *testing.B, name, previous string) (time.Duration, string) {
	b.Helper()
	var committed time.Time
	commit := ""
	ref := ExternalRef{Kind: "Application", Namespace: f.argo.ns, Name: "shop-dev"}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(argoWait); time.Now().Before(deadline); <-tick.C {
		if commit == "" {
			if st := stageNamed(getPromotion(b, f.e.Client, f.ns, name), "dev"); st.LastCommit != previous {
				committed, commit = time.Now(), st.LastCommit
			}
			continue
		}
		if f.argo.app(b, "shop-dev").assess(ref, commit).Healthy {
			return time.Since(committed), commit
		}
	}
	b.Fatalf("Argo CD never reported commit %q healthy", commit)
	return 0, ""
}

// argoReport reports the median and the maximum of durations, in seconds.
func argoReport(b *testing.B, durations []time.Duration, what string) {
	slices.Sort(durations)
	b.ReportMetric(durations[len(durations)/2].Seconds(), "median-"+what+"-s")
	b.ReportMetric(durations[len(durations)-1].Seconds(), "max-"+what+"-s")
}
