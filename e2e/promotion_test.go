package e2e

import (
	"code.gitea.io/sdk/gitea"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/signature/signaturetest"
)

// stageFiles are the deploy repository's first content: one folder per stage; dev uses kustomize.
func stageFiles(regs map[string]*signaturetest.Registry, o deploymentOptions) map[string]string {
	files := map[string]string{"README.md": "Deployment manifests of shop. Ferry pins image digests here.\n"}
	for stage, reg := range regs {
		files["envs/"+stage+"/deployment.yaml"] = deploymentYAML(stageImage(reg, stage)+":0.0.0", o)
		if stage == "dev" {
			files["envs/dev/kustomization.yaml"] = kustomization(stageImage(reg, stage))
		}
	}
	return files
}

// TestSignedDigestReachesProd carries a digest signed with the real cosign CLI through dev (kustomize, automatic),
// staging (plain, automatic) and prod (plain, approved by a release manager merging Ferry's pull request on a
// real Gitea), and checks every outcome where it lands: the stage registries, Git, the cluster, and the
// Promotion's status and events.
func TestSignedDigestReachesProd(t *testing.T) {
	h := newHarness(t)
	cosign := newCosign(t)
	src := signaturetest.NewRegistry(t, true)
	regs := map[string]*signaturetest.Registry{
		"dev":     signaturetest.NewRegistry(t, false), // no referrers API: signatures travel in the tag fallback
		"staging": signaturetest.NewRegistry(t, true),
		"prod":    signaturetest.StartDistribution(t), // the CNCF distribution registry (Debian's docker-registry)
	}
	fg := newForge(t, stageFiles(regs, deploymentOptions{}))
	h.createNamespaces("shop-dev", "shop-staging", "shop-prod")

	d := release(t, src, "1.0.0")
	cosign.sign(t, d)
	digest := d.DigestStr()

	p := newPromotion(src, fg.cloneURL(fg.gitea.URL),
		stageSpec("dev", regs["dev"], ferryv1.ManifestKustomize, 2*time.Minute),
		stageSpec("staging", regs["staging"], ferryv1.ManifestPlain, 2*time.Minute),
		stageSpec("prod", regs["prod"], ferryv1.ManifestPlain, 2*time.Minute))
	fg.approveByPullRequest(p, "prod", fg.gitea.URL)
	for _, s := range fg.secrets() {
		h.create(s)
	}
	h.create(keySecret(cosign.PublicKey(t)), p)

	// dev and staging take the digest on their own; prod waits for the release manager.
	waiting := h.waitPromotion("shop", "prod to await approval", func(p *ferryv1.Promotion) bool {
		st := findStage(p, "prod")
		return st != nil && st.Phase == ferryv1.PhaseAwaitingApproval && st.PullRequest != nil
	})
	for _, stage := range []string{"dev", "staging"} {
		if !settledOn(waiting, stage, digest, ferryv1.PhasePromoted) {
			t.Fatalf("stage %s is not promoted on %s while prod awaits approval:\n%s", stage, digest, describe(waiting))
		}
	}
	pr := stageStatus(t, waiting, "prod").PullRequest
	if pr.Digest != digest || pr.Branch == "" || pr.Number == 0 {
		t.Fatalf("prod pull request = %+v, want one for %s", *pr, digest)
	}
	if prs := fg.pullRequests(t); len(prs) != 1 || prs[0].Index != pr.Number || prs[0].Head.Ref != pr.Branch ||
		!slices.ContainsFunc(prs[0].Labels, func(l *gitea.Label) bool { return l.Name == "promotion" }) {
		t.Fatalf("pull requests on Gitea = %s, want only #%d from %s labelled promotion", describePRs(prs), pr.Number, pr.Branch)
	}

	merged := fg.merge(t, pr.Number)
	h.poke("shop")
	done := h.waitPromotion("shop", "prod to run the digest and the Promotion to be Ready", func(p *ferryv1.Promotion) bool {
		ready := readyCondition(p)
		return settledOn(p, "prod", digest, ferryv1.PhasePromoted) && ready != nil && ready.Status == "True"
	})

	t.Run("stage registries hold the digest with its signature", func(t *testing.T) {
		for _, stage := range []string{"dev", "staging", "prod"} {
			requireDigest(t, stageImage(regs[stage], stage), digest)
			cosign.verify(t, stageImage(regs[stage], stage)+"@"+digest)
		}
	})

	t.Run("git declares the digest in every stage with provenance", func(t *testing.T) {
		log := fg.log(t)
		for _, stage := range []string{"dev", "staging"} {
			c := requireOneFerryCommit(t, log, stage, digest)
			if c.Author != "Ferry <ferry@ferry.dev>" || c.Subject != "Promote shop to "+stage {
				t.Errorf("%s commit %s by %q, subject %q", stage, shortSHA(c.SHA), c.Author, c.Subject)
			}
			if e := stageStatus(t, done, stage).History[0]; e.CommitSHA != c.SHA || e.Approver != "automatic" {
				t.Errorf("%s history[0] = %+v, want commit %s approved automatically", stage, e, c.SHA)
			}
		}
		pinned := requireOneFerryCommit(t, log, "prod", digest)
		if log[0].SHA != *merged.MergedCommitID || !slices.Contains(log[0].Parents, pinned.SHA) {
			t.Fatalf("main's tip %s (parents %v) is not the merge %s of Ferry's prod commit %s:\n%s",
				shortSHA(log[0].SHA), log[0].Parents, *merged.MergedCommitID, shortSHA(pinned.SHA), formatLog(log))
		}
		prodFile := gitFile(t, fg.gitea.GitURL(fg.owner, fg.repo), "main", "envs/prod/deployment.yaml")
		if !strings.Contains(prodFile, "image: "+stageImage(regs["prod"], "prod")+"@"+digest+" # the digest is pinned by Ferry") {
			t.Errorf("envs/prod/deployment.yaml on main does not pin %s (comment kept):\n%s", digest, prodFile)
		}
	})

	t.Run("status records the approver and the history", func(t *testing.T) {
		last := stageStatus(t, done, "prod").History[0]
		if last.Digest != digest || last.Outcome != ferryv1.OutcomePromoted || last.Approver != fg.rm.Name ||
			last.CommitSHA != *merged.MergedCommitID || len(last.Signers) == 0 {
			t.Errorf("prod history[0] = %+v, want %s promoted, approved by %s at %s, with signers", last, digest, fg.rm.Name, *merged.MergedCommitID)
		}
		if c := done.Status.Candidate; c == nil || c.Digest != digest || c.Tag != "1.0.0" || !c.Verified ||
			!slices.Contains(c.Signers, "release-key") {
			// api/v1alpha1: PublicKeySource.Name "identifies the signer in status and events".
			t.Errorf("candidate = %+v, want 1.0.0 verified, signed by release-key (the key's name in spec.verification)", c)
		}
		if ready := readyCondition(done); ready.Reason != "UpToDate" {
			t.Errorf("Ready = %+v, want reason UpToDate", ready)
		}
		reasons := h.eventReasons(done.Name)
		for _, want := range []string{"CandidateVerified", "PromotionStarted", "Copied", "Committed", "PullRequestOpened",
			"Approved", "Synced", "Healthy", "Promoted"} {
			if !slices.Contains(reasons, want) {
				t.Errorf("no %s event on the Promotion; events: %v", want, reasons)
			}
		}
	})

	t.Run("the cluster runs the digest in every stage", func(t *testing.T) {
		for _, stage := range []string{"dev", "staging", "prod"} {
			waitRolledOut(t, h.kube, "shop-"+stage, "shop", 2, stageImage(regs[stage], stage)+"@"+digest)
		}
	})
}

// TestUnsignedImageStopsAtDiscovery pushes an image nobody signed: Ferry names the failure in Ready and touches
// nothing — no copy, no commit, no workload. Signing the same digest afterwards lets it through, which shows
// the refusal came from the missing signature and nothing else.
func TestUnsignedImageStopsAtDiscovery(t *testing.T) {
	w := newGitWorld(t, deploymentOptions{}, "dev")
	h := w.h
	d := release(t, w.src, "1.0.0")
	digest := d.DigestStr()
	w.cosign.refuses(t, d.String())
	seed := w.git.Head(deployRepo, "main")
	p := w.promotion(2*time.Minute, "dev")
	// No grace for a late signature: this test is about the rejection (the grace has its own controllers tests).
	p.Spec.Verification.SignatureGracePeriod = &metav1.Duration{}
	h.create(p)

	rejected := h.waitPromotion("shop", "the unsigned candidate to be rejected", func(p *ferryv1.Promotion) bool {
		ready, c := readyCondition(p), p.Status.Candidate
		return c != nil && c.Digest == digest && ready != nil && ready.Status == "False" && ready.Reason == "VerificationFailed"
	})
	if c := rejected.Status.Candidate; c.Verified || c.Tag != "1.0.0" || c.Message == "" || len(c.Signers) != 0 {
		t.Errorf("candidate = %+v, want 1.0.0 unverified with the reason", c)
	}
	if ready := readyCondition(rejected); !strings.Contains(ready.Message, digest) {
		t.Errorf("Ready message %q does not name the digest", ready.Message)
	}
	if dev := stageStatus(t, rejected, "dev"); dev.InFlightDigest != "" || dev.Digest != "" || len(dev.History) != 0 ||
		(dev.Phase != ferryv1.PhaseIdle && dev.Phase != "") {
		t.Errorf("dev = %+v, want untouched", *dev)
	}
	if head := w.git.Head(deployRepo, "main"); head != seed {
		t.Errorf("main moved from %s to %s:\n%s", shortSHA(seed), shortSHA(head), formatLog(w.git.Log(deployRepo)))
	}
	if branches := w.git.Branches(deployRepo); len(branches) != 1 {
		t.Errorf("branches = %v, want only main", branches)
	}
	requireEmptyRegistry(t, w.regs["dev"])
	if deps, err := h.kube.AppsV1().Deployments("shop-dev").List(t.Context(), metav1.ListOptions{}); err != nil || len(deps.Items) != 0 {
		t.Errorf("Deployments in shop-dev = %v (err %v), want none", deps, err)
	}
	if reasons := h.eventReasons("shop"); !slices.Contains(reasons, "VerificationFailed") || slices.Contains(reasons, "PromotionStarted") {
		t.Errorf("events = %v, want VerificationFailed and no promotion", reasons)
	}

	// CI signs late; the registry's notification brings Ferry back to the same digest.
	w.cosign.sign(t, d)
	h.notify(w.src.Host + "/" + sourceRepo)
	h.waitPromotion("shop", "the digest, signed now, to reach dev", func(p *ferryv1.Promotion) bool {
		return settledOn(p, "dev", digest, ferryv1.PhasePromoted)
	})
	requireOneFerryCommit(t, w.git.Log(deployRepo), "dev", digest)
	waitRolledOut(t, h.kube, "shop-dev", "shop", 2, stageImage(w.regs["dev"], "dev")+"@"+digest)
}
