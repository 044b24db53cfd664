package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/controllers"
	"github.com/ferrycd/ferry/internal/gitserver"
)

// TestRollbackByAnnotation: after two releases reached prod, on-call annotates the Promotion with
// ferry.dev/rollback: prod. Ferry commits the previous digest to Git with a Ferry-Rollback trailer, the prod
// Deployment rolls back to it, the annotation is removed, and status shows the stage RolledBack and held.
func TestRollbackByAnnotation(t *testing.T) {
	r := twoReleasesInProd(t)
	h := r.w.h

	// On-call asks, as `kubectl annotate` would; the field manager names who asked.
	patch := []byte(`{"metadata":{"annotations":{"` + ferryv1.RollbackAnnotation + `":"prod"}}}`)
	target := &ferryv1.Promotion{}
	target.Name, target.Namespace = "shop", promotionNamespace
	if err := h.c.Patch(t.Context(), target, client.RawPatch(types.MergePatchType, patch), client.FieldOwner("oncall-alice")); err != nil {
		t.Fatalf("annotating the Promotion: %v", err)
	}
	// The e2e world runs without the audit webhook (internal/audit tests it), so the requester is the marked field manager.
	r.requireRolledBack(t, "oncall-alice"+controllers.UnauthenticatedMark)
}

// TestRollbackWithCLI: the same rollback, asked for as on-call does, with the built ferry CLI and the cluster's
// kubeconfig: `ferry rollback shop --stage prod` sets the annotation as the authenticated user, waits for the
// real controller and reports the stage rolled back; the rollback commit is in Git and prod is RolledBack.
func TestRollbackWithCLI(t *testing.T) {
	go cliOnce.Do(buildCLI) // while the world starts and the releases are promoted; h.ferry waits for it
	r := twoReleasesInProd(t)
	h := r.w.h

	out, err := h.ferry("rollback", "shop", "--stage", "prod", "--timeout", flowTimeout.String())
	if err != nil {
		t.Fatalf("ferry rollback: %v\n%s", err, out)
	}
	if want := "Stage prod of promotion shop rolled back to " + r.first + "."; !strings.Contains(out, want) {
		t.Errorf("ferry rollback printed:\n%s\nwant %q", out, want)
	}
	// The CLI names its field manager after the user the API server authenticated from the kubeconfig.
	review, err := h.kube.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("asking the API server who the kubeconfig's user is: %v", err)
	}
	r.requireRolledBack(t, "ferry-rollback:"+review.Status.UserInfo.Username+controllers.UnauthenticatedMark)
}

// rollbackScenario is a Promotion through dev and prod whose two releases both reached prod.
type rollbackScenario struct {
	w             *gitWorld
	prodImage     string
	first, second string // the digests of 1.0.0 and 1.1.0
}

// twoReleasesInProd promotes 1.0.0 and then 1.1.0 through dev and prod, and waits for prod's Deployment to run
// 1.1.0.
func twoReleasesInProd(t *testing.T) *rollbackScenario {
	t.Helper()
	w := newGitWorld(t, deploymentOptions{}, "dev", "prod")
	h := w.h
	r := &rollbackScenario{w: w, prodImage: stageImage(w.regs["prod"], "prod")}
	r.first = w.signedRelease(t, "1.0.0")
	h.create(w.promotion(2*time.Minute, "dev", "prod"))
	h.waitPromotion("shop", "1.0.0 to reach prod", func(p *ferryv1.Promotion) bool {
		return settledOn(p, "prod", r.first, ferryv1.PhasePromoted)
	})
	r.second = w.signedRelease(t, "1.1.0")
	h.waitPromotion("shop", "1.1.0 to reach prod", func(p *ferryv1.Promotion) bool {
		return settledOn(p, "prod", r.second, ferryv1.PhasePromoted)
	})
	waitRolledOut(t, h.kube, "shop-prod", "shop", 2, r.prodImage+"@"+r.second)
	return r
}

// requireRolledBack waits for prod to be rolled back to 1.0.0 on the request of requestedBy, with the
// annotation removed, and checks the hold, the history, the rollback commit in Git, the Deployment and the
// events.
func (r *rollbackScenario) requireRolledBack(t *testing.T, requestedBy string) {
	t.Helper()
	w, h, first, second := r.w, r.w.h, r.first, r.second
	done := h.waitPromotion("shop", "prod to be rolled back to 1.0.0 and the annotation removed", func(p *ferryv1.Promotion) bool {
		_, annotated := p.Annotations[ferryv1.RollbackAnnotation]
		return !annotated && settledOn(p, "prod", first, ferryv1.PhaseRolledBack)
	})
	prod := stageStatus(t, done, "prod")
	if hold := prod.Hold; hold == nil || hold.Digest != first || hold.Reason != "RollbackRequested" || hold.RequestedBy != requestedBy {
		t.Errorf("prod hold = %+v, want on %s, RollbackRequested by %s", hold, first, requestedBy)
	}
	if e := historyOf(prod, second); e == nil || e.Outcome != ferryv1.OutcomeRolledBack || !strings.Contains(e.Reason, requestedBy) {
		t.Errorf("prod history of %s = %+v, want RolledBack on request of %s", second, e, requestedBy)
	}
	if dev := stageStatus(t, done, "dev"); dev.Digest != second {
		t.Errorf("dev runs %s, want %s: a rollback of prod leaves dev alone", dev.Digest, second)
	}

	log := w.git.Log(deployRepo)
	back := requireRollbackCommit(t, log, "prod", first)
	if back.Trailers["Ferry-Previous-Digest"] != second || back.Trailers["Ferry-Rollback"] != requestedBy {
		t.Errorf("rollback commit trailers %v, want Ferry-Previous-Digest %s and Ferry-Rollback naming %s", back.Trailers, second, requestedBy)
	}
	if prod.LastCommit != back.SHA {
		t.Errorf("prod's last commit %s, want the rollback commit %s", shortSHA(prod.LastCommit), shortSHA(back.SHA))
	}
	if file, _ := w.git.File(deployRepo, "main", "envs/prod/deployment.yaml"); !strings.Contains(file, r.prodImage+"@"+first) {
		t.Errorf("envs/prod/deployment.yaml does not pin %s after the rollback:\n%s", first, file)
	}
	waitRolledOut(t, h.kube, "shop-prod", "shop", 2, r.prodImage+"@"+first)
	if reasons := h.eventReasons("shop"); !slices.Contains(reasons, "RollingBack") || !slices.Contains(reasons, "RolledBack") {
		t.Errorf("events = %v, want RollingBack and RolledBack", reasons)
	}
}

// TestUnhealthyReleaseRollsBack: the second release can never become available (each pod claims a host port
// on the only node, and the rollout surges one new pod next to the old one), so the Deployment's progress
// deadline fails it. Ferry sees Degraded, commits the previous digest with a rollback trailer, and the stage is
// healthy again on it, held there.
func TestUnhealthyReleaseRollsBack(t *testing.T) {
	w := newGitWorld(t, deploymentOptions{replicas: 1, hostPort: 18080}, "prod")
	h := w.h
	image := stageImage(w.regs["prod"], "prod")

	good := w.signedRelease(t, "1.0.0")
	h.create(w.promotion(45*time.Second, "prod"))
	h.waitPromotion("shop", "1.0.0 to run in prod", func(p *ferryv1.Promotion) bool {
		return settledOn(p, "prod", good, ferryv1.PhasePromoted)
	})
	waitRolledOut(t, h.kube, "shop-prod", "shop", 1, image+"@"+good)

	bad := w.signedRelease(t, "1.1.0")
	done := h.waitPromotion("shop", "prod to roll back from 1.1.0 to 1.0.0", func(p *ferryv1.Promotion) bool {
		return settledOn(p, "prod", good, ferryv1.PhaseRolledBack)
	})
	prod := stageStatus(t, done, "prod")
	if hold := prod.Hold; hold == nil || hold.Digest != good || hold.Reason != "HealthFailed" || hold.RequestedBy != "ferry" {
		t.Errorf("prod hold = %+v, want on %s, HealthFailed, by ferry", hold, good)
	}
	if e := historyOf(prod, bad); e == nil || e.Outcome != ferryv1.OutcomeRolledBack || !strings.Contains(e.Reason, "health failed") {
		t.Errorf("prod history of %s = %+v, want RolledBack because health failed", bad, e)
	}

	log := w.git.Log(deployRepo)
	requireOneFerryCommit(t, log, "prod", bad)
	back := requireRollbackCommit(t, log, "prod", good)
	if log[0].SHA != back.SHA {
		t.Errorf("main's tip is %s, want the rollback commit %s:\n%s", shortSHA(log[0].SHA), shortSHA(back.SHA), formatLog(log))
	}
	waitRolledOut(t, h.kube, "shop-prod", "shop", 1, image+"@"+good)
	if reasons := h.eventReasons("shop"); !slices.Contains(reasons, "HealthFailed") || !slices.Contains(reasons, "RolledBack") {
		t.Errorf("events = %v, want HealthFailed and RolledBack", reasons)
	}
}

// requireRollbackCommit fails unless exactly one commit rolls stage back to digest, and returns it.
func requireRollbackCommit(t *testing.T, log []gitserver.LogEntry, stage, digest string) gitserver.LogEntry {
	t.Helper()
	var found []gitserver.LogEntry
	for _, e := range ferryCommits(log, stage, digest) {
		if e.Trailers["Ferry-Rollback"] != "" {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d commits roll %s back to %s, want 1:\n%s", len(found), stage, digest, formatLog(log))
	}
	if !strings.HasSuffix(found[0].Subject, "(rollback)") {
		t.Errorf("rollback commit subject %q, want the template's (rollback)", found[0].Subject)
	}
	return found[0]
}

// historyOf is the newest history entry of digest in a stage.
func historyOf(st *ferryv1.StageStatus, digest string) *ferryv1.StageHistoryEntry {
	for i := range st.History {
		if st.History[i].Digest == digest {
			return &st.History[i]
		}
	}
	return nil
}
