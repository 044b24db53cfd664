package controllers

import (
	"context"
	"strings"
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
			{Name: "prod", Sync: ferryv1.SyncSpec{Namespace: "kube-system"}}}}}
	s := &scope{p: p}
	if _, err := r.syncTarget(s, 0); err != nil {
		t.Errorf("own namespace refused: %v", err)
	}
	_, err := r.syncTarget(s, 1)
	if stall, ok := asStalling(err); !ok || stall.Field != "spec.stages[1].sync.namespace" {
		t.Errorf("kube-system: %v, want a stall on spec.stages[1].sync.namespace", err)
	}
}
