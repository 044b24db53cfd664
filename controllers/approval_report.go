package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/ferrycd/ferry/internal/scm"
	"github.com/ferrycd/ferry/internal/signature"
)

// ensureEvidence makes sure stage i holds evidence for its in-flight digest before a pull request shows it. The
// copy records it; a stage that reached Writing or AwaitingApproval without it (a Ferry from before evidence
// was recorded) verifies the digest in the stage registry again now (see verifyInStage).
func (r *PromotionReconciler) ensureEvidence(ctx context.Context, s *scope, i int) (refused error, err error) {
	st := s.stage(i)
	if ev := st.Evidence; ev != nil && ev.Digest == st.InFlightDigest {
		return nil, nil
	}
	return verifyInStage(ctx, s, i, s.p.Spec.Stages[i].Registry.Repository+"@"+st.InFlightDigest)
}

// verifyInStage verifies ref, stage i's in-flight digest in the stage registry, and keeps what it found as the
// stage's evidence. It reports a digest that does not verify with the error that says why (see
// verificationFailed); a registry that could not be read is a retrying error.
func verifyInStage(ctx context.Context, s *scope, i int, ref string) (refused error, err error) {
	res, err := verifyAt(ctx, s.in.stages[i], ref, s.in.policy)
	if err != nil && signature.KindOf(err) == "" {
		return nil, retrying(ReasonRegistryUnavailable, fmt.Errorf("verifying %s: %w", ref, err))
	}
	if err != nil {
		return err, nil
	}
	s.recordEvidence(i, s.stage(i).InFlightDigest, ref, res)
	return nil, nil
}

// verificationFailed is the reason a digest fails when it does not verify in the stage registry.
func verificationFailed(why error) string {
	return fmt.Sprintf("verification failed in the stage registry: %v", why)
}

// reportOnPullRequest shows Ferry's view on stage i's pull request: its one evidence comment and status on
// commit sha. What was last shown is remembered as a hash in the pull request's status, so an unchanged report
// is not sent again; after a crash the same report is sent again, which changes nothing on the forge.
func (r *PromotionReconciler) reportOnPullRequest(ctx context.Context, s *scope, i int, provider scm.Provider, repo, sha string,
	status scm.CommitStatus) error {
	rep, ok := provider.(scm.Reporter)
	pr := s.stage(i).PullRequest
	if !ok || pr == nil {
		return nil // a Provider that only follows pull requests (a test double) has nothing to report with
	}
	comment := scm.RenderComment(s.change(i, nil), status)
	sum := sha256.Sum256([]byte(comment + "\x00" + sha + "\x00" + string(status.State) + "\x00" + status.Description + "\x00" + status.TargetURL))
	hash := hex.EncodeToString(sum[:16])
	if pr.ReportedHash == hash {
		return nil
	}
	if err := rep.UpsertComment(ctx, repo, int(pr.Number), scm.EvidenceMarker, comment); err != nil {
		return forgeError(i, err)
	}
	if sha != "" {
		if err := rep.SetCommitStatus(ctx, repo, sha, status); err != nil {
			return forgeError(i, err)
		}
	}
	pr.ReportedHash = hash
	return nil
}

// setPending marks commit sha of stage i as still being checked by Ferry, before the pull request is opened.
func (r *PromotionReconciler) setPending(ctx context.Context, s *scope, i int, provider scm.Provider, repo, sha string) error {
	rep, ok := provider.(scm.Reporter)
	if !ok {
		return nil
	}
	err := rep.SetCommitStatus(ctx, repo, sha, scm.CommitStatus{State: scm.CommitPending, Context: statusContext(s.stage(i).Name),
		Description: "Ferry is checking " + s.stage(i).InFlightDigest + " and opening the pull request"})
	if err != nil {
		return forgeError(i, err)
	}
	return nil
}

// failureStatus is the commit status saying Ferry will not sync this pull request, and why.
func failureStatus(stage, why, url string) scm.CommitStatus {
	return scm.CommitStatus{State: scm.CommitFailure, Context: statusContext(stage), Description: why, TargetURL: url}
}

// reportQuietly reports where a failure to do so must not stop what Ferry does next (closing a superseded pull
// request, failing a digest): the forge is told on a best-effort basis and a failure is logged.
func (r *PromotionReconciler) reportQuietly(ctx context.Context, s *scope, i int, provider scm.Provider, repo, sha string, status scm.CommitStatus) {
	if err := r.reportOnPullRequest(ctx, s, i, provider, repo, sha, status); err != nil {
		ctrl.LoggerFrom(ctx).Info("could not report on the pull request", "stage", s.stage(i).Name, "error", err.Error())
	}
}

// checkOpen runs while stage i's pull request is open: evidence missing for the digest (a pull request opened
// by an older Ferry) is gathered by verifying again, a digest that no longer verifies is refused, and Ferry's view
// is shown — success on the commit Ferry pushed, failure on a head someone else pushed (its merge will not be
// synced). It reports whether the stage moved.
func (r *PromotionReconciler) checkOpen(ctx context.Context, s *scope, i int, provider scm.Provider, repo string, pr scm.PullRequest) (bool, error) {
	st := s.stage(i)
	refused, err := r.ensureEvidence(ctx, s, i)
	if err != nil {
		return false, err
	}
	if refused != nil {
		return r.refuseOpen(ctx, s, i, provider, repo, pr, refused)
	}
	if mergedWhatFerryPushed(st.PullRequest, pr) {
		return false, r.reportOnPullRequest(ctx, s, i, provider, repo, st.PullRequest.HeadSHA, s.evidenceStatus(i, pr.URL))
	}
	why := fmt.Sprintf("head %s is not the commit %s Ferry pushed: a merge will not be synced", shortSHA(pr.HeadSHA), shortSHA(st.PullRequest.HeadSHA))
	return false, r.reportOnPullRequest(ctx, s, i, provider, repo, pr.HeadSHA, failureStatus(st.Name, why, pr.URL))
}

// refuseOpen marks an open pull request whose digest no longer verifies in the stage registry failed, closes it
// and fails the digest.
func (r *PromotionReconciler) refuseOpen(ctx context.Context, s *scope, i int, provider scm.Provider, repo string, pr scm.PullRequest,
	why error) (bool, error) {
	st := s.stage(i)
	reason := verificationFailed(why)
	r.reportQuietly(ctx, s, i, provider, repo, st.PullRequest.HeadSHA, failureStatus(st.Name, reason, pr.URL))
	if err := provider.ClosePullRequest(ctx, repo, pr.Number, "Ferry closed this pull request: "+reason); err != nil {
		if errors.Is(err, scm.ErrMerged) {
			return false, nil // merged meanwhile: the next reconcile sees the approval and checks the merge
		}
		return false, forgeError(i, err)
	}
	r.failDigest(s, i, reason)
	return true, nil
}
