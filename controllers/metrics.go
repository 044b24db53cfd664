package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prometheus/client_golang/prometheus"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/metrics"
	"github.com/ferrycd/ferry/internal/signature"
)

// discardMetrics records into a registry nobody scrapes, for reconcilers built without metrics.
var discardMetrics = func() *metrics.Recorder {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		panic(err) // only a programming error in metrics.New can fail on an empty registry
	}
	return m
}()

func (r *PromotionReconciler) metrics() *metrics.Recorder {
	if r.Metrics != nil {
		return r.Metrics
	}
	return discardMetrics
}

func (s *scope) metricsStage(i int) metrics.Stage {
	return metrics.Stage{Namespace: s.p.Namespace, Promotion: s.p.Name, Stage: s.p.Spec.Stages[i].Name}
}

// since is how long ago t was, zero when unknown.
func (s *scope) since(t *metav1.Time) time.Duration {
	if t == nil {
		return 0
	}
	return s.now.Sub(t.Time)
}

func verificationReason(k signature.Kind) metrics.VerificationReason {
	switch k {
	case signature.KindUnsigned:
		return metrics.VerificationUnsigned
	case signature.KindUntrusted:
		return metrics.VerificationUntrusted
	case signature.KindDigestMismatch:
		return metrics.VerificationDigestMismatch
	case signature.KindMissingAttestation:
		return metrics.VerificationMissingAttestation
	case signature.KindNotFound:
		return metrics.VerificationNotFound
	case signature.KindTooLarge:
		return metrics.VerificationTooLarge
	}
	return metrics.VerificationMalformed
}

func rollbackReason(reason string) metrics.RollbackReason {
	switch reason {
	case ReasonHealthFailed:
		return metrics.RollbackHealthFailed
	case ReasonAnalysisFailed:
		return metrics.RollbackAnalysisFailed
	}
	return metrics.RollbackManual
}

// initMetrics creates a Promotion's most watched counters at zero the first time this process sees it, so that
// its first failure shows in rate() and increase().
func (r *PromotionReconciler) initMetrics(p *ferryv1.Promotion) {
	key := p.Namespace + "/" + p.Name + "/" + string(p.UID)
	if _, seen := r.seen.LoadOrStore(key, struct{}{}); seen {
		return
	}
	m := r.metrics()
	for _, st := range p.Spec.Stages {
		m.InitStage(metrics.Stage{Namespace: p.Namespace, Promotion: p.Name, Stage: st.Name})
	}
}

// recordOutcome counts a digest's outcome in a stage and, when it was promoted, how long it took.
func (r *PromotionReconciler) recordOutcome(s *scope, i int, outcome ferryv1.Outcome) {
	m, st := r.metrics(), s.stage(i)
	m.CountPromotion(s.metricsStage(i), metrics.ResultOf(outcome))
	if outcome == ferryv1.OutcomePromoted && st.InFlightSince != nil {
		m.ObservePromotionDuration(s.metricsStage(i), s.since(st.InFlightSince))
	}
}
