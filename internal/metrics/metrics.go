package metrics

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names, exported so that dashboards, alert rules and their tests refer to the same strings.
const (
	PromotionsTotal           = "ferry_promotions_total"
	PromotionDurationSeconds  = "ferry_promotion_duration_seconds"
	DiscoveredToHealthySecs   = "ferry_discovered_to_healthy_seconds"
	VerificationFailuresTotal = "ferry_verification_failures_total"
	CopyBytesTotal            = "ferry_copy_bytes_total"
	CopyRequestsTotal         = "ferry_copy_requests_total"
	RollbacksTotal            = "ferry_rollbacks_total"
	TimeToRollbackSeconds     = "ferry_time_to_rollback_seconds"
	StageDrift                = "ferry_stage_drift"
	StageDigestInfo           = "ferry_stage_digest_info"
	PullRequestWaitSeconds    = "ferry_pull_request_wait_seconds"
	AnalysisMeasurementsTotal = "ferry_analysis_measurements_total"
	AnalysisValue             = "ferry_analysis_value"
	NotificationsTotal        = "ferry_notifications_total"
	// WebhookNotificationsDroppedTotal is the controller's, not a Promotion's: it carries no labels.
	WebhookNotificationsDroppedTotal = "ferry_webhook_notifications_dropped_total"
)

// Label names.
const (
	labelNamespace = "namespace"
	labelPromotion = "promotion"
	labelStage     = "stage"
	labelResult    = "result"
	labelReason    = "reason"
	labelDigest    = "digest"
	labelMetric    = "metric"
	labelTrack     = "track"
	labelVerdict   = "verdict"
	labelReceiver  = "receiver"
)

// Buckets sized for continuous delivery, where a step takes seconds and a promotion through approval and soak
// takes hours. Prometheus' default buckets stop at 10 s and would put every promotion in +Inf.
var (
	// promotionBuckets: 10 s to 1 day.
	promotionBuckets = []float64{10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400}
	// rollbackBuckets: 5 s to 2 h; on-call cares about the minutes a bad digest keeps running.
	rollbackBuckets = []float64{5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200}
	// pullRequestBuckets: 1 min to 1 week; people merge pull requests across nights and weekends.
	pullRequestBuckets = []float64{60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800}
)

// Stage names one stage of one Promotion: the labels most series carry.
type Stage struct {
	Namespace string
	Promotion string
	Stage     string
}

// Promotion names one Promotion.
type Promotion struct {
	Namespace string
	Name      string
}

func (s Stage) values() []string { return []string{s.Namespace, s.Promotion, s.Stage} }

// Recorder records Ferry's metrics. It is safe for concurrent use by the reconciler's workers.
type Recorder struct {
	promotions           *prometheus.CounterVec
	promotionDuration    *prometheus.HistogramVec
	discoveredToHealthy  *prometheus.HistogramVec
	verificationFailures *prometheus.CounterVec
	copyBytes            *prometheus.CounterVec
	copyRequests         *prometheus.CounterVec
	rollbacks            *prometheus.CounterVec
	timeToRollback       *prometheus.HistogramVec
	drift                *prometheus.GaugeVec
	digestInfo           *prometheus.GaugeVec
	pullRequestWait      *prometheus.HistogramVec
	measurements         *prometheus.CounterVec
	analysisValue        *prometheus.GaugeVec
	webhookDropped       prometheus.Counter
	notifications        *prometheus.CounterVec

	// mu guards digests, the digest each stage's info series currently carries, so that the old series is
	// deleted when the digest changes instead of both reading 1.
	mu      sync.Mutex
	digests map[Stage]string
}

// New creates a Recorder and registers its metrics on reg: controller-runtime's metrics.Registry in the
// manager, so that its /metrics endpoint serves them, or a test's own registry. Nothing registers on import, so
// a second New on the same registry is the only way to get a duplicate-registration error.
func New(reg prometheus.Registerer) (*Recorder, error) {
	stage := []string{labelNamespace, labelPromotion, labelStage}
	with := func(extra ...string) []string { return append(append([]string{}, stage...), extra...) }
	r := &Recorder{
		promotions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: PromotionsTotal,
			Help: "Digests whose time in a stage ended, by result: promoted, failed, rolled_back, rejected or superseded."},
			with(labelResult)),
		promotionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: PromotionDurationSeconds,
			Help:    "Seconds from a digest entering a stage to the stage being promoted, approval and soak included.",
			Buckets: promotionBuckets}, stage),
		discoveredToHealthy: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: DiscoveredToHealthySecs,
			Help:    "Seconds from a digest being discovered at the source to it running healthy in a stage.",
			Buckets: promotionBuckets}, stage),
		verificationFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: VerificationFailuresTotal,
			Help: "Digests that failed signature or attestation verification, by reason."},
			[]string{labelNamespace, labelPromotion, labelReason}),
		copyBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: CopyBytesTotal,
			Help: "Bytes of blobs and manifests copied into a stage's registry."}, stage),
		copyRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: CopyRequestsTotal,
			Help: "Registry requests made while copying digests into a stage's registry."}, stage),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: RollbacksTotal,
			Help: "Rollbacks Ferry started in a stage, by reason: manual, analysis_failed or health_failed."},
			with(labelReason)),
		timeToRollback: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: TimeToRollbackSeconds,
			Help:    "Seconds from a rollback being decided (failure seen or annotation set) to the older digest running healthy.",
			Buckets: rollbackBuckets}, stage),
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: StageDrift,
			Help: "1 when the digest running in a stage's cluster differs from the digest Git declares, else 0."}, stage),
		digestInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: StageDigestInfo,
			Help: "Always 1, for the digest each stage runs now; older digests have no series."}, with(labelDigest)),
		pullRequestWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: PullRequestWaitSeconds,
			Help:    "Seconds an approval pull request stayed open, from opened to merged or closed.",
			Buckets: pullRequestBuckets}, stage),
		measurements: prometheus.NewCounterVec(prometheus.CounterOpts{Name: AnalysisMeasurementsTotal,
			Help: "Analysis measurements taken, by metric, track (canary, baseline, stable) and verdict (Pass, Fail, Inconclusive)."},
			with(labelMetric, labelTrack, labelVerdict)),
		analysisValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: AnalysisValue,
			Help: "The last value an analysis read, by metric and track; absent while the last reading had no number."},
			with(labelMetric, labelTrack)),
		webhookDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: WebhookNotificationsDroppedTotal,
			Help: "Registry notifications the controller could not queue because too many wake-ups were waiting; the webhook answers 503 so that the registry retries."}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NotificationsTotal,
			Help: "Notifications to a Promotion's receivers, by result: delivered, failed (after every retry) or dropped (the outbox was full)."},
			[]string{labelNamespace, labelPromotion, labelReceiver, labelResult}),
		digests: map[Stage]string{},
	}
	for i, c := range r.collectors() {
		if err := reg.Register(c); err != nil {
			// Leave the registry as it was, so that a failed New has no half-registered metrics.
			for _, done := range r.collectors()[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("registering Ferry's metrics: %w", err)
		}
	}
	return r, nil
}

func (r *Recorder) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.promotions, r.promotionDuration, r.discoveredToHealthy, r.verificationFailures,
		r.copyBytes, r.copyRequests, r.rollbacks, r.timeToRollback, r.drift, r.digestInfo, r.pullRequestWait,
		r.measurements, r.analysisValue, r.webhookDropped, r.notifications}
}

// Names lists the metric names the Recorder registers, for tests that keep dashboards and alerts honest.
func Names() []string {
	return []string{PromotionsTotal, PromotionDurationSeconds, DiscoveredToHealthySecs, VerificationFailuresTotal,
		CopyBytesTotal, CopyRequestsTotal, RollbacksTotal, TimeToRollbackSeconds, StageDrift, StageDigestInfo,
		PullRequestWaitSeconds, AnalysisMeasurementsTotal, AnalysisValue, WebhookNotificationsDroppedTotal, NotificationsTotal}
}

// InitStage creates at zero the stage's counters that dashboards and alerts rate() — promoted and failed
// promotions, automatic rollbacks — so that a stage's first failure shows in rate() and increase() (a series born
// at 1 has no increase) and panels show zeros instead of gaps. The rarer series (manual rollbacks, rejections,
// supersedes, copies) are born at their first event: a zero series for every combination costs about 30 MiB per
// 1,000 Promotions, and the alert rules catch a series born at 1 with their `unless … offset` clause. Call it when
// the reconciler first sees a stage; Forget removes the series again.
func (r *Recorder) InitStage(s Stage) {
	for _, res := range []Result{ResultPromoted, ResultFailed} {
		r.promotions.WithLabelValues(s.Namespace, s.Promotion, s.Stage, res.label())
	}
	r.rollbacks.WithLabelValues(s.Namespace, s.Promotion, s.Stage, RollbackHealthFailed.label())
}

// CountPromotion counts a digest's time in a stage ending with result.
func (r *Recorder) CountPromotion(s Stage, result Result) {
	r.promotions.WithLabelValues(s.Namespace, s.Promotion, s.Stage, result.label()).Inc()
}

// ObservePromotionDuration records the time from a digest entering the stage to the stage being promoted.
func (r *Recorder) ObservePromotionDuration(s Stage, d time.Duration) {
	r.promotionDuration.WithLabelValues(s.values()...).Observe(seconds(d))
}

// ObserveDiscoveredToHealthy records the time from discovery at the source to the digest running healthy in s.
func (r *Recorder) ObserveDiscoveredToHealthy(s Stage, d time.Duration) {
	r.discoveredToHealthy.WithLabelValues(s.values()...).Observe(seconds(d))
}

// CountVerificationFailure counts a digest that failed verification for reason.
func (r *Recorder) CountVerificationFailure(p Promotion, reason VerificationReason) {
	r.verificationFailures.WithLabelValues(p.Namespace, p.Name, reason.label()).Inc()
}

// AddCopy adds one copy's bytes moved and registry requests made to the stage's totals. Negative values, which a
// counter cannot take, are ignored.
func (r *Recorder) AddCopy(s Stage, bytes int64, requests int) {
	if bytes > 0 {
		r.copyBytes.WithLabelValues(s.values()...).Add(float64(bytes))
	}
	if requests > 0 {
		r.copyRequests.WithLabelValues(s.values()...).Add(float64(requests))
	}
}

// CountRollback counts a rollback Ferry started in s, once it is recorded in status.
func (r *Recorder) CountRollback(s Stage, reason RollbackReason) {
	r.rollbacks.WithLabelValues(s.Namespace, s.Promotion, s.Stage, reason.label()).Inc()
}

// ObserveTimeToRollback records the time from a rollback being decided to the older digest running healthy.
func (r *Recorder) ObserveTimeToRollback(s Stage, d time.Duration) {
	r.timeToRollback.WithLabelValues(s.values()...).Observe(seconds(d))
}

// ObservePullRequestWait records how long an approval pull request stayed open.
func (r *Recorder) ObservePullRequestWait(s Stage, d time.Duration) {
	r.pullRequestWait.WithLabelValues(s.values()...).Observe(seconds(d))
}

// SetDrift reports whether the stage's cluster runs a digest other than the one Git declares.
func (r *Recorder) SetDrift(s Stage, drifted bool) {
	v := 0.0
	if drifted {
		v = 1
	}
	r.drift.WithLabelValues(s.values()...).Set(v)
}

// SetStageDigest records the digest a stage runs now. The series of the digest it ran before is deleted, so
// that a query for a stage's digest returns exactly one; an empty digest deletes the stage's series.
func (r *Recorder) SetStageDigest(s Stage, digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.digests[s]; ok && old != digest {
		r.digestInfo.DeleteLabelValues(s.Namespace, s.Promotion, s.Stage, old)
		delete(r.digests, s)
	}
	if digest == "" {
		return
	}
	r.digestInfo.WithLabelValues(s.Namespace, s.Promotion, s.Stage, digest).Set(1)
	r.digests[s] = digest
}

// Forget deletes every series of a deleted Promotion, so that its stages stop appearing on dashboards and
// alerts stop firing for it. Counters restart from zero if a Promotion of the same name is created again, which
// rate() and increase() handle as a counter reset.
func (r *Recorder) Forget(p Promotion) {
	match := prometheus.Labels{labelNamespace: p.Namespace, labelPromotion: p.Name}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.promotions.DeletePartialMatch(match)
	r.promotionDuration.DeletePartialMatch(match)
	r.discoveredToHealthy.DeletePartialMatch(match)
	r.verificationFailures.DeletePartialMatch(match)
	r.copyBytes.DeletePartialMatch(match)
	r.copyRequests.DeletePartialMatch(match)
	r.rollbacks.DeletePartialMatch(match)
	r.timeToRollback.DeletePartialMatch(match)
	r.drift.DeletePartialMatch(match)
	r.digestInfo.DeletePartialMatch(match)
	r.pullRequestWait.DeletePartialMatch(match)
	r.measurements.DeletePartialMatch(match)
	r.analysisValue.DeletePartialMatch(match)
	r.notifications.DeletePartialMatch(match)
	for s := range r.digests {
		if s.Namespace == p.Namespace && s.Promotion == p.Name {
			delete(r.digests, s)
		}
	}
}

// CountWebhookDrop counts a registry notification that could not be queued because too many wake-ups were
// waiting. The series exists at zero from New, so that rate() and increase() see the first drop; Forget leaves it.
func (r *Recorder) CountWebhookDrop() { r.webhookDropped.Inc() }

// ObserveMeasurement counts one analysis reading and shows its value; a reading with no number (nil) removes the
// value's series, so that a graph shows a gap rather than a stale line.
func (r *Recorder) ObserveMeasurement(s Stage, metric, track, verdict string, value *float64) {
	labels := append(s.values(), metric, track)
	r.measurements.WithLabelValues(append(labels, verdict)...).Inc()
	if value == nil {
		r.analysisValue.DeleteLabelValues(labels...)
		return
	}
	r.analysisValue.WithLabelValues(labels...).Set(*value)
}

func seconds(d time.Duration) float64 {
	if d < 0 {
		return 0
	}
	return d.Seconds()
}

// CountNotification counts one notification to a receiver of p ending with result.
func (r *Recorder) CountNotification(p Promotion, receiver string, result NotificationResult) {
	r.notifications.WithLabelValues(p.Namespace, p.Name, receiver, result.label()).Inc()
}
