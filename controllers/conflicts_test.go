package controllers

import (
	"context"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/scm"
	"github.com/ferrycd/ferry/internal/testenv"
)

// TestLostOptimisticLockIsRetriedQuietly: someone annotates the Promotion between Ferry's read and its guarded
// write of the metadata (the finalizer it adds before opening a pull request). The real API server refuses the
// write with a conflict; the reconcile ends without an error — nothing for controller-runtime to log as a
// "Reconciler error" — asks to run again shortly, and the next reconcile goes on from the newer object.
func TestLostOptimisticLockIsRetriedQuietly(t *testing.T) {
	e := testenv.Need(t, env)
	f := newPipelineFixture(t, e)
	ctx := ctrl.LoggerInto(context.Background(), ctrl.Log)
	token := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "forge", Namespace: f.ns}, Data: map[string][]byte{"token": []byte("t")}}
	if err := e.Client.Create(ctx, token); err != nil {
		t.Fatal(err)
	}
	p := f.promotion()
	p.Spec.Stages[0].Approval = ferryv1.ApprovalSpec{Mode: ferryv1.ApprovalPullRequest, PullRequest: &ferryv1.PullRequestApproval{
		Provider: ferryv1.ProviderGitea, APIURL: "http://127.0.0.1:1", TokenSecretRef: ferryv1.SecretKeyReference{Name: "forge"}}}
	f.pushRelease(t, "1.0.0", true)
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}

	base, err := client.NewWithWatch(e.Config, client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	var raced atomic.Bool
	racing := interceptor.NewClient(base, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if _, ok := obj.(*ferryv1.Promotion); ok && raced.CompareAndSwap(false, true) {
				annotate(t, e.Client, f.ns, p.Name, "test.ferry.dev/meanwhile", "someone else wrote first")
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
	})
	forge := &fakeForge{prs: map[string]*scm.PullRequest{}}
	r := &PromotionReconciler{Client: racing, APIReader: racing, Recorder: events.NewFakeRecorder(100),
		Engines: Engines{Git: newGitEngine(t), NewSCM: func(scm.Config) (scm.Provider, error) { return forge, nil }}}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: f.ns, Name: p.Name}}

	for i := 0; !raced.Load(); i++ {
		if i == 20 {
			t.Fatal("20 reconciles and Ferry never wrote the Promotion's metadata")
		}
		res, err := r.Reconcile(ctx, req)
		if raced.Load() {
			if err != nil || res.RequeueAfter <= 0 {
				t.Fatalf("the reconcile that lost the race returned %+v, %v; want a requeue and no error", res, err)
			}
			got := getPromotion(t, e.Client, f.ns, p.Name)
			if ready := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady); ready != nil && ready.Reason == ReasonRetrying {
				t.Errorf("a lost race shows as a failure: %s", conditionState(got, ferryv1.ConditionReady))
			}
		} else if err != nil {
			t.Fatalf("reconcile %d: %v", i, err)
		}
	}
	for i := 0; ; i++ {
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatalf("after the race: %v", err)
		}
		if st := getPromotion(t, e.Client, f.ns, p.Name).Status.Stages[0]; st.Phase == ferryv1.PhaseAwaitingApproval {
			break
		}
		if i == 20 {
			t.Fatal("the pull request was never opened after the race")
		}
	}
}
