package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
	"github.com/ferrycd/ferry/internal/testenv"
)

// fakeController plays Ferry's controller in a test: it waits for the rollback annotation to appear, then
// applies each step to the Promotion in order. A step that removes the annotation returns removeAnnotation.
// The channel receives the annotation's value, then is closed; a failure is reported through t.Errorf.
func fakeController(t *testing.T, e *testenv.Env, ns, name string, steps ...func(*ferryv1.Promotion) bool) <-chan string {
	t.Helper()
	seen := make(chan string, 1)
	key := types.NamespacedName{Namespace: ns, Name: name}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	go func() {
		defer cancel()
		defer close(seen)
		var value string
		err := wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			var p ferryv1.Promotion
			if err := e.Client.Get(ctx, key, &p); err != nil {
				return false, err
			}
			v, ok := p.Annotations[ferryv1.RollbackAnnotation]
			value = v
			return ok, nil
		})
		if err != nil {
			t.Errorf("fake controller: waiting for the annotation: %v", err)
			return
		}
		seen <- value
		for i, step := range steps {
			if err := applyStep(ctx, e.Client, key, step); err != nil {
				t.Errorf("fake controller: step %d: %v", i, err)
				return
			}
		}
	}()
	return seen
}

// applyStep mutates the Promotion's status (and, when the step says so, removes the rollback annotation), as
// the controller does: status first, then the annotation.
func applyStep(ctx context.Context, c client.Client, key types.NamespacedName, step func(*ferryv1.Promotion) bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p ferryv1.Promotion
		if err := c.Get(ctx, key, &p); err != nil {
			return err
		}
		orig := p.DeepCopy()
		if !step(&p) {
			return c.Status().Patch(ctx, &p, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		}
		delete(p.Annotations, ferryv1.RollbackAnnotation)
		return c.Patch(ctx, &p, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	})
}

const removeAnnotation = true

func prodStage(p *ferryv1.Promotion) *ferryv1.StageStatus {
	for i := range p.Status.Stages {
		if p.Status.Stages[i].Name == "prod" {
			return &p.Status.Stages[i]
		}
	}
	panic("no prod stage in the fixture")
}

// Steps of a rollback of prod to target, as the controller carries it out.
func recordRollback(target string) func(*ferryv1.Promotion) bool {
	return func(p *ferryv1.Promotion) bool {
		s, now := prodStage(p), metav1.Now()
		s.Phase, s.InFlightDigest, s.Since, s.Message = ferryv1.PhaseRollingBack, target, &now, "committing the older pin to Git"
		s.Hold = &ferryv1.HoldStatus{Digest: target, Reason: "RollbackRequested", RequestedBy: "on-call", Since: &now}
		return false
	}
}

func dropAnnotation(*ferryv1.Promotion) bool { return removeAnnotation }

func finishRollback(p *ferryv1.Promotion) bool {
	s, now := prodStage(p), metav1.Now()
	rolledBack := ferryv1.StageHistoryEntry{Digest: s.Digest, Time: now, Outcome: ferryv1.OutcomeRolledBack,
		Reason: "rollback requested by on-call"}
	s.History = append([]ferryv1.StageHistoryEntry{rolledBack}, s.History...)
	s.Phase, s.Digest, s.InFlightDigest, s.Since, s.Message = ferryv1.PhaseRolledBack, s.InFlightDigest, "", &now, "held on the rolled-back digest"
	return false
}

func TestRollbackWaitsForTheController(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createShop(t, e, ns)

	// Without --to, prod returns to the newest promoted digest before B: A (X was rejected, never ran).
	seen := fakeController(t, e, ns, "shop", recordRollback(digestA), dropAnnotation, finishRollback)
	out, err := runFerry(t, "rollback", "shop", "--stage", "prod", "--timeout", "1m", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry rollback: %v\n%s", err, out)
	}
	if v := <-seen; v != "prod" {
		t.Errorf("annotation = %q, want the stage name alone", v)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	wantFirst := fmt.Sprintf("Rolling back stage prod of promotion shop from %s to %s: set %s=prod",
		promotionctl.ShortDigest(digestB), digestA, ferryv1.RollbackAnnotation)
	if lines[0] != wantFirst {
		t.Errorf("first line:\n got %q\nwant %q", lines[0], wantFirst)
	}
	if last := lines[len(lines)-1]; last != "Stage prod of promotion shop rolled back to "+digestA+"." {
		t.Errorf("last line %q", last)
	}
	if !strings.Contains(out, "prod: ") {
		t.Errorf("no progress lines:\n%s", out)
	}
	p := getShop(t, e, ns, "shop")
	if _, ok := p.Annotations[ferryv1.RollbackAnnotation]; ok || prodStage(p).Digest != digestA {
		t.Errorf("after the rollback: annotations %v, prod %+v", p.Annotations, prodStage(p))
	}
}

func TestRollbackToADigestWithoutWaiting(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createShop(t, e, ns)

	// A prefix from `ferry history` is enough; the annotation carries the full digest.
	out, err := runFerry(t, "rollback", "shop", "--stage", "prod", "--to", promotionctl.ShortDigest(digestA), "--wait=false",
		"--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry rollback --wait=false: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Not waiting (--wait=false)") {
		t.Errorf("output:\n%s", out)
	}
	p := getShop(t, e, ns, "shop")
	if v := p.Annotations[ferryv1.RollbackAnnotation]; v != "prod="+digestA {
		t.Fatalf("annotation = %q, want prod=%s", v, digestA)
	}
	// The annotation's field manager names the authenticated user, which the controller records as requester.
	var managers []string
	for _, mf := range p.ManagedFields {
		managers = append(managers, mf.Manager)
	}
	if !strings.Contains(strings.Join(managers, " "), "ferry-rollback:") {
		t.Errorf("no ferry-rollback:<user> field manager among %v", managers)
	}

	// A second request while the first is pending changes nothing.
	_, err = runFerry(t, "rollback", "shop", "--stage", "dev", "--wait=false", "--kubeconfig", kubeconfig)
	if err == nil || !strings.Contains(err.Error(), `a rollback is already pending on promotion "shop" (ferry.dev/rollback="prod=`+digestA+`")`) {
		t.Errorf("second rollback: err = %v", err)
	}
	if after := getShop(t, e, ns, "shop"); after.ResourceVersion != p.ResourceVersion {
		t.Errorf("a refused rollback changed the Promotion: %v", after.Annotations)
	}
}

func TestRollbackRefusesBadInputAndChangesNothing(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createShop(t, e, ns)
	createPromotion(t, e, ns, "fresh", nil)
	// staging's history holds only the digest it runs: there is no previous digest.
	before := map[string]string{
		"shop":  getShop(t, e, ns, "shop").ResourceVersion,
		"fresh": getShop(t, e, ns, "fresh").ResourceVersion,
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nope", "--stage", "prod"}, `promotion "nope" not found in namespace "` + ns + `"`},
		{[]string{"shop"}, `required flag(s) "stage" not set`},
		{[]string{"shop", "--stage", "qa"}, `--stage "qa": promotion "shop" has no such stage (stages: dev, staging, prod)`},
		{[]string{"shop", "--stage", "prod", "--to", absent},
			"--to " + absent + `: digest not found in the history of stage "prod" (` + "`ferry history shop --stage prod`"},
		{[]string{"shop", "--stage", "prod", "--to", "sha256:xyz"}, `--to "sha256:xyz": not a digest`},
		{[]string{"shop", "--stage", "prod", "--to", "v1.2.3"}, `--to "v1.2.3": not a digest`},
		{[]string{"shop", "--stage", "dev", "--to", "sha256:aaaaaaaaaaaa"}, "--to sha256:aaaaaaaaaaaa: prefix matches 2 digests"},
		{[]string{"shop", "--stage", "prod", "--to", digestB}, `--to ` + digestB + `: stage "prod" already runs that digest`},
		{[]string{"shop", "--stage", "prod", "--to", digestX},
			`--to ` + digestX + `: was never promoted in stage "prod" (its history says Rejected)`},
		{[]string{"shop", "--stage", "staging"}, `stage "staging" of promotion "shop" has no previous digest`},
		{[]string{"fresh", "--stage", "prod"}, `stage "prod" of promotion "fresh" runs no digest yet`},
		{[]string{"shop", "--stage", "prod", "--timeout", "0s"}, "--timeout 0s: must be positive"},
	} {
		args := append(append([]string{"rollback"}, tc.args...), "--kubeconfig", kubeconfig)
		out, err := runFerry(t, args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q\n%s", tc.args, err, tc.want, out)
		}
	}
	for name, rv := range before {
		if p := getShop(t, e, ns, name); p.ResourceVersion != rv || len(p.Annotations) != 0 {
			t.Errorf("%s changed by refused rollbacks: annotations %v", name, p.Annotations)
		}
	}
}

func TestRollbackTimesOutWhenNoControllerActs(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createShop(t, e, ns)
	out, err := runFerry(t, "rollback", "shop", "--stage", "prod", "--timeout", "1s", "--kubeconfig", e.Kubeconfig(t, ns))
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s: the controller has not picked up the rollback request") {
		t.Errorf("err = %v\n%s", err, out)
	}
	if !strings.Contains(out, "prod: Promoted, running "+promotionctl.ShortDigest(digestB)+", waiting for the controller to pick up the request") {
		t.Errorf("no waiting line:\n%s", out)
	}
	if v := getShop(t, e, ns, "shop").Annotations[ferryv1.RollbackAnnotation]; v != "prod" {
		t.Errorf("the request must stay for the controller: annotation %q", v)
	}
}

func TestRollbackReportsAFailure(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createShop(t, e, ns)
	fail := func(p *ferryv1.Promotion) bool {
		s := prodStage(p)
		s.Phase, s.Message = ferryv1.PhaseFailed, "sync: deployment shop did not become healthy in 5m"
		return false
	}
	fakeController(t, e, ns, "shop", recordRollback(digestA), dropAnnotation, fail)
	out, err := runFerry(t, "rollback", "shop", "--stage", "prod", "--to", digestA, "--timeout", "1m",
		"--kubeconfig", e.Kubeconfig(t, ns))
	want := "rolling back stage prod of promotion shop to " + digestA + " failed: sync: deployment shop did not become healthy in 5m"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q\n%s", err, want, out)
	}
}

// The watcher's decisions, one observed Promotion at a time.
func TestRollbackWatcherFollowsTheStatus(t *testing.T) {
	base := func() *ferryv1.Promotion {
		return &ferryv1.Promotion{ObjectMeta: metav1.ObjectMeta{Name: "shop"},
			Spec:   ferryv1.PromotionSpec{Stages: []ferryv1.StageSpec{{Name: "dev"}, {Name: "staging"}, {Name: "prod"}}},
			Status: ferryv1.PromotionStatus{Stages: fixtureStages()}}
	}
	newReq := func(explicit bool, target string) *rollbackRequest {
		p := base()
		req, err := planRollback(p, "prod", nil)
		if err != nil {
			panic(err) // the fixture is broken; t.Fatal would stop the subtest's parent
		}
		req.explicit, req.target = explicit, target
		return req
	}
	pending := func(p *ferryv1.Promotion) *ferryv1.Promotion {
		p.Annotations = map[string]string{ferryv1.RollbackAnnotation: "prod"}
		return p
	}
	step := func(p *ferryv1.Promotion, f func(*ferryv1.Promotion) bool) *ferryv1.Promotion { f(p); return p }

	t.Run("progress lines once per change", func(t *testing.T) {
		var out bytes.Buffer
		w := &rollbackWatcher{req: newReq(false, digestA), out: &out}
		states := []*ferryv1.Promotion{pending(base()), pending(base()), step(pending(base()), recordRollback(digestA)),
			step(base(), recordRollback(digestA))}
		for _, p := range states {
			if done, err := w.observe(p); done || err != nil {
				t.Fatalf("done=%v err=%v too early:\n%s", done, err, out.String())
			}
		}
		done, err := w.observe(step(step(base(), recordRollback(digestA)), finishRollback))
		if !done || err != nil {
			t.Fatalf("done=%v err=%v after the rollback:\n%s", done, err, out.String())
		}
		want := []string{
			"prod: Promoted, running sha256:bbbbbbbbbbbb, waiting for the controller to pick up the request",
			"prod: RollingBack, running sha256:bbbbbbbbbbbb, in flight sha256:aaaaaaaaaaaa, waiting for the controller to pick up the request: committing the older pin to Git",
			"prod: RollingBack, running sha256:bbbbbbbbbbbb, in flight sha256:aaaaaaaaaaaa: committing the older pin to Git",
			"prod: RolledBack, running sha256:aaaaaaaaaaaa: held on the rolled-back digest",
			"Stage prod of promotion shop rolled back to " + digestA + ".",
		}
		if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("the controller's choice of previous digest wins", func(t *testing.T) {
		var out bytes.Buffer
		w := &rollbackWatcher{req: newReq(false, digestA), out: &out}
		if done, err := w.observe(step(base(), recordRollback(digestA2))); done || err != nil || w.req.target != digestA2 {
			t.Fatalf("done=%v err=%v target=%s", done, err, w.req.target)
		}
		if !strings.Contains(out.String(), "The controller chose "+digestA2) {
			t.Errorf("output:\n%s", out.String())
		}
	})

	t.Run("an explicit target is never replaced", func(t *testing.T) {
		w := &rollbackWatcher{req: newReq(true, digestA), out: &bytes.Buffer{}}
		_, err := w.observe(step(base(), recordRollback(digestA2)))
		if err == nil || !strings.Contains(err.Error(), "the controller recorded a rollback of stage prod to "+digestA2+", not "+digestA) {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("a new failed history entry ends the wait", func(t *testing.T) {
		w := &rollbackWatcher{req: newReq(true, digestA), out: &bytes.Buffer{}}
		p := step(base(), recordRollback(digestA))
		s := prodStage(p)
		s.Phase = ferryv1.PhaseSoaking
		s.History = append([]ferryv1.StageHistoryEntry{{Digest: digestA, Time: metav1.Now(), Outcome: ferryv1.OutcomeFailed,
			Reason: "analysis: error rate 7% > 1%"}}, s.History...)
		_, err := w.observe(p)
		if err == nil || !strings.HasSuffix(err.Error(), "failed: Failed: analysis: error rate 7% > 1%") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("the controller refuses the request", func(t *testing.T) {
		w := &rollbackWatcher{req: newReq(true, digestA), out: &bytes.Buffer{}}
		p := pending(base())
		p.Status.Conditions = []metav1.Condition{{Type: ferryv1.ConditionStalled, Status: metav1.ConditionTrue,
			Reason: "InvalidRollbackRequest", Message: rollbackField + `: stage "prod" has no earlier promoted digest to roll back to`}}
		_, err := w.observe(p)
		if err == nil || !strings.Contains(err.Error(), `the controller refused the rollback (InvalidRollbackRequest): `+
			`metadata.annotations[ferry.dev/rollback]: stage "prod" has no earlier promoted digest`) {
			t.Errorf("err = %v", err)
		}
		p.Status.Conditions[0].Message = "spec.git.secretRef: Secret not found" // stalled, but not on the rollback
		if _, err := w.observe(p); err != nil {
			t.Errorf("a stall about something else ended the wait: %v", err)
		}
	})

	t.Run("a refusal of an earlier request is no answer", func(t *testing.T) {
		stale := metav1.Condition{Type: ferryv1.ConditionStalled, Status: metav1.ConditionTrue, Reason: "InvalidRollbackRequest",
			Message: rollbackField + `: stage "qa" does not exist in spec.stages`, LastTransitionTime: metav1.Now()}
		before := base()
		before.Status.Conditions = []metav1.Condition{stale}
		req, err := planRollback(before, "prod", nil)
		if err != nil {
			t.Fatal(err)
		}
		w := &rollbackWatcher{req: req, out: &bytes.Buffer{}}
		p := pending(base())
		p.Status.Conditions = []metav1.Condition{stale}
		if _, err := w.observe(p); err != nil {
			t.Errorf("the stale refusal ended the wait: %v", err)
		}
		p.Status.Conditions[0].Message = rollbackField + `: stage "prod" has no earlier promoted digest to roll back to`
		if _, err := w.observe(p); err == nil {
			t.Error("a new refusal did not end the wait")
		}
	})

	t.Run("an annotation removed by hand", func(t *testing.T) {
		w := &rollbackWatcher{req: newReq(false, digestA), out: &bytes.Buffer{}}
		_, err := w.observe(base())
		if err == nil || !strings.Contains(err.Error(), "was the request cancelled by hand?") {
			t.Errorf("err = %v", err)
		}
	})
}
