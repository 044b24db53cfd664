package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/metrics"
	"github.com/ferrycd/ferry/internal/notify"
	"github.com/ferrycd/ferry/internal/text"
)

// ConditionNotificationsDelivered says whether the receivers of spec.notifications got what they were owed. It
// is False, naming the receiver, when a message was given up after every retry or dropped from a full outbox, and
// True again once that receiver accepts a later one. It never changes Ready: a receiver that is down does not
// stop a promotion.
const (
	ConditionNotificationsDelivered = "NotificationsDelivered"
	ReasonDelivered                 = "Delivered"
	ReasonDeliveryFailed            = "DeliveryFailed"
	ReasonOutboxFull                = "OutboxFull"
)

// Default keys of the receivers' Secrets, documented on the API fields.
const (
	keyReceiverURL = "url"
	keyHMAC        = "hmac-key"
)

// maxOutbox bounds status.notifications (the CRD's MaxItems); maxNotificationText bounds each entry's free text.
const (
	maxOutbox           = 64
	maxNotificationText = 512
)

// notificationReferences are the receivers' Secrets, checked like every other reference: a missing Secret or key,
// a URL that is not https (or http to loopback), or a short HMAC key stalls the Promotion naming the field.
func notificationReferences(p *ferryv1.Promotion) []reference {
	var refs []reference
	for i, n := range p.Spec.Notifications {
		field := fmt.Sprintf("spec.notifications[%d]", i)
		refs = append(refs, reference{field: field + ".urlSecretRef", kind: ferryv1.SecretKind, name: n.URLSecretRef.Name,
			check: keyHolds(orDefault(n.URLSecretRef.Key, keyReceiverURL), receiverURL)})
		if k := n.HMACKeySecretRef; k != nil {
			refs = append(refs, reference{field: field + ".hmacKeySecretRef", kind: ferryv1.SecretKind, name: k.Name,
				check: keyHolds(orDefault(k.Key, keyHMAC), hmacKey)})
		}
	}
	return refs
}

func receiverURL(b []byte) error {
	if err := notify.CheckURL(string(b)); err != nil {
		return fmt.Errorf("holds a URL that %w", err) // the URL itself, a credential for Slack, is never repeated
	}
	return nil
}

func hmacKey(b []byte) error {
	if n := len(strings.TrimSpace(string(b))); n < notify.MinKeyBytes {
		return fmt.Errorf("is %d bytes; use at least %d random bytes (openssl rand -hex 32)", n, notify.MinKeyBytes)
	}
	return nil
}

// notifier is the dispatcher, built with defaults unless the caller set one; its outcomes wake the Promotion.
func (r *PromotionReconciler) notifier() *notify.Dispatcher {
	r.notifyOnce.Do(func() {
		if r.Notifier == nil {
			r.Notifier = notify.NewDispatcher(notify.Options{})
		}
		r.Notifier.OnDone(r.notificationDone)
	})
	return r.Notifier
}

// notificationDone counts a finished delivery and wakes its Promotion, whose next reconcile folds the outcome
// into status. It runs on a dispatcher worker and never blocks.
func (r *PromotionReconciler) notificationDone(o notify.Outcome) {
	ns, name, _ := strings.Cut(o.Owner, "/")
	result := metrics.NotificationDelivered
	if !o.Delivered {
		result = metrics.NotificationFailed
	}
	r.metrics().CountNotification(metrics.Promotion{Namespace: ns, Name: name}, o.Receiver, result)
	r.notified.send(o.Owner)
}

// notifiedSource turns finished deliveries into reconcile requests for their Promotions.
func (r *PromotionReconciler) notifiedSource() source.Source {
	return r.notified.source(func(_ context.Context, owner string) []reconcile.Request {
		ns, name, _ := strings.Cut(owner, "/")
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
	})
}

// queueNotifications runs just before status is written: every change between status as last written and status
// now becomes one outbox entry per receiver that wants it, in the same write, so that a transition recorded is a
// message owed — exactly once, whatever restarts follow.
func (r *PromotionReconciler) queueNotifications(s *scope) {
	receivers := s.p.Spec.Notifications
	if len(receivers) == 0 {
		return
	}
	st := &s.p.Status
	for _, t := range transitions(&s.before.Status, st) {
		for _, rc := range receivers {
			if !wants(rc, t) {
				continue
			}
			n := pendingNotification(s, rc.Name, t)
			if !slices.ContainsFunc(st.Notifications, func(o ferryv1.PendingNotification) bool { return o.ID == n.ID }) {
				st.Notifications = append(st.Notifications, n)
			}
		}
	}
	r.boundOutbox(s)
}

// wants says whether receiver rc asked for t: its event, and one of its stages when it names stages.
func wants(rc ferryv1.NotificationReceiver, t transition) bool {
	if !slices.Contains(rc.Events, t.event) {
		return false
	}
	return t.stage == "" || len(rc.Stages) == 0 || slices.Contains(rc.Stages, t.stage)
}

// pendingNotification is the outbox entry telling receiver about t. Its id is derived from the Promotion, the
// receiver, the change and the reconcile's clock, so it is the same on every retry and after a restart.
func pendingNotification(s *scope, receiver string, t transition) ferryv1.PendingNotification {
	sum := sha256.Sum256([]byte(strings.Join([]string{string(s.p.UID), s.p.Namespace, s.p.Name, receiver, string(t.event),
		t.stage, t.digest, fmt.Sprint(s.now.UnixNano())}, "\x00")))
	cut := func(v string) string { return text.Cut(v, maxNotificationText) }
	return ferryv1.PendingNotification{ID: hex.EncodeToString(sum[:16]), Receiver: receiver, Event: t.event, Stage: t.stage,
		Digest: t.digest, PreviousDigest: t.previous, Commit: t.commit, PullRequestURL: cut(t.pullRequest),
		Approver: cut(t.approver), RequestedBy: cut(t.requestedBy), Message: cut(t.message), Time: s.now}
}

// boundOutbox keeps the outbox within maxOutbox by dropping its oldest entries, counted and named in the
// condition: a receiver that is down must not grow status without bound.
func (r *PromotionReconciler) boundOutbox(s *scope) {
	st := &s.p.Status
	over := len(st.Notifications) - maxOutbox
	if over <= 0 {
		return
	}
	for _, n := range st.Notifications[:over] {
		r.metrics().CountNotification(metrics.Promotion{Namespace: s.p.Namespace, Name: s.p.Name}, n.Receiver, metrics.NotificationDropped)
	}
	first := st.Notifications[0]
	st.Notifications = append([]ferryv1.PendingNotification(nil), st.Notifications[over:]...)
	setNotificationsCondition(s.p, metav1.ConditionFalse, ReasonOutboxFull, fmt.Sprintf("receiver %s: %d undelivered "+
		"notifications dropped, the oldest %s of %s: the outbox holds at most %d", first.Receiver, over, first.Event,
		first.Time.UTC().Format("2006-01-02T15:04:05Z"), maxOutbox))
}
