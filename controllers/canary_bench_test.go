package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// argoRolloutsBadSampleToStable is what Argo Rollouts v1.10.2 took here, with the same analysis settings
// (interval 5 s, failure limit 1), from the first bad sample to its stable ReplicaSet serving alone again — without
// touching Git.
const argoRolloutsBadSampleToStable = 4.8

// BenchmarkCanaryFailureToRollback measures, on the real API server, Git server and sync engine, a canary that is
// bad from its first sample with the analysis settings the Argo Rollouts figure was taken with (interval 5 s,
// failure limit 1): the time from the failing verdict to the previous digest committed, pushed and synced
// healthy (target 5 s), and from the first bad sample (the canary's pods ready) to the stable workload serving
// alone again (the copies gone; the stable workload never left the previous digest) and to the rollback synced.
func BenchmarkCanaryFailureToRollback(b *testing.B) {
	for n := 0; n < b.N; n++ {
		f := newCanaryFixture(b)
		p := f.promotion()
		p.Spec.Stages[0].Canary.Steps[0].Pause = &metav1.Duration{Duration: time.Minute}
		p.Spec.Stages[0].Analysis.Interval = &metav1.Duration{Duration: 5 * time.Second}
		p.Spec.Stages[0].Analysis.FailureLimit = 1
		p.Spec.Stages[0].Analysis.MinSamples = 1
		v1 := f.running(b, p)
		f.prom.set("canary", constant(0.5))
		bad := f.pushRelease(b, "1.1.0", true).DigestStr()

		var firstSample, verdict, copiesGone, rolledBack time.Time
		eventually(b, "the canary to roll back", func() (bool, string) {
			st := getPromotion(b, f.e.Client, f.ns, p.Name).Status.Stages[0]
			now := time.Now()
			a := st.Analysis
			if firstSample.IsZero() && a != nil && a.Digest == bad && a.StepStartedAt != nil {
				firstSample = now
			}
			if verdict.IsZero() && (st.Phase == ferryv1.PhaseRollingBack || (a != nil && a.Digest == bad && a.Phase == ferryv1.AnalysisFailed)) {
				verdict = now
			}
			if !verdict.IsZero() && copiesGone.IsZero() && len(f.copies(b)) == 0 {
				copiesGone = now // the stable workload serves alone again
			}
			if st.Phase == ferryv1.PhaseRolledBack && st.Digest == v1 && !copiesGone.IsZero() {
				rolledBack = now
				return true, ""
			}
			return false, string(st.Phase)
		})
		if firstSample.IsZero() || verdict.IsZero() {
			b.Fatalf("missed a moment: first sample %v, verdict %v", firstSample, verdict)
		}
		toStable := copiesGone.Sub(firstSample).Seconds()
		b.ReportMetric(rolledBack.Sub(verdict).Seconds(), "verdict-to-rollback-synced-s")
		b.ReportMetric(toStable, "bad-sample-to-stable-alone-s")
		b.ReportMetric(toStable/argoRolloutsBadSampleToStable, "x-argo-rollouts")
		b.ReportMetric(rolledBack.Sub(firstSample).Seconds(), "bad-sample-to-rollback-synced-s")
	}
}
