package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

// eventually polls cond until it holds or the deadline passes; it waits on the API server's state, not on time.
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	waitFor(t, 30*time.Second, what, cond)
}

// waitFor is eventually with a deadline of its own: it waits on state, never on time.
func waitFor(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last state: %s", what, last)
}

func getPromotion(t testing.TB, c client.Client, ns, name string) *ferryv1.Promotion {
	t.Helper()
	var p ferryv1.Promotion
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func conditionState(p *ferryv1.Promotion, typ string) string {
	c := apimeta.FindStatusCondition(p.Status.Conditions, typ)
	if c == nil {
		return typ + "=<none>"
	}
	return typ + "=" + string(c.Status) + " " + c.Reason + ": " + c.Message
}

// TestStalledOnMissingSecretThenRecovers walks the bad-input path: a Secret is missing, the Promotion stalls with
// a reason naming the field, and recovers as soon as the Secret is created — no edit of the Promotion needed.
func TestStalledOnMissingSecretThenRecovers(t *testing.T) {
	e := testenv.Need(t, env)
	startManager(t, Engines{})
	ns := e.Namespace(t)
	ctx := context.Background()

	secrets := sampleSecrets(t, ns)
	var gitSecret client.Object
	for _, s := range secrets {
		if s.GetName() == "shop-git" {
			gitSecret = s
			continue
		}
		if err := e.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	p := samplePromotion(t, ns)
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}

	eventually(t, "Stalled=True naming spec.git.secretRef", func() (bool, string) {
		got := getPromotion(t, e.Client, ns, p.Name)
		c := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionStalled)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonSecretNotFound &&
			strings.Contains(c.Message, "spec.git.secretRef") && strings.Contains(c.Message, `"shop-git" not found`) &&
			got.Status.ObservedGeneration == got.Generation, conditionState(got, ferryv1.ConditionStalled)
	})
	got := getPromotion(t, e.Client, ns, p.Name)
	if ready := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady); ready == nil ||
		ready.Status != metav1.ConditionFalse || ready.Reason != ReasonSecretNotFound {
		t.Errorf("Ready = %s, want False/SecretNotFound", conditionState(got, ferryv1.ConditionReady))
	}
	if got.Status.Summary != "dev=Idle staging=Idle prod=Idle" {
		t.Errorf("summary = %q", got.Status.Summary)
	}
	eventually(t, "a Warning event with the condition's reason", func() (bool, string) {
		return hasEvent(t, e.Client, ns, p.Name, corev1.EventTypeWarning, ReasonSecretNotFound), "no event yet"
	})

	if err := e.Client.Create(ctx, gitSecret); err != nil {
		t.Fatal(err)
	}
	eventually(t, "recovery to Ready=True without Stalled", func() (bool, string) {
		got := getPromotion(t, e.Client, ns, p.Name)
		stalled := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionStalled)
		return stalled == nil && apimeta.IsStatusConditionTrue(got.Status.Conditions, ferryv1.ConditionReady),
			conditionState(got, ferryv1.ConditionStalled) + "; " + conditionState(got, ferryv1.ConditionReady)
	})
	eventually(t, "a Normal event for the recovery", func() (bool, string) {
		return hasEvent(t, e.Client, ns, p.Name, corev1.EventTypeNormal, ReasonSpecValid), "no event yet"
	})
}

// TestStalledOnMalformedReferencedData covers a Secret that exists but lacks a key, or holds something that does
// not parse: each stalls with its own reason and the field's path.
func TestStalledOnMalformedReferencedData(t *testing.T) {
	e := testenv.Need(t, env)
	startManager(t, Engines{})
	ctx := context.Background()
	cases := []struct {
		name, secret, reason, field string
		data                        map[string]string
	}{
		{"public key missing", "shop-cosign-pub", ReasonMissingKey, "spec.verification.keys[0].secretRef",
			map[string]string{"key.pub": "x"}},
		{"public key not PEM", "shop-cosign-pub", ReasonInvalidReference, "spec.verification.keys[0].secretRef",
			map[string]string{"cosign.pub": "not a key"}},
		{"docker config without auths", "prod-registry", ReasonInvalidReference, "spec.stages[2].registry.secretRef",
			map[string]string{".dockerconfigjson": `{}`}},
		{"empty token", "shop-gitea", ReasonInvalidReference, "spec.stages[2].approval.pullRequest.tokenSecretRef",
			map[string]string{"token": "  "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := e.Namespace(t)
			for _, s := range sampleSecrets(t, ns) {
				if s.GetName() == tc.secret {
					sec := s.(*corev1.Secret)
					sec.StringData = tc.data
					sec.Type = corev1.SecretTypeOpaque
				}
				if err := e.Client.Create(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			p := samplePromotion(t, ns)
			if err := e.Client.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
			eventually(t, "Stalled with "+tc.reason, func() (bool, string) {
				got := getPromotion(t, e.Client, ns, p.Name)
				c := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionStalled)
				return c != nil && c.Reason == tc.reason && strings.HasPrefix(c.Message, tc.field+":"),
					conditionState(got, ferryv1.ConditionStalled)
			})
		})
	}
}

// TestBadInputIsNotRequeued calls Reconcile directly: a stalled Promotion returns a terminal error and no
// requeue, so bad input never hot-loops.
func TestBadInputIsNotRequeued(t *testing.T) {
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	ctx := ctrl.LoggerInto(context.Background(), ctrl.Log)
	p := samplePromotion(t, ns)
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	recorder := events.NewFakeRecorder(10)
	r := &PromotionReconciler{Client: e.Client, APIReader: e.Client, Recorder: recorder}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: p.Name}}
	for i := 0; i < 2; i++ {
		res, err := r.Reconcile(ctx, req)
		if !errors.Is(err, reconcile.TerminalError(nil)) {
			t.Fatalf("reconcile %d: err = %v, want a terminal error", i, err)
		}
		if res.RequeueAfter != 0 {
			t.Fatalf("reconcile %d asked to requeue: %+v", i, res)
		}
	}
	if n := len(recorder.Events); n != 1 {
		t.Errorf("two reconciles of the same bad input emitted %d events, want 1", n)
	}
	got := getPromotion(t, e.Client, ns, p.Name)
	if !apimeta.IsStatusConditionTrue(got.Status.Conditions, ferryv1.ConditionStalled) {
		t.Errorf("not stalled: %s", conditionState(got, ferryv1.ConditionStalled))
	}
}

// TestSpecErrorsTheSchemaCannotSee covers input the CRD accepts but Ferry cannot use.
func TestSpecErrorsTheSchemaCannotSee(t *testing.T) {
	cases := []struct {
		name, field string
		mutate      func(p *ferryv1.Promotion)
	}{
		{"bad semver range", "spec.source.tagPolicy.semver.range", func(p *ferryv1.Promotion) {
			p.Spec.Source.TagPolicy.Semver.Range = ">=> 1"
		}},
		{"bad regex", "spec.source.tagPolicy.regex.pattern", func(p *ferryv1.Promotion) {
			p.Spec.Source.TagPolicy = &ferryv1.TagPolicy{Regex: &ferryv1.RegexPolicy{Pattern: "(["}}
		}},
		{"bad stage repository", "spec.stages[1].registry.repository", func(p *ferryv1.Promotion) {
			p.Spec.Stages[1].Registry.Repository = "UPPER/Case"
		}},
		{"plain http git to a remote host", "spec.git.url", func(p *ferryv1.Promotion) {
			p.Spec.Git.URL = "http://git.example.com/acme/deploy.git"
		}},
		{"commit template that does not parse", "spec.git.commitMessageTemplate", func(p *ferryv1.Promotion) {
			p.Spec.Git.CommitMessageTemplate = "Promote {{.Image"
		}},
		{"metric query template that does not parse", "spec.stages[2].analysis.metrics[0].query", func(p *ferryv1.Promotion) {
			p.Spec.Stages[2].Analysis.Metrics[0].Query = "rate({{.Namespace}"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePromotion(t, "ns")
			tc.mutate(p)
			err := validateSpec(p)
			stall, ok := asStalling(err)
			if !ok {
				t.Fatalf("err = %v, want a stalling error", err)
			}
			if stall.Field != tc.field || stall.Reason != ReasonInvalidSpec {
				t.Errorf("got %s/%s, want field %s", stall.Reason, stall.Field, tc.field)
			}
		})
	}
	if err := validateSpec(samplePromotion(t, "ns")); err != nil {
		t.Errorf("the sample fails validation: %v", err)
	}
}

// TestFieldsNotActedOnStall: a stage that asks for requireHealthy: false stalls naming the field, rather than
// being promoted as if the field were not there.
func TestFieldsNotActedOnStall(t *testing.T) {
	p := samplePromotion(t, "ns")
	p.Spec.Stages[0].Gates.RequireHealthy = new(bool)
	stall, ok := asStalling(refuseNotActedOn(p))
	if !ok || stall.Field != "spec.stages[0].gates.requireHealthy" || stall.Reason != ReasonNotSupported {
		t.Fatalf("got %v, want a %s stall on spec.stages[0].gates.requireHealthy", stall, ReasonNotSupported)
	}
	if err := refuseNotActedOn(samplePromotion(t, "ns")); err != nil {
		t.Errorf("the sample is refused: %v", err)
	}
}

func hasEvent(t testing.TB, c client.Client, ns, name, eventType, reason string) bool {
	t.Helper()
	var list eventsv1.EventList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, ev := range list.Items {
		if ev.Regarding.Name == name && ev.Type == eventType && ev.Reason == reason {
			return true
		}
	}
	return false
}

// TestDeletionNamesPullRequestsItCannotClose: a Promotion deleted while a pull request is open and its forge
// token Secret is gone still goes away, and an event names the pull request for a person to close.
func TestDeletionNamesPullRequestsItCannotClose(t *testing.T) {
	e := testenv.Need(t, env)
	startManager(t, Engines{Git: newGitEngine(t)})
	ns := e.Namespace(t)
	ctx := context.Background()
	p := samplePromotion(t, ns)
	p.Finalizers = []string{ferryv1.Finalizer}
	p.Spec.Suspend = true // nothing but validation and the finalizer runs
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the missing Secrets to stall it", func() (bool, string) {
		got := getPromotion(t, e.Client, ns, p.Name)
		return apimeta.IsStatusConditionTrue(got.Status.Conditions, ferryv1.ConditionStalled), conditionState(got, ferryv1.ConditionStalled)
	})
	// The status a pull-request stage has while it waits for approval.
	p = getPromotion(t, e.Client, ns, p.Name)
	now := metav1.Now()
	p.Status.Stages[2] = ferryv1.StageStatus{Name: "prod", Phase: ferryv1.PhaseAwaitingApproval, Since: &now,
		PullRequest: &ferryv1.PullRequestStatus{Number: 7, URL: "http://127.0.0.1:1/acme/deploy/pulls/7"}}
	if err := e.Client.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Promotion to be gone", func() (bool, string) {
		var got ferryv1.Promotion
		err := e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: p.Name}, &got)
		return apierrors.IsNotFound(err), fmt.Sprintf("finalizers %v, err %v", got.Finalizers, err)
	})
	eventually(t, "an event naming the pull request", func() (bool, string) {
		return hasEvent(t, e.Client, ns, p.Name, corev1.EventTypeWarning, ReasonPullRequestsClosed), "no event"
	})
}

// TestLongMessagesKeepStatusPatchable: a 100 KiB verification reason — a peer's error can be that long — is cut
// with an ellipsis, and the status patch goes through on the real API server rather than failing and freezing the
// status.
func TestLongMessagesKeepStatusPatchable(t *testing.T) {
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	p := samplePromotion(t, ns)
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	r := &PromotionReconciler{Client: e.Client, APIReader: e.Client, Recorder: events.NewFakeRecorder(10)}
	s := &scope{p: p, before: p.DeepCopy(), now: metav1.Now()}
	syncStageStatuses(p, s.now)
	long := strings.Repeat("signature rejected: ", 5000) // 100 KB
	p.Status.Candidate = &ferryv1.CandidateStatus{Digest: "sha256:" + strings.Repeat("a", 64), Message: long}
	s.setPhase(0, ferryv1.PhaseFailed, "%s", long)
	setConditions(p, errors.New(long), true)
	if err := r.checkpoint(ctx, s); err != nil {
		t.Fatalf("status patch with long messages: %v", err)
	}
	got := getPromotion(t, e.Client, ns, p.Name)
	msg := got.Status.Candidate.Message
	if len(msg) > maxStatusMessage || !strings.HasSuffix(msg, "…") || !strings.HasPrefix(msg, "signature rejected") {
		t.Errorf("candidate message stored as %d bytes: %.40q…", len(msg), msg)
	}
	if m := got.Status.Stages[0].Message; len(m) > maxStatusMessage {
		t.Errorf("stage message stored as %d bytes", len(m))
	}
	if c := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady); c == nil || len(c.Message) > maxConditionMessage {
		t.Errorf("Ready = %+v", c)
	}
}
