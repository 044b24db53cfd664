package e2e

import (
	"path/filepath"
	"testing"
	"time"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/signature/signaturetest"
)

// TestControllerKilledMidPromotionFinishesOnce kills ferry-controller with SIGKILL twice, each time after a side
// effect landed but before the controller learned of it: once when dev's commit is on the Git server but the
// push's answer has not arrived (restarted with the same cache folder), once when prod's pull request is open on
// Gitea but the API's answer has not arrived (restarted with a fresh cache folder). The promotion still finishes
// exactly once: one Ferry commit per stage for the digest, one pull request, one history entry per stage.
func TestControllerKilledMidPromotionFinishesOnce(t *testing.T) {
	h := newHarness(t)
	cosign := newCosign(t)
	src := signaturetest.NewRegistry(t, true)
	regs := map[string]*signaturetest.Registry{"dev": signaturetest.NewRegistry(t, true), "prod": signaturetest.NewRegistry(t, false)}
	fg := newForge(t, stageFiles(regs, deploymentOptions{}))
	proxy := newHoldingProxy(t, fg.gitea.URL)
	h.createNamespaces("shop-dev", "shop-prod")

	d := release(t, src, "1.0.0")
	cosign.sign(t, d)
	digest := d.DigestStr()

	devPush := proxy.hold(gitPush)          // the first push is dev's commit to main
	prOpened := proxy.hold(openPullRequest) // prod's pull request
	p := newPromotion(src, fg.cloneURL(proxy.URL),
		stageSpec("dev", regs["dev"], ferryv1.ManifestKustomize, 2*time.Minute),
		stageSpec("prod", regs["prod"], ferryv1.ManifestPlain, 2*time.Minute))
	fg.approveByPullRequest(p, "prod", proxy.URL)
	for _, s := range fg.secrets() {
		h.create(s)
	}
	h.create(keySecret(cosign.PublicKey(t)), p)

	// Crash 1: the commit is on main, Ferry's status still says Writing.
	waitReached(t, h, devPush, "dev's push to reach Gitea")
	if st := stageStatus(t, h.promotion("shop"), "dev"); st.Phase != ferryv1.PhaseWriting || st.InFlightDigest != digest {
		t.Fatalf("dev is %s with %q in flight at the crash, want Writing %s", st.Phase, st.InFlightDigest, digest)
	}
	requireOneFerryCommit(t, fg.log(t), "dev", digest)
	h.kill(h.ctrl)
	devPush.letGo()
	h.restart(h.cache)

	// Crash 2: the pull request is open on Gitea, Ferry's status still says Writing.
	waitReached(t, h, prOpened, "prod's pull request to be opened on Gitea")
	if st := stageStatus(t, h.promotion("shop"), "prod"); st.Phase != ferryv1.PhaseWriting || st.PullRequest != nil {
		t.Fatalf("prod is %s with pull request %+v at the crash, want Writing and none recorded", st.Phase, st.PullRequest)
	}
	if prs := fg.pullRequests(t); len(prs) != 1 {
		t.Fatalf("pull requests at the crash: %s, want 1", describePRs(prs))
	}
	h.kill(h.ctrl)
	prOpened.letGo()
	h.restart(filepath.Join(h.dir, "fresh-cache"))

	waiting := h.waitPromotion("shop", "prod to await approval after the restarts", func(p *ferryv1.Promotion) bool {
		st := findStage(p, "prod")
		return st != nil && st.Phase == ferryv1.PhaseAwaitingApproval && st.PullRequest != nil
	})
	pr := stageStatus(t, waiting, "prod").PullRequest
	if prs := fg.pullRequests(t); len(prs) != 1 || prs[0].Index != pr.Number {
		t.Fatalf("pull requests = %s, want only #%d (the one opened before the crash)", describePRs(prs), pr.Number)
	}
	merged := fg.merge(t, pr.Number)
	h.poke("shop")
	done := h.waitPromotion("shop", "prod to run the digest", func(p *ferryv1.Promotion) bool {
		return settledOn(p, "prod", digest, ferryv1.PhasePromoted) && settledOn(p, "dev", digest, ferryv1.PhasePromoted)
	})

	log := fg.log(t)
	requireOneFerryCommit(t, log, "dev", digest)
	requireOneFerryCommit(t, log, "prod", digest)
	if log[0].SHA != *merged.MergedCommitID {
		t.Errorf("main's tip is %s, want the merge %s:\n%s", shortSHA(log[0].SHA), *merged.MergedCommitID, formatLog(log))
	}
	if prs := fg.pullRequests(t); len(prs) != 1 {
		t.Errorf("pull requests = %s, want exactly 1", describePRs(prs))
	}
	for _, stage := range []string{"dev", "prod"} {
		st := stageStatus(t, done, stage)
		if len(st.History) != 1 || st.History[0].Digest != digest || st.History[0].Outcome != ferryv1.OutcomePromoted {
			t.Errorf("%s history = %+v, want one Promoted entry for %s", stage, st.History, digest)
		}
	}
	if a := stageStatus(t, done, "prod").History[0].Approver; a != fg.rm.Name {
		t.Errorf("prod approver = %q, want %s", a, fg.rm.Name)
	}
	for _, stage := range []string{"dev", "prod"} {
		waitRolledOut(t, h.kube, "shop-"+stage, "shop", 2, stageImage(regs[stage], stage)+"@"+digest)
	}
}

// waitReached waits until the proxy has let the server carry out the held request.
func waitReached(t *testing.T, h *harness, r *holdRule, what string) {
	t.Helper()
	select {
	case <-r.reached:
	case <-time.After(flowTimeout):
		r.letGo()
		t.Fatalf("waiting for %s: not within %s; status:\n%s", what, flowTimeout, describe(h.promotion("shop")))
	}
}
