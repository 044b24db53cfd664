package controllers

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/metrics"
	"github.com/ferrycd/ferry/internal/notify"
)

// outboxEmpty waits until every message owed was delivered or given up, and returns the Promotion.
func outboxEmpty(t *testing.T, f *stagesFixture, name string) *ferryv1.Promotion {
	t.Helper()
	var got *ferryv1.Promotion
	eventually(t, "the outbox to empty", func() (bool, string) {
		got = getPromotion(t, f.e.Client, f.ns, name)
		return len(got.Status.Notifications) == 0, fmt.Sprintf("%d owed", len(got.Status.Notifications))
	})
	return got
}

// TestNotificationsFollowTheStages: a digest moving through dev and staging, then a bad one rolled back in dev,
// tells a signed webhook exactly the events it asked for, once each, and a Slack receiver only staging's
// promotions.
func TestNotificationsFollowTheStages(t *testing.T) {
	f, _, _ := notifyStages(t, fastPolicy)
	ci, chat := startHookReceiver(t, false), startHookReceiver(t, true)
	hookSecret(t, f, "ci-hook", ci.srv.URL+"/ferry")
	hookSecret(t, f, "chat-hook", chat.srv.URL+"/services/T0/B0/X")
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	p.Spec.Notifications = []ferryv1.NotificationReceiver{
		webhookReceiver("ci", "ci-hook", ferryv1.EventPromotionStarted, ferryv1.EventPromoted, ferryv1.EventRolledBack),
		{Name: "chat", Type: ferryv1.NotificationSlack, URLSecretRef: ferryv1.SecretKeyReference{Name: "chat-hook"},
			Events: []ferryv1.NotificationEvent{ferryv1.EventPromoted}, Stages: []string{"staging"}},
	}
	if err := f.e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev", "staging")
	want := []string{"Promoted dev " + v1, "Promoted staging " + v1, "PromotionStarted dev " + v1, "PromotionStarted staging " + v1}
	slices.Sort(want)
	eventually(t, "the webhook to hear of both stages", func() (bool, string) {
		return slices.Equal(ci.events(), want), fmt.Sprint(ci.events())
	})

	bad := f.pushRelease(t, "1.1.0", true).DigestStr()
	f.rollouts.failRollouts(bad)
	f.waitStages(t, p.Name, v1, ferryv1.PhaseRolledBack, "dev")
	want = append(want, "PromotionStarted dev "+bad, "RolledBack dev "+v1)
	slices.Sort(want)
	eventually(t, "the webhook to hear of the rollback", func() (bool, string) {
		return slices.Equal(ci.events(), want), fmt.Sprint(ci.events())
	})
	got := outboxEmpty(t, f, p.Name)

	offered, accepted, _, badSig := ci.snapshot()
	if badSig != 0 {
		t.Errorf("%d bodies did not verify with the key", badSig)
	}
	for id, n := range offered {
		if n != 1 {
			t.Errorf("delivery %s was offered %d times", id, n)
		}
	}
	for _, m := range accepted {
		if m.Namespace != f.ns || m.Promotion != p.Name || m.DeliveryID == "" || m.Time.IsZero() || m.Message == "" {
			t.Errorf("incomplete message: %+v", m)
		}
		if m.Event == "RolledBack" && (m.PreviousDigest != bad || m.RequestedBy != "ferry" || m.Commit == "") {
			t.Errorf("rollback message: %+v", m)
		}
		if m.Event == "Promoted" && m.Stage == "staging" && (m.PreviousDigest != "" || m.Commit == "" || m.Approver != "automatic") {
			t.Errorf("staging promotion message: %+v", m)
		}
	}
	_, _, texts, _ := chat.snapshot()
	if len(texts) != 1 || !strings.Contains(texts[0], "stage *staging*: Promoted") || !strings.Contains(texts[0], v1[:19]) {
		t.Errorf("Slack got %q, want staging's promotion only", texts)
	}
	if c := apimeta.FindStatusCondition(got.Status.Conditions, ConditionNotificationsDelivered); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("condition: %s", conditionState(got, ConditionNotificationsDelivered))
	}
}

// TestReceiverDownDoesNotStopThePromotion: deliveries to a receiver that refuses connections are retried, then
// given up; the condition names the receiver, the metric counts the failures, and the stage is promoted anyway.
func TestReceiverDownDoesNotStopThePromotion(t *testing.T) {
	f, reg, _ := notifyStages(t, fastPolicy)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String() + "/ferry"
	l.Close()
	hookSecret(t, f, "ci-hook", down)
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	p.Spec.Stages = p.Spec.Stages[:1]
	p.Spec.Notifications = []ferryv1.NotificationReceiver{webhookReceiver("ci", "ci-hook", ferryv1.EventPromotionStarted, ferryv1.EventPromoted)}
	if err := f.e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev")
	got := outboxEmpty(t, f, p.Name)
	eventually(t, "the condition to name the receiver", func() (bool, string) {
		got = getPromotion(t, f.e.Client, f.ns, p.Name)
		c := apimeta.FindStatusCondition(got.Status.Conditions, ConditionNotificationsDelivered)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == ReasonDeliveryFailed &&
			strings.HasPrefix(c.Message, "receiver ci:") && strings.Contains(c.Message, "after 3 attempts") &&
			strings.Contains(c.Message, "connection refused"), conditionState(got, ConditionNotificationsDelivered)
	})
	if c := apimeta.FindStatusCondition(got.Status.Conditions, ConditionNotificationsDelivered); strings.Contains(c.Message, l.Addr().String()) {
		t.Errorf("the condition repeats the URL: %s", c.Message)
	}
	if ready := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady); ready == nil || ready.Status != metav1.ConditionTrue {
		t.Errorf("Ready: %s", conditionState(got, ferryv1.ConditionReady))
	}
	if n := notificationCount(t, reg, f.ns, p.Name, "ci", "failed"); n != 2 {
		t.Errorf("ferry_notifications_total{result=failed} = %v, want 2", n)
	}
}

func notificationCount(t *testing.T, reg *prometheus.Registry, ns, promotion, receiver, result string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != metrics.NotificationsTotal {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == ns && labels["promotion"] == promotion && labels["receiver"] == receiver && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestNotificationsSurviveARestartWithoutDuplicates: what a receiver accepted before the controller stopped is not
// sent again by the next controller; what it had not accepted yet is.
func TestNotificationsSurviveARestartWithoutDuplicates(t *testing.T) {
	keepTrying := notify.Policy{Attempts: 1000, Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Timeout: 5 * time.Second}
	f, _, stop := notifyStages(t, keepTrying)
	ci := startHookReceiver(t, false)
	hookSecret(t, f, "ci-hook", ci.srv.URL)
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	p.Spec.Stages = p.Spec.Stages[:1]
	p.Spec.Notifications = []ferryv1.NotificationReceiver{webhookReceiver("ci", "ci-hook", ferryv1.EventPromotionStarted, ferryv1.EventPromoted)}
	if err := f.e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev")
	outboxEmpty(t, f, p.Name)

	// The receiver goes down; v2 is promoted and its messages wait in the outbox when the controller stops.
	ci.failing.Store(true)
	v2 := f.pushRelease(t, "1.1.0", true).DigestStr()
	f.waitStages(t, p.Name, v2, ferryv1.PhasePromoted, "dev")
	eventually(t, "v2's messages to be owed and tried", func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		offered, _, _, _ := ci.snapshot()
		tried := 0
		for _, n := range got.Status.Notifications {
			if n.Digest == v2 && offered[n.ID] > 0 {
				tried++
			}
		}
		return tried == 2, fmt.Sprintf("%d of %d owed messages tried", tried, len(got.Status.Notifications))
	})
	stop()
	offeredBefore, _, _, _ := ci.snapshot()
	ci.failing.Store(false)

	notifyManager(t, Engines{Git: newGitEngine(t), Sync: f.syncer, WorkDir: t.TempDir()}, keepTrying)
	want := []string{"Promoted dev " + v1, "Promoted dev " + v2, "PromotionStarted dev " + v1, "PromotionStarted dev " + v2}
	slices.Sort(want)
	eventually(t, "the owed messages to be delivered by the new controller", func() (bool, string) {
		return slices.Equal(ci.events(), want), fmt.Sprint(ci.events())
	})
	outboxEmpty(t, f, p.Name)
	offered, accepted, _, _ := ci.snapshot()
	seen := map[string]bool{}
	for _, m := range accepted {
		if seen[m.DeliveryID] {
			t.Errorf("delivery %s accepted twice", m.DeliveryID)
		}
		seen[m.DeliveryID] = true
		if m.Digest == v1 && offered[m.DeliveryID] != 1 {
			t.Errorf("v1's %s was offered %d times: a delivered message was sent again after the restart", m.Event, offered[m.DeliveryID])
		}
		if m.Digest == v2 && offered[m.DeliveryID] <= offeredBefore[m.DeliveryID] {
			t.Errorf("v2's %s was not sent by the new controller", m.Event)
		}
	}
}

// TestMissingNotificationSecretStallsAndSendsNothing: a receiver whose Secret is missing, or holds a URL Ferry
// refuses, stalls the Promotion naming the field — nothing is promoted, nothing sent, and the URL is not repeated —
// and the Promotion goes on, telling the receiver what it is owed, once the Secret is right.
func TestMissingNotificationSecretStallsAndSendsNothing(t *testing.T) {
	f, _, _ := notifyStages(t, fastPolicy)
	ci := startHookReceiver(t, false)
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	p.Spec.Stages = p.Spec.Stages[:1]
	p.Spec.Notifications = []ferryv1.NotificationReceiver{webhookReceiver("ci", "ci-hook", ferryv1.EventPromoted, ferryv1.EventStalled)}
	ctx := context.Background()
	if err := f.e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	stalledOn := func(reason string) *ferryv1.Promotion {
		var got *ferryv1.Promotion
		eventually(t, "Stalled "+reason, func() (bool, string) {
			got = getPromotion(t, f.e.Client, f.ns, p.Name)
			c := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionStalled)
			return c != nil && c.Reason == reason && strings.HasPrefix(c.Message, "spec.notifications[0].urlSecretRef:"),
				conditionState(got, ferryv1.ConditionStalled)
		})
		return got
	}
	got := stalledOn(ReasonSecretNotFound)
	if st := got.Status.Stages[0]; st.Phase != ferryv1.PhaseIdle || st.InFlightDigest != "" {
		t.Errorf("dev moved while stalled: %+v", st)
	}
	if n := len(got.Status.Notifications); n != 1 || got.Status.Notifications[0].Event != ferryv1.EventStalled {
		t.Errorf("outbox = %+v, want the Stalled message owed", got.Status.Notifications)
	}

	hookSecret(t, f, "ci-hook", "http://ci.example.com/ferry")
	got = stalledOn(ReasonInvalidReference)
	if c := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionStalled); strings.Contains(c.Message, "ci.example.com") {
		t.Errorf("the condition repeats the URL: %s", c.Message)
	}
	if offered, _, _, _ := ci.snapshot(); len(offered) != 0 {
		t.Errorf("sent %v while the receiver's Secret was wrong", offered)
	}
	if n := len(f.git.Log("acme/deploy")); n != 1 {
		t.Errorf("%d commits while stalled", n-1)
	}

	var s corev1.Secret
	if err := f.e.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "ci-hook"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data["url"] = []byte(ci.srv.URL)
	if err := f.e.Client.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev")
	eventually(t, "the receiver to hear of both stalls and the promotion", func() (bool, string) {
		evs := ci.events()
		return slices.Equal(evs, []string{"Promoted dev " + v1, "Stalled", "Stalled"}), fmt.Sprint(evs)
	})
}
