package controllers

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

// TestNotificationCRDValidation: the API server refuses bad receivers with a message that names the field, and
// accepts good ones.
func TestNotificationCRDValidation(t *testing.T) {
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	hook := func() ferryv1.NotificationReceiver { return webhookReceiver("ci", "hooks", ferryv1.EventPromoted) }
	slack := func() ferryv1.NotificationReceiver {
		return ferryv1.NotificationReceiver{Name: "chat", Type: ferryv1.NotificationSlack,
			URLSecretRef: ferryv1.SecretKeyReference{Name: "hooks", Key: "slack-url"}, Events: []ferryv1.NotificationEvent{ferryv1.EventStalled}}
	}
	cases := []struct {
		name      string
		receivers func() []ferryv1.NotificationReceiver
		want      []string // empty: accepted
	}{
		{"a webhook and a Slack receiver", func() []ferryv1.NotificationReceiver {
			s := slack()
			s.Stages = []string{"prod", "dev"}
			return []ferryv1.NotificationReceiver{hook(), s}
		}, nil},
		{"webhook without HMAC key", func() []ferryv1.NotificationReceiver {
			r := hook()
			r.HMACKeySecretRef = nil
			return []ferryv1.NotificationReceiver{r}
		}, []string{"spec.notifications[0].hmacKeySecretRef", "required when type is Webhook, and only then"}},
		{"Slack with an HMAC key", func() []ferryv1.NotificationReceiver {
			r := slack()
			r.HMACKeySecretRef = &ferryv1.SecretKeyReference{Name: "hooks"}
			return []ferryv1.NotificationReceiver{r}
		}, []string{"spec.notifications[0].hmacKeySecretRef", "required when type is Webhook, and only then"}},
		{"two receivers of one name", func() []ferryv1.NotificationReceiver {
			r := slack()
			r.Name = "ci"
			return []ferryv1.NotificationReceiver{hook(), r}
		}, []string{"spec.notifications", "receiver names must be unique"}},
		{"a stage that does not exist", func() []ferryv1.NotificationReceiver {
			r := hook()
			r.Stages = []string{"qa"}
			return []ferryv1.NotificationReceiver{r}
		}, []string{"spec.notifications", "stages must name stages of spec.stages"}},
		{"an unknown event", func() []ferryv1.NotificationReceiver {
			r := hook()
			r.Events = []ferryv1.NotificationEvent{"Deployed"}
			return []ferryv1.NotificationReceiver{r}
		}, []string{"spec.notifications[0].events[0]", "Unsupported value"}},
		{"an event twice", func() []ferryv1.NotificationReceiver {
			r := hook()
			r.Events = []ferryv1.NotificationEvent{ferryv1.EventPromoted, ferryv1.EventPromoted}
			return []ferryv1.NotificationReceiver{r}
		}, []string{"spec.notifications[0].events[1]", "Duplicate value"}},
		{"no event", func() []ferryv1.NotificationReceiver {
			r := hook()
			r.Events = nil
			return []ferryv1.NotificationReceiver{r}
		}, []string{"spec.notifications[0].events", "Required value"}},
		{"an unknown type", func() []ferryv1.NotificationReceiver {
			r := slack()
			r.Type = "Email"
			return []ferryv1.NotificationReceiver{r}
		}, []string{"spec.notifications[0].type", "Unsupported value"}},
		{"a name that is not a DNS label", func() []ferryv1.NotificationReceiver {
			r := hook()
			r.Name = "CI_hook"
			return []ferryv1.NotificationReceiver{r}
		}, []string{"spec.notifications[0].name", "should match"}},
		{"nine receivers", func() []ferryv1.NotificationReceiver {
			var rs []ferryv1.NotificationReceiver
			for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"} {
				r := slack()
				r.Name = n
				rs = append(rs, r)
			}
			return rs
		}, []string{"spec.notifications", "must have at most 8 items"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePromotion(t, ns)
			p.GenerateName, p.Name = "notify-", ""
			p.Spec.Notifications = tc.receivers()
			err := e.Client.Create(context.Background(), p)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil || !apierrors.IsInvalid(err) {
				t.Fatalf("want a validation error mentioning %q, got %v", tc.want, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}
