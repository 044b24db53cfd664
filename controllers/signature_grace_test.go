package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/signature/signaturetest"
	"github.com/ferrycd/ferry/internal/testenv"
)

// graceFixture is CI's release as it happens: images pushed to the real CNCF distribution registry, signed a
// moment later (or never) by the real cosign CLI with the key the Promotion trusts.
type graceFixture struct {
	*pipelineFixture
	e      *testenv.Env
	cosign *signaturetest.Cosign
}

func newGraceFixture(t *testing.T) *graceFixture {
	t.Helper()
	e := testenv.Need(t, env)
	f := &graceFixture{pipelineFixture: newPipelineFixture(t, e), e: e, cosign: signaturetest.NewCosign(t)}
	f.source = signaturetest.StartDistribution(t)
	var key corev1.Secret
	if err := e.Client.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: "cosign"}, &key); err != nil {
		t.Fatal(err)
	}
	key.Data["cosign.pub"] = f.cosign.PublicKey(t)
	if err := e.Client.Update(context.Background(), &key); err != nil {
		t.Fatal(err)
	}
	return f
}

// sign signs d with c's key as CI does: keyed, no transparency log.
func sign(t *testing.T, c *signaturetest.Cosign, d name.Digest) {
	t.Helper()
	c.Run(t, "sign", "--key", "cosign.key", "--tlog-upload=false", "--use-signing-config=false",
		"--new-bundle-format=true", "--allow-http-registry", "--yes", d.String())
}

// promotion is the fixture's Promotion with the given grace, polling the source every poll.
func (f *graceFixture) promotion(grace, poll time.Duration) *ferryv1.Promotion {
	p := f.pipelineFixture.promotion()
	p.Spec.Verification.SignatureGracePeriod = &metav1.Duration{Duration: grace}
	p.Spec.Interval = &metav1.Duration{Duration: poll}
	return p
}

func (f *graceFixture) create(t *testing.T, p *ferryv1.Promotion) {
	t.Helper()
	if err := f.e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// eventCount is how many times an event of type and reason whose note contains text was recorded on the
// Promotion: repeats the recorder folded into a series count as many.
func eventCount(t *testing.T, c client.Client, ns, promotion, eventType, reason, text string) int {
	t.Helper()
	var list eventsv1.EventList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range list.Items {
		if ev.Regarding.Name != promotion || ev.Type != eventType || ev.Reason != reason || !strings.Contains(ev.Note, text) {
			continue
		}
		if ev.Series != nil {
			n += int(ev.Series.Count)
		} else {
			n++
		}
	}
	return n
}

// TestSignatureAfterThePushIsWaitedFor: CI pushes, then signs. Until the signature arrives Ferry says once that it
// waits for one, Ready does not turn False, and nothing is rejected; the signed digest is then promoted without a
// single VerificationFailed event — found by Ferry's own re-check, with the source poll an hour away.
func TestSignatureAfterThePushIsWaitedFor(t *testing.T) {
	f := newGraceFixture(t)
	startManager(t, Engines{Git: newGitEngine(t)})
	d := f.pushRelease(t, "1.0.0", false)
	digest := d.DigestStr()
	p := f.promotion(10*time.Minute, time.Hour)
	f.create(t, p)

	eventually(t, "the candidate to wait for a signature", func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		c := got.Status.Candidate
		reconciling := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReconciling)
		return c != nil && c.Digest == digest && c.SignatureDeadline != nil && reconciling != nil &&
			reconciling.Reason == ReasonAwaitingSignature, conditionState(got, ferryv1.ConditionReconciling)
	})
	got := getPromotion(t, f.e.Client, f.ns, p.Name)
	if ready := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady); ready == nil || ready.Status == metav1.ConditionFalse {
		t.Errorf("Ready while a signature is waited for: %s", conditionState(got, ferryv1.ConditionReady))
	}
	if st := got.Status.Stages[0]; st.InFlightDigest != "" {
		t.Errorf("dev took a digest with no signature: %+v", st)
	}
	eventually(t, "one AwaitingSignature event", func() (bool, string) {
		n := eventCount(t, f.e.Client, f.ns, p.Name, corev1.EventTypeNormal, ReasonAwaitingSignature, digest)
		return n == 1, fmt.Sprintf("%d seen", n)
	})

	sign(t, f.cosign, d)
	eventually(t, "the signed digest to be pinned in dev", func() (bool, string) {
		st := getPromotion(t, f.e.Client, f.ns, p.Name).Status.Stages[0]
		return st.Phase == ferryv1.PhaseSyncing && st.InFlightDigest == digest, string(st.Phase) + ": " + st.Message
	})
	if n := eventCount(t, f.e.Client, f.ns, p.Name, corev1.EventTypeWarning, ReasonVerificationFailed, ""); n != 0 {
		t.Errorf("%d VerificationFailed events for a digest signed within its grace period", n)
	}
	if n := eventCount(t, f.e.Client, f.ns, p.Name, corev1.EventTypeNormal, ReasonAwaitingSignature, digest); n != 1 {
		t.Errorf("%d AwaitingSignature events, want 1", n)
	}
	if c := getPromotion(t, f.e.Client, f.ns, p.Name).Status.Candidate; !c.Verified || c.SignatureDeadline != nil {
		t.Errorf("candidate after signing = %+v", c)
	}
}

// TestNeverSignedDigestIsRejectedOnce: a digest never signed is rejected when its grace period is over, with
// exactly one Warning event — not one from the rejection and another from Ready, and not again at the reconciles
// that follow, whether they ask the source again or read the rejection from status. The reconciler runs on a
// clock of the test's, so the grace period passes without waiting for it.
func TestNeverSignedDigestIsRejectedOnce(t *testing.T) {
	f := newGraceFixture(t)
	ctx := ctrl.LoggerInto(context.Background(), ctrl.Log)
	d := f.pushRelease(t, "1.0.0", false)
	digest := d.DigestStr()
	p := f.promotion(2*time.Minute, time.Hour)
	f.create(t, p)
	now := time.Now()
	recorder := events.NewFakeRecorder(100)
	r := &PromotionReconciler{Client: f.e.Client, APIReader: f.e.Client, Recorder: recorder,
		Engines: Engines{Git: newGitEngine(t)}, Now: func() time.Time { return now }}
	reconcileOnce := func(what string) ctrl.Result {
		t.Helper()
		res, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: f.ns, Name: p.Name}})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return res
	}

	res := reconcileOnce("the first look")
	if c := getPromotion(t, f.e.Client, f.ns, p.Name).Status.Candidate; !awaitingSignature(c) || c.Digest != digest {
		t.Fatalf("candidate = %+v, want %s waiting for its signature", c, digest)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > signatureRecheck+signatureRecheck/10 {
		t.Errorf("requeued after %s, want a re-check within %s", res.RequeueAfter, signatureRecheck)
	}
	reconcileOnce("a look within the grace period, from status")
	now = now.Add(time.Minute)
	reconcileOnce("a re-check within the grace period")

	now = now.Add(2 * time.Minute) // the grace period is over
	reconcileOnce("the look after the grace period")
	got := getPromotion(t, f.e.Client, f.ns, p.Name)
	if ready := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady); ready == nil ||
		ready.Reason != ReasonVerificationFailed || !strings.Contains(ready.Message, digest) {
		t.Fatalf("after the grace period: %s", conditionState(got, ferryv1.ConditionReady))
	}
	reconcileOnce("a look that reads the rejection from status")
	now = now.Add(time.Hour)
	reconcileOnce("the next poll, which asks the source again")

	seen := drain(recorder)
	if n := countEvents(seen, corev1.EventTypeWarning, ReasonVerificationFailed, digest); n != 1 {
		t.Errorf("%d VerificationFailed events for %s, want exactly 1:\n%s", n, digest, strings.Join(seen, "\n"))
	}
	if n := countEvents(seen, corev1.EventTypeNormal, ReasonAwaitingSignature, digest); n != 1 {
		t.Errorf("%d AwaitingSignature events for %s, want exactly 1:\n%s", n, digest, strings.Join(seen, "\n"))
	}
}

// drain returns the events a FakeRecorder holds ("<type> <reason> <note>").
func drain(r *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case ev := <-r.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func countEvents(seen []string, eventType, reason, text string) int {
	n := 0
	for _, ev := range seen {
		if strings.HasPrefix(ev, eventType+" "+reason+" ") && strings.Contains(ev, text) {
			n++
		}
	}
	return n
}

// TestWronglySignedDigestIsRejectedAtOnce: a signature that is there but made with another key is not lag but an
// attack or a mistake: it is rejected at once, whatever the grace period.
func TestWronglySignedDigestIsRejectedAtOnce(t *testing.T) {
	f := newGraceFixture(t)
	startManager(t, Engines{Git: newGitEngine(t)})
	d := f.pushRelease(t, "1.0.0", false)
	sign(t, signaturetest.NewCosign(t), d) // a key the Promotion does not trust
	p := f.promotion(time.Hour, time.Hour)
	f.create(t, p)
	eventually(t, "the wrongly signed digest to be rejected", func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		ready := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady)
		c := got.Status.Candidate
		return ready != nil && ready.Reason == ReasonVerificationFailed && c != nil && c.Digest == d.DigestStr() &&
			c.SignatureDeadline == nil && strings.Contains(c.Message, "Untrusted"), conditionState(got, ferryv1.ConditionReady)
	})
	if n := eventCount(t, f.e.Client, f.ns, p.Name, corev1.EventTypeNormal, ReasonAwaitingSignature, ""); n != 0 {
		t.Errorf("%d AwaitingSignature events for a digest that carries a signature", n)
	}
}

// TestSignatureGracePeriodIsBounded: the API server refuses a grace period beyond 1h or below zero, naming the
// field, and defaults it to 2m.
func TestSignatureGracePeriodIsBounded(t *testing.T) {
	e := testenv.Need(t, env)
	f := newPipelineFixture(t, e)
	for _, grace := range []time.Duration{2 * time.Hour, -time.Second} {
		p := f.promotion()
		p.Spec.Verification.SignatureGracePeriod = &metav1.Duration{Duration: grace}
		err := e.Client.Create(context.Background(), p)
		if err == nil || !strings.Contains(err.Error(), "spec.verification.signatureGracePeriod") {
			t.Errorf("grace %s: %v, want a refusal naming spec.verification.signatureGracePeriod", grace, err)
		}
	}
	p := f.promotion()
	if err := e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if g := getPromotion(t, e.Client, f.ns, p.Name).Spec.Verification.SignatureGracePeriod; g == nil || g.Duration != defaultSignatureGrace {
		t.Errorf("default grace = %v, want %s", g, defaultSignatureGrace)
	}
}
