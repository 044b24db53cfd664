package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/scm"
)

// grantSync lets the ServiceAccount sa of namespace saNS manage the kinds a stage applies in namespace ns, as a
// tenant's platform team would with a Role and a RoleBinding.
func grantSync(t testing.TB, c client.Client, saNS, sa, ns string) {
	t.Helper()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "ferry-sync-" + sa, Namespace: ns}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{"", "apps"}, Resources: []string{"configmaps", "deployments", "services"},
		Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"},
	}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: saNS, Name: sa}}}
	for _, obj := range []client.Object{role, binding} {
		if err := c.Create(context.Background(), obj); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTenantIdentityConfinesTheSync: a Promotion acts as its own ServiceAccount. It syncs where that account may
// write; pointed at a namespace the account may not touch, nothing is applied there and the Promotion stalls
// naming the field — Ferry's own rights are never lent to a tenant.
func TestTenantIdentityConfinesTheSync(t *testing.T) {
	f := newStagesFixture(t)
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: f.ns}}
	if err := f.e.Client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	grantSync(t, f.e.Client, f.ns, "deployer", f.dev)

	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	p.Spec.ServiceAccountName = "deployer"
	p.Spec.Stages[1].Sync.Namespace = f.stg // the account has no rights there
	if err := f.e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev")
	eventually(t, "Ready=False Forbidden naming staging's namespace", func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		c := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady)
		return c != nil && c.Reason == ReasonForbidden && strings.Contains(c.Message, "spec.stages[1].sync.namespace:") &&
			strings.Contains(c.Message, "deployer"), conditionState(got, ferryv1.ConditionReady)
	})
	var d appsv1.Deployment
	err := f.e.Client.Get(ctx, types.NamespacedName{Namespace: f.stg, Name: "shop"}, &d)
	if !apierrors.IsNotFound(err) {
		t.Errorf("the tenant's Deployment reached a namespace its account may not write: %v", err)
	}

	// The platform team grants the namespace: the stage goes on by itself, no change to the spec needed.
	grantSync(t, f.e.Client, f.ns, "deployer", f.stg)
	f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev", "staging")
}

// TestNoCrossNamespaceSync: with the operator's --no-cross-namespace-sync, a stage that syncs outside its
// Promotion's namespace stalls naming the field; one that syncs into it is let through.
func TestNoCrossNamespaceSync(t *testing.T) {
	r := &PromotionReconciler{NoCrossNamespaceSync: true}
	p := &ferryv1.Promotion{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "shop"},
		Spec: ferryv1.PromotionSpec{Stages: []ferryv1.StageSpec{
			{Name: "dev", Sync: ferryv1.SyncSpec{Namespace: "team-b"}},
			{Name: "prod", Sync: ferryv1.SyncSpec{Namespace: "kube-system"}}}},
		Status: ferryv1.PromotionStatus{Stages: make([]ferryv1.StageStatus, 2)}}
	s := &scope{p: p}
	if _, err := r.syncTarget(s, 0); err != nil {
		t.Errorf("own namespace refused: %v", err)
	}
	_, err := r.syncTarget(s, 1)
	if stall, ok := asStalling(err); !ok || stall.Field != "spec.stages[1].sync.namespace" {
		t.Errorf("kube-system: %v, want a stall on spec.stages[1].sync.namespace", err)
	}
}

// fakeForge is a forge that opens and reports pull requests the test merges itself on the Git server.
type fakeForge struct {
	mu  sync.Mutex
	prs map[string]*scm.PullRequest // by head branch
}

func (f *fakeForge) Name() string { return "gitea" }

func (f *fakeForge) EnsurePullRequest(_ context.Context, spec scm.PullRequestSpec) (scm.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pr, ok := f.prs[spec.Head]; ok {
		return *pr, nil
	}
	pr := &scm.PullRequest{Number: len(f.prs) + 1, URL: fmt.Sprintf("http://forge.test/pulls/%d", len(f.prs)+1),
		State: scm.StateOpen, HeadBranch: spec.Head, BaseBranch: spec.Base}
	f.prs[spec.Head] = pr
	return *pr, nil
}

func (f *fakeForge) GetPullRequest(_ context.Context, _ string, number int) (scm.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, pr := range f.prs {
		if pr.Number == number {
			return *pr, nil
		}
	}
	return scm.PullRequest{}, fmt.Errorf("no pull request %d", number)
}

func (f *fakeForge) FindPullRequest(context.Context, string, string, string) (*scm.PullRequest, error) {
	return nil, nil
}

func (f *fakeForge) ClosePullRequest(context.Context, string, int, string) error { return nil }

// merge marks the pull request of branch merged by who, with the head and merge commit the Git server has.
func (f *fakeForge) merge(branch, head, mergeCommit, who string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pr := f.prs[branch]
	pr.State, pr.HeadSHA, pr.MergeCommitSHA, pr.MergedBy = scm.StateMerged, head, mergeCommit, who
}

// startPullRequestApproval runs the stages fixture with forge (a fakeForge) as its forge, pushes release 1.0.0 and
// creates p, a one-stage (dev) Promotion approved by a pull request on that forge (Gitea in the spec; the fake
// answers, so its API URL is never called). v1 is the 1.0.0 digest.
func startPullRequestApproval(t *testing.T) (f *stagesFixture, forge *fakeForge, p *ferryv1.Promotion, v1 string) {
	t.Helper()
	forge = &fakeForge{prs: map[string]*scm.PullRequest{}}
	f = newStagesFixtureWith(t, func(e *Engines) {
		e.NewSCM = func(scm.Config) (scm.Provider, error) { return forge, nil }
	})
	ctx := context.Background()
	token := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "forge", Namespace: f.ns}, Data: map[string][]byte{"token": []byte("t")}}
	if err := f.e.Client.Create(ctx, token); err != nil {
		t.Fatal(err)
	}
	p = f.promotion()
	p.Spec.Stages = p.Spec.Stages[:1]
	p.Spec.Stages[0].Approval = ferryv1.ApprovalSpec{Mode: ferryv1.ApprovalPullRequest, PullRequest: &ferryv1.PullRequestApproval{
		Provider: ferryv1.ProviderGitea, APIURL: "http://127.0.0.1:1", TokenSecretRef: ferryv1.SecretKeyReference{Name: "forge"}}}
	v1 = f.pushRelease(t, "1.0.0", true).DigestStr()
	if err := f.e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	return f, forge, p, v1
}

// TestPullRequestChangedAfterFerryPushedIsNotSynced: someone pushes to the approval branch after Ferry did, and
// the pull request is merged: the merge is not synced — what was approved is not what Ferry verified and pinned.
func TestPullRequestChangedAfterFerryPushedIsNotSynced(t *testing.T) {
	f, forge, p, v1 := startPullRequestApproval(t)
	branch := f.awaitPullRequest(t, p.Name, v1).Branch
	// Someone adds a commit to the branch, then the pull request is merged with it.
	head := f.git.Commit("acme/deploy", branch, map[string]string{"envs/dev/extra.yaml": "kind: ConfigMap\n"}, "one more thing")
	merged := f.git.Merge("acme/deploy", "refs/heads/main", "main", branch, "Merge")
	forge.merge(branch, head, merged, "release-manager")
	annotate(t, f.e.Client, f.ns, p.Name, "test.ferry.dev/poke", "merged") // rather than wait for the 30 s approval poll

	eventually(t, "the merge to be refused", func() (bool, string) {
		st := getPromotion(t, f.e.Client, f.ns, p.Name).Status.Stages[0]
		return st.Phase == ferryv1.PhaseFailed && len(st.History) > 0 && strings.Contains(st.History[0].Reason, "not synced"),
			string(st.Phase) + ": " + st.Message
	})
	var d appsv1.Deployment
	if err := f.e.Client.Get(context.Background(), types.NamespacedName{Namespace: f.dev, Name: "shop"}, &d); !apierrors.IsNotFound(err) {
		t.Errorf("the merge was synced anyway: %v", err)
	}
	if h := getPromotion(t, f.e.Client, f.ns, p.Name).Status.Stages[0].History; len(h) == 0 || h[0].Digest != v1 || h[0].Outcome != ferryv1.OutcomeFailed {
		t.Errorf("history = %+v", h)
	}
}
