package main

import (
	"strings"
	"testing"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

// TestClearHoldReleasesAHeldStageOnly: on a stage a rollback holds, clear-hold sets the annotation as the user;
// on a stage that is not held, or a second time while the first request is pending, it refuses and changes nothing.
func TestClearHoldReleasesAHeldStageOnly(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	stages := fixtureStages()
	since := at(8)
	stages[2].Phase = ferryv1.PhaseRolledBack
	stages[2].Hold = &ferryv1.HoldStatus{Digest: digestA, Reason: "RollbackRequested", RequestedBy: "carol", Since: &since}
	createPromotion(t, e, ns, "shop", stages)

	_, err := runFerry(t, "clear-hold", "shop", "--stage", "staging", "--kubeconfig", kubeconfig)
	if err == nil || !strings.Contains(err.Error(), `stage "staging" of promotion "shop" is not held: there is no hold to clear`) {
		t.Errorf("clear-hold of a stage without a hold: err = %v", err)
	}
	if p := getShop(t, e, ns, "shop"); len(p.Annotations) != 0 {
		t.Errorf("a refused clear-hold changed the Promotion: %v", p.Annotations)
	}

	out, err := runFerry(t, "clear-hold", "shop", "--stage", "prod", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry clear-hold: %v\n%s", err, out)
	}
	want := "Releasing the hold of stage prod of promotion shop on sha256:aaaaaaaaaaaa (RollbackRequested, asked by carol): set ferry.dev/clear-hold=prod\n"
	if !strings.HasPrefix(out, want) {
		t.Errorf("output:\n%s\nwant it to start with:\n%s", out, want)
	}
	p := getShop(t, e, ns, "shop")
	checkRequest(t, p, ferryv1.ClearHoldAnnotation, "prod", "clear-hold")

	_, err = runFerry(t, "clear-hold", "shop", "--stage", "prod", "--kubeconfig", kubeconfig)
	if err == nil || !strings.Contains(err.Error(), `already pending on promotion "shop" (ferry.dev/clear-hold="prod")`) {
		t.Errorf("second clear-hold: err = %v", err)
	}
	if after := getShop(t, e, ns, "shop"); after.ResourceVersion != p.ResourceVersion {
		t.Errorf("a refused clear-hold changed the Promotion: %v", after.Annotations)
	}
}
