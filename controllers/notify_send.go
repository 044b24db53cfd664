package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/notify"
)

// settleNotifications runs at the start of a reconcile: deliveries the dispatcher finished leave the outbox and
// set the condition, so that only the reconciler writes status. Entries of receivers no longer in the spec go too.
func (r *PromotionReconciler) settleNotifications(s *scope) {
	st := &s.p.Status
	if len(s.p.Spec.Notifications) == 0 {
		st.Notifications = nil
		apimeta.RemoveStatusCondition(&st.Conditions, ConditionNotificationsDelivered)
		return
	}
	ids := make([]string, len(st.Notifications))
	for i, n := range st.Notifications {
		ids[i] = n.ID
	}
	done := map[string]notify.Outcome{}
	for _, o := range r.notifier().Outcomes(s.promotionID(), ids) {
		done[o.ID] = o
	}
	var kept []ferryv1.PendingNotification
	for _, n := range st.Notifications {
		if o, ok := done[n.ID]; ok {
			settleOutcome(s.p, n, o)
			continue
		}
		if receiverIndex(s.p, n.Receiver) >= 0 {
			kept = append(kept, n)
		}
	}
	st.Notifications = kept
}

// settleOutcome sets the condition for one finished delivery: a failure names its receiver; a success clears a
// failure of the same receiver (or sets the condition the first time).
func settleOutcome(p *ferryv1.Promotion, n ferryv1.PendingNotification, o notify.Outcome) {
	if !o.Delivered {
		where := ""
		if n.Stage != "" {
			where = " of stage " + n.Stage
		}
		setNotificationsCondition(p, metav1.ConditionFalse, ReasonDeliveryFailed, fmt.Sprintf("receiver %s: %s%s (delivery %s) "+
			"was not delivered after %d attempts: %s", n.Receiver, n.Event, where, n.ID, o.Attempts, o.Err))
		return
	}
	c := apimeta.FindStatusCondition(p.Status.Conditions, ConditionNotificationsDelivered)
	if c == nil || (c.Status != metav1.ConditionTrue && strings.HasPrefix(c.Message, "receiver "+n.Receiver+":")) {
		setNotificationsCondition(p, metav1.ConditionTrue, ReasonDelivered, "receiver "+n.Receiver+": the last notification was delivered.")
	}
}

func setNotificationsCondition(p *ferryv1.Promotion, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: ConditionNotificationsDelivered,
		Status: status, Reason: reason, Message: msg, ObservedGeneration: p.Generation})
}

func receiverIndex(p *ferryv1.Promotion, name string) int {
	return slices.IndexFunc(p.Spec.Notifications, func(rc ferryv1.NotificationReceiver) bool { return rc.Name == name })
}

// sendNotifications hands the dispatcher what the outbox holds as last written — never an entry whose write may
// have failed — unless it has it already. It runs after the status write and never waits for a receiver.
func (r *PromotionReconciler) sendNotifications(ctx context.Context, s *scope) {
	receivers := map[string]*notify.Receiver{}
	for _, n := range s.before.Status.Notifications {
		if r.notifier().Known(n.ID) {
			continue
		}
		rc, loaded := receivers[n.Receiver]
		if !loaded {
			var err error
			if rc, err = r.loadReceiver(ctx, s.p, n.Receiver); err != nil {
				// Validation stalls the Promotion naming the field; the message waits in the outbox meanwhile.
				ctrl.LoggerFrom(ctx).Info("a notification waits for its receiver", "receiver", n.Receiver, "error", err.Error())
			}
			receivers[n.Receiver] = rc
		}
		if rc != nil {
			r.notifier().Submit(notify.Delivery{Owner: s.promotionID(), Receiver: *rc, Message: notificationMessage(s.p, n)})
		}
	}
}

// loadReceiver reads a receiver's URL and key from the Promotion's own namespace, through the same uncached
// reader as every other reference. Its errors name fields and Secrets, never their content.
func (r *PromotionReconciler) loadReceiver(ctx context.Context, p *ferryv1.Promotion, name string) (*notify.Receiver, error) {
	i := receiverIndex(p, name)
	if i < 0 {
		return nil, errors.New("the receiver is no longer in spec.notifications")
	}
	spec := p.Spec.Notifications[i]
	read := func(field string, ref ferryv1.SecretKeyReference, def string) ([]byte, error) {
		data, err := readData(ctx, r.APIReader, p.Namespace, reference{kind: ferryv1.SecretKind, name: ref.Name})
		if err != nil {
			return nil, fmt.Errorf("%s: reading Secret %q: %w", field, ref.Name, err)
		}
		key := orDefault(ref.Key, def)
		value, ok := data[key]
		if !ok {
			return nil, fmt.Errorf("%s: Secret %q has no key %q", field, ref.Name, key)
		}
		return []byte(strings.TrimSpace(string(value))), nil
	}
	field := fmt.Sprintf("spec.notifications[%d]", i)
	url, err := read(field+".urlSecretRef", spec.URLSecretRef, keyReceiverURL)
	if err != nil {
		return nil, err
	}
	if err := receiverURL(url); err != nil {
		return nil, fmt.Errorf("%s.urlSecretRef: %w", field, err)
	}
	rc := &notify.Receiver{Name: name, Type: notify.Type(spec.Type), URL: string(url)}
	if spec.HMACKeySecretRef != nil {
		if rc.Key, err = read(field+".hmacKeySecretRef", *spec.HMACKeySecretRef, keyHMAC); err != nil {
			return nil, err
		}
		if err := hmacKey(rc.Key); err != nil {
			return nil, fmt.Errorf("%s.hmacKeySecretRef: %w", field, err)
		}
	}
	return rc, nil
}

func notificationMessage(p *ferryv1.Promotion, n ferryv1.PendingNotification) notify.Message {
	return notify.Message{DeliveryID: n.ID, Event: string(n.Event), Namespace: p.Namespace, Promotion: p.Name,
		Stage: n.Stage, Digest: n.Digest, PreviousDigest: n.PreviousDigest, Commit: n.Commit,
		PullRequestURL: n.PullRequestURL, Approver: n.Approver, RequestedBy: n.RequestedBy, Message: n.Message,
		Time: n.Time.Time}
}
