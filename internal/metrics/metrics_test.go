package metrics

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

func newRecorder(t *testing.T) (*Recorder, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	r, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return r, reg
}

var (
	dev  = Stage{Namespace: "shop", Promotion: "web", Stage: "dev"}
	prod = Stage{Namespace: "shop", Promotion: "web", Stage: "prod"}
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestCountersCarryTypedLabels(t *testing.T) {
	r, reg := newRecorder(t)
	r.CountPromotion(dev, ResultPromoted)
	r.CountPromotion(dev, ResultPromoted)
	r.CountPromotion(prod, ResultOf(ferryv1.OutcomeRolledBack))
	r.CountVerificationFailure(Promotion{Namespace: "shop", Name: "web"}, VerificationMissingAttestation)
	r.CountRollback(prod, RollbackAnalysisFailed)
	r.AddCopy(prod, 4096, 7)
	r.AddCopy(prod, 1024, 3)
	r.AddCopy(prod, -1, -1) // ignored: a counter never goes down

	want := `
# HELP ferry_copy_bytes_total Bytes of blobs and manifests copied into a stage's registry.
# TYPE ferry_copy_bytes_total counter
ferry_copy_bytes_total{namespace="shop",promotion="web",stage="prod"} 5120
# HELP ferry_copy_requests_total Registry requests made while copying digests into a stage's registry.
# TYPE ferry_copy_requests_total counter
ferry_copy_requests_total{namespace="shop",promotion="web",stage="prod"} 10
# HELP ferry_promotions_total Digests whose time in a stage ended, by result: promoted, failed, rolled_back, rejected or superseded.
# TYPE ferry_promotions_total counter
ferry_promotions_total{namespace="shop",promotion="web",result="promoted",stage="dev"} 2
ferry_promotions_total{namespace="shop",promotion="web",result="rolled_back",stage="prod"} 1
# HELP ferry_rollbacks_total Rollbacks Ferry started in a stage, by reason: manual, analysis_failed or health_failed.
# TYPE ferry_rollbacks_total counter
ferry_rollbacks_total{namespace="shop",promotion="web",reason="analysis_failed",stage="prod"} 1
# HELP ferry_verification_failures_total Digests that failed signature or attestation verification, by reason.
# TYPE ferry_verification_failures_total counter
ferry_verification_failures_total{namespace="shop",promotion="web",reason="missing_attestation"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), PromotionsTotal, VerificationFailuresTotal,
		RollbacksTotal, CopyBytesTotal, CopyRequestsTotal); err != nil {
		t.Error(err)
	}
}

func TestLabelValuesOutsideTheirSetBecomeUnknown(t *testing.T) {
	r, _ := newRecorder(t)
	r.CountPromotion(dev, Result("Promoted")) // wrong case: a caller bug, not a new series
	r.CountVerificationFailure(Promotion{Namespace: "shop", Name: "web"}, VerificationReason("x509: bad"))
	r.CountRollback(dev, RollbackReason(""))
	if got := testutil.ToFloat64(r.promotions.WithLabelValues("shop", "web", "dev", "unknown")); got != 1 {
		t.Errorf("promotions{result=unknown} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(r.verificationFailures.WithLabelValues("shop", "web", "unknown")); got != 1 {
		t.Errorf("verification failures{reason=unknown} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(r.rollbacks.WithLabelValues("shop", "web", "dev", "unknown")); got != 1 {
		t.Errorf("rollbacks{reason=unknown} = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(r.promotions); n != 1 {
		t.Errorf("%d promotion series, want 1", n)
	}
}

func TestResultOfCoversEveryOutcome(t *testing.T) {
	for o, want := range map[ferryv1.Outcome]Result{
		ferryv1.OutcomePromoted: ResultPromoted, ferryv1.OutcomeFailed: ResultFailed,
		ferryv1.OutcomeRolledBack: ResultRolledBack, ferryv1.OutcomeRejected: ResultRejected,
		ferryv1.OutcomeSuperseded: ResultSuperseded,
	} {
		if got := ResultOf(o); got != want || got.label() != string(want) {
			t.Errorf("ResultOf(%s) = %q, want %q", o, got, want)
		}
	}
	if got := ResultOf("Exploded").label(); got != "unknown" {
		t.Errorf("ResultOf(unknown outcome).label() = %q", got)
	}
}

func TestHistogramsUseDeliveryTimeScales(t *testing.T) {
	r, reg := newRecorder(t)
	r.ObservePromotionDuration(prod, 45*time.Minute)
	r.ObserveDiscoveredToHealthy(prod, 3*time.Hour)
	r.ObserveTimeToRollback(prod, 90*time.Second)
	r.ObservePullRequestWait(prod, 26*time.Hour)
	r.ObservePullRequestWait(prod, -time.Second) // clock skew: counted as zero, never negative

	want := map[string]struct {
		count     uint64
		sum       float64
		le        float64 // the smallest bucket that must hold every observation
		belowLeft uint64  // observations in the bucket just below le
	}{
		PromotionDurationSeconds: {1, 2700, 3600, 0},
		DiscoveredToHealthySecs:  {1, 10800, 14400, 0},
		TimeToRollbackSeconds:    {1, 90, 120, 0},
		PullRequestWaitSeconds:   {2, 93600, 172800, 1},
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, mf := range families {
		w, ok := want[mf.GetName()]
		if !ok {
			continue
		}
		seen++
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != w.count || h.GetSampleSum() != w.sum {
			t.Errorf("%s: count %d sum %v, want %d and %v", mf.GetName(), h.GetSampleCount(), h.GetSampleSum(), w.count, w.sum)
		}
		var prev uint64
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == w.le {
				if b.GetCumulativeCount() != w.count || prev != w.belowLeft {
					t.Errorf("%s: le=%v holds %d (below: %d), want %d (below: %d)", mf.GetName(), w.le,
						b.GetCumulativeCount(), prev, w.count, w.belowLeft)
				}
			}
			prev = b.GetCumulativeCount()
		}
		if last := h.GetBucket()[len(h.GetBucket())-1].GetUpperBound(); last < 3600 {
			t.Errorf("%s: largest bucket %vs, want at least an hour", mf.GetName(), last)
		}
	}
	if seen != len(want) {
		t.Errorf("gathered %d of %d histograms", seen, len(want))
	}
}

func TestStageDigestKeepsOnlyTheCurrentDigest(t *testing.T) {
	r, reg := newRecorder(t)
	r.SetStageDigest(dev, digestA)
	r.SetStageDigest(prod, digestA)
	r.SetStageDigest(dev, digestB)
	r.SetStageDigest(dev, digestB) // unchanged: still one series

	want := `
# HELP ferry_stage_digest_info Always 1, for the digest each stage runs now; older digests have no series.
# TYPE ferry_stage_digest_info gauge
ferry_stage_digest_info{digest="` + digestB + `",namespace="shop",promotion="web",stage="dev"} 1
ferry_stage_digest_info{digest="` + digestA + `",namespace="shop",promotion="web",stage="prod"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), StageDigestInfo); err != nil {
		t.Error(err)
	}

	r.SetStageDigest(prod, "") // the stage no longer runs anything Ferry knows
	if n := testutil.CollectAndCount(r.digestInfo); n != 1 {
		t.Errorf("%d digest series after clearing prod, want 1 (dev)", n)
	}
	r.SetStageDigest(prod, digestB)
	if got := testutil.ToFloat64(r.digestInfo.WithLabelValues("shop", "web", "prod", digestB)); got != 1 {
		t.Errorf("prod digest series = %v after setting it again", got)
	}
}

func TestDriftIsZeroOrOne(t *testing.T) {
	r, _ := newRecorder(t)
	r.SetDrift(prod, true)
	if got := testutil.ToFloat64(r.drift.WithLabelValues(prod.values()...)); got != 1 {
		t.Errorf("drift = %v, want 1", got)
	}
	r.SetDrift(prod, false)
	if got := testutil.ToFloat64(r.drift.WithLabelValues(prod.values()...)); got != 0 {
		t.Errorf("drift = %v, want 0", got)
	}
}

func TestForgetDeletesEverySeriesOfOnePromotion(t *testing.T) {
	r, reg := newRecorder(t)
	other := Stage{Namespace: "shop", Promotion: "api", Stage: "dev"}
	elsewhere := Stage{Namespace: "blog", Promotion: "web", Stage: "dev"}
	for _, s := range []Stage{dev, prod, other, elsewhere} {
		r.CountPromotion(s, ResultPromoted)
		r.ObservePromotionDuration(s, time.Minute)
		r.ObserveDiscoveredToHealthy(s, time.Minute)
		r.CountVerificationFailure(Promotion{Namespace: s.Namespace, Name: s.Promotion}, VerificationUnsigned)
		r.AddCopy(s, 1, 1)
		r.CountRollback(s, RollbackManual)
		r.ObserveTimeToRollback(s, time.Minute)
		r.SetDrift(s, false)
		r.SetStageDigest(s, digestA)
		r.ObservePullRequestWait(s, time.Minute)
		v := 0.5
		r.ObserveMeasurement(s, "error-rate", "canary", "Pass", &v)
		r.CountNotification(Promotion{Namespace: s.Namespace, Name: s.Promotion}, "chat", NotificationDelivered)
	}
	r.Forget(Promotion{Namespace: "shop", Name: "web"})

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != len(Names()) {
		t.Errorf("%d families left, want all %d (other Promotions still have series)", len(families), len(Names()))
	}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == "shop" && labels["promotion"] == "web" {
				t.Errorf("%s still has a series of the forgotten Promotion: %v", mf.GetName(), labels)
			}
		}
		want := 2 // shop/api and blog/web
		if mf.GetName() == WebhookNotificationsDroppedTotal {
			want = 1 // the controller's, untouched by Forget
		}
		if len(mf.GetMetric()) != want {
			t.Errorf("%s has %d series, want %d", mf.GetName(), len(mf.GetMetric()), want)
		}
	}

	// A digest recorded after Forget starts a fresh series instead of deleting one that no longer exists.
	r.SetStageDigest(dev, digestB)
	if got := testutil.ToFloat64(r.digestInfo.WithLabelValues("shop", "web", "dev", digestB)); got != 1 {
		t.Errorf("digest after Forget = %v", got)
	}
	if n := testutil.CollectAndCount(r.digestInfo); n != 3 {
		t.Errorf("%d digest series, want 3", n)
	}
}

func TestConcurrentDigestUpdatesLeaveOneSeriesPerStage(t *testing.T) {
	r, _ := newRecorder(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := Stage{Namespace: "shop", Promotion: "web", Stage: []string{"dev", "prod"}[i%2]}
			for j := range 200 {
				r.SetStageDigest(s, []string{digestA, digestB}[j%2])
				r.CountPromotion(s, ResultPromoted)
				if j%50 == 0 {
					r.Forget(Promotion{Namespace: "shop", Name: "other"})
				}
			}
		}()
	}
	wg.Wait()
	if n := testutil.CollectAndCount(r.digestInfo); n != 2 {
		t.Errorf("%d digest series after concurrent updates, want one per stage (2)", n)
	}
}

func TestMetricsPassTheLinter(t *testing.T) {
	r, reg := newRecorder(t)
	recordOneOfEach(r)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
		t.Fatalf("gathered %d series: %v", n, err)
	}
	families, _ := reg.Gather()
	if len(families) != len(Names()) {
		t.Errorf("gathered %d families, Names lists %d", len(families), len(Names()))
	}
}

func TestRegisteredOnTheManagersRegistry(t *testing.T) {
	r, err := New(ctrlmetrics.Registry)
	if err != nil {
		t.Fatalf("registering on controller-runtime's registry: %v", err)
	}
	t.Cleanup(func() {
		for _, c := range r.collectors() {
			ctrlmetrics.Registry.Unregister(c)
		}
	})
	r.CountPromotion(Stage{Namespace: "ns", Promotion: "p", Stage: "s"}, ResultFailed)
	r.SetStageDigest(Stage{Namespace: "ns", Promotion: "p", Stage: "s"}, digestA)

	// Scrape it the way Prometheus scrapes the manager: the registry's handler over HTTP on loopback.
	srv := httptest.NewServer(promhttp.HandlerFor(ctrlmetrics.Registry, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	want := `
# HELP ferry_promotions_total Digests whose time in a stage ended, by result: promoted, failed, rolled_back, rejected or superseded.
# TYPE ferry_promotions_total counter
ferry_promotions_total{namespace="ns",promotion="p",result="failed",stage="s"} 1
# HELP ferry_stage_digest_info Always 1, for the digest each stage runs now; older digests have no series.
# TYPE ferry_stage_digest_info gauge
ferry_stage_digest_info{digest="` + digestA + `",namespace="ns",promotion="p",stage="s"} 1
`
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), PromotionsTotal, StageDigestInfo); err != nil {
		t.Errorf("scraping controller-runtime's registry: %v", err)
	}
	if _, err := New(ctrlmetrics.Registry); err == nil || !strings.Contains(err.Error(), "registering Ferry's metrics") {
		t.Errorf("registering the metrics twice on one registry: %v", err)
	}
}

// recordOneOfEach gives every metric a series, so that a scrape shows all of them.
func recordOneOfEach(r *Recorder) {
	r.CountPromotion(dev, ResultPromoted)
	r.ObservePromotionDuration(dev, time.Minute)
	r.ObserveDiscoveredToHealthy(dev, time.Minute)
	r.CountVerificationFailure(Promotion{Namespace: "shop", Name: "web"}, VerificationUntrusted)
	r.AddCopy(dev, 1, 1)
	r.CountRollback(dev, RollbackHealthFailed)
	r.ObserveTimeToRollback(dev, time.Minute)
	r.SetDrift(dev, true)
	r.SetStageDigest(dev, digestA)
	r.ObservePullRequestWait(dev, time.Minute)
	value := 0.02
	r.ObserveMeasurement(dev, "error-rate", "canary", "Fail", &value)
	r.CountWebhookDrop()
	r.CountNotification(Promotion{Namespace: "shop", Name: "web"}, "chat", NotificationFailed)
}

// TestWebhookDropsAreCountedFromZero: the drop counter is served at zero before the first drop, so that the
// first one shows in increase(), and carries no labels (it is the controller's, not a Promotion's).
func TestWebhookDropsAreCountedFromZero(t *testing.T) {
	r, reg := newRecorder(t)
	want := func(n int) string {
		return fmt.Sprintf(`
# HELP ferry_webhook_notifications_dropped_total Registry notifications the controller could not queue because too many wake-ups were waiting; the webhook answers 503 so that the registry retries.
# TYPE ferry_webhook_notifications_dropped_total counter
ferry_webhook_notifications_dropped_total %d
`, n)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want(0)), WebhookNotificationsDroppedTotal); err != nil {
		t.Error(err)
	}
	r.CountWebhookDrop()
	r.CountWebhookDrop()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want(2)), WebhookNotificationsDroppedTotal); err != nil {
		t.Error(err)
	}
}

// TestMeasurementsCountVerdictsAndShowTheLastValue: every reading is counted by verdict; a reading with no number
// removes the value's series rather than leaving the last one standing.
func TestMeasurementsCountVerdictsAndShowTheLastValue(t *testing.T) {
	r, reg := newRecorder(t)
	v1, v2 := 0.01, 0.03
	r.ObserveMeasurement(dev, "error-rate", "canary", "Pass", &v1)
	r.ObserveMeasurement(dev, "error-rate", "canary", "Fail", &v2)
	r.ObserveMeasurement(dev, "error-rate", "baseline", "Pass", &v1)
	value := func(track string) (float64, bool) {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range families {
			if mf.GetName() != AnalysisValue {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "track" && l.GetValue() == track {
						return m.GetGauge().GetValue(), true
					}
				}
			}
		}
		return 0, false
	}
	if v, ok := value("canary"); !ok || v != v2 {
		t.Errorf("canary value = %v (present %v), want the last reading %v", v, ok, v2)
	}
	if got := testutil.ToFloat64(r.measurements.WithLabelValues("shop", "web", "dev", "error-rate", "canary", "Fail")); got != 1 {
		t.Errorf("failed canary readings = %v, want 1", got)
	}
	r.ObserveMeasurement(dev, "error-rate", "canary", "Inconclusive", nil)
	if _, ok := value("canary"); ok {
		t.Error("a reading with no number left the canary's last value standing")
	}
	if _, ok := value("baseline"); !ok {
		t.Error("the baseline's value went with the canary's")
	}
	if got := testutil.ToFloat64(r.measurements.WithLabelValues("shop", "web", "dev", "error-rate", "canary", "Inconclusive")); got != 1 {
		t.Errorf("inconclusive canary readings = %v, want 1", got)
	}
}

func TestInitCreatesZeroedCountersThatForgetRemoves(t *testing.T) {
	r, reg := newRecorder(t)
	r.InitStage(prod)
	r.CountRollback(prod, RollbackManual)
	for name, want := range map[string]int{PromotionsTotal: 2, RollbacksTotal: 2, VerificationFailuresTotal: 0,
		CopyBytesTotal: 0, CopyRequestsTotal: 0} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != want {
			t.Errorf("%s: %d series (%v), want %d", name, n, err, want)
		}
	}
	if got := testutil.ToFloat64(r.rollbacks.WithLabelValues("shop", "web", "prod", "manual")); got != 1 {
		t.Errorf("manual rollbacks = %v, want 1", got)
	}
	if got := testutil.ToFloat64(r.rollbacks.WithLabelValues("shop", "web", "prod", "health_failed")); got != 0 {
		t.Errorf("health_failed rollbacks = %v, want 0", got)
	}
	if got := testutil.ToFloat64(r.promotions.WithLabelValues("shop", "web", "prod", "failed")); got != 0 {
		t.Errorf("failed promotions = %v, want 0", got)
	}
	if n := testutil.CollectAndCount(r.promotions, PromotionsTotal); n != 2 {
		t.Errorf("%d promotion series", n)
	}
	r.Forget(Promotion{Namespace: "shop", Name: "web"})
	// Only the controller's own series, which belongs to no Promotion, is left.
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 1 {
		t.Errorf("%d series left after Forget (%v), want 1", n, err)
	}
	if n, err := testutil.GatherAndCount(reg, WebhookNotificationsDroppedTotal); err != nil || n != 1 {
		t.Errorf("%s: %d series after Forget (%v), want 1", WebhookNotificationsDroppedTotal, n, err)
	}
}

func TestFailedNewLeavesTheRegistryAsItWas(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	// Another Recorder's drift gauge is already there, so New fails part-way through, after registering the
	// metrics that come before it.
	other, err := New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	taken := other.drift
	reg.MustRegister(taken)
	if _, err := New(reg); err == nil {
		t.Fatal("New succeeded on a registry that already has " + StageDrift)
	}
	reg.Unregister(taken)
	if _, err := New(reg); err != nil {
		t.Errorf("New after a failed New: %v (metrics left half-registered)", err)
	}
}
