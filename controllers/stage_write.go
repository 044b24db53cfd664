package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/gitops"
	"github.com/ferrycd/ferry/internal/scm"
	"github.com/ferrycd/ferry/internal/signature"
)

// writeStage pins the in-flight digest in the stage's Git path: a direct commit for automatic stages and for
// rollbacks (on-call must not wait for a review), or a pull request for stages approved by merge. The engine
// recognises its own earlier commit, so running this step again after a crash never commits twice.
func (r *PromotionReconciler) writeStage(ctx context.Context, s *scope, i int) (bool, error) {
	st := s.stage(i)
	stage := &s.p.Spec.Stages[i]
	rollback := st.Phase == ferryv1.PhaseRollingBack
	if rollback {
		if refused, err := r.checkRollbackTarget(ctx, s, i); err != nil || refused {
			return refused, err
		}
	}
	req := s.pinRequest(i, rollback)
	if stage.Approval.Mode == ferryv1.ApprovalPullRequest && !rollback {
		return r.openPullRequest(ctx, s, i, req)
	}
	res, err := r.Engines.Git.Pin(ctx, req)
	if err != nil {
		return false, gitError(i, err)
	}
	r.warnDistrusted(s, i, res)
	st.LastCommit = res.CommitSHA
	r.event(s.p, corev1.EventTypeNormal, ReasonCommitted, "stage %s: pinned %s in %s at %s", st.Name, st.InFlightDigest, stage.Path, shortSHA(res.CommitSHA))
	s.setPhase(i, ferryv1.PhaseSyncing, "Pinned %s at commit %s; syncing.", st.InFlightDigest, shortSHA(res.CommitSHA))
	return true, nil
}

// pinRequest describes the pin of the in-flight digest of stage i.
func (s *scope) pinRequest(i int, rollback bool) gitops.Request {
	st := s.stage(i)
	stage := &s.p.Spec.Stages[i]
	req := gitops.Request{
		Remote: s.in.git, Path: stage.Path, Digest: st.InFlightDigest,
		Image: stage.Registry.Repository, Promotion: s.promotionID(), Stage: stage.Name,
		Source: st.InFlightSource, Rollback: rollback, Author: s.in.author,
		MessageTemplate: s.p.Spec.Git.CommitMessageTemplate, Signing: s.in.sign,
	}
	if rollback && st.Hold != nil {
		req.RollbackBy = st.Hold.RequestedBy
	}
	if rollback && st.Hold != nil && st.Hold.Reason == ReasonAnalysisFailed {
		req.RollbackReason = rollbackReasonOf(st)
	}
	if stage.Manifest.Image != "" && stage.Manifest.Image != stage.Registry.Repository {
		req.Image, req.NewImage = stage.Manifest.Image, stage.Registry.Repository
	}
	switch stage.Manifest.Format {
	case ferryv1.ManifestPlain:
		req.Format = gitops.FormatManifests
	case ferryv1.ManifestHelmValues:
		req.Format = gitops.FormatHelm
		req.Path = path.Join(stage.Path, stage.Manifest.Helm.File)
		req.HelmKey = stage.Manifest.Helm.KeyPath
	default:
		req.Format = gitops.FormatKustomize
	}
	return req
}

// rollbackReasonOf says, for the rollback commit's trailer, which digest failed its analysis and why: the
// failing metric, its values and the verdict.
func rollbackReasonOf(st *ferryv1.StageStatus) string {
	for _, h := range st.History {
		if h.Outcome == ferryv1.OutcomeRolledBack {
			return h.Digest + " " + h.Reason
		}
	}
	return ""
}

// gitError sorts Git failures: what only a change of spec or credentials can fix stalls; the rest is retried.
func gitError(i int, err error) error {
	field := fmt.Sprintf("spec.stages[%d].path", i)
	switch {
	case errors.Is(err, gitops.ErrNotFound):
		return stalling(ReasonInvalidSpec, field, "%v", err)
	case errors.Is(err, gitops.ErrAuth):
		return stalling(ReasonInvalidReference, "spec.git.secretRef", "%v", err)
	case errors.Is(err, gitops.ErrRejected):
		return stalling("PushRejected", "spec.git.branch", "%v", err)
	}
	return retrying(ReasonGitUnavailable, fmt.Errorf("reading or writing Git: %w", err))
}

// openPullRequest pushes the pin to a branch named after (promotion, stage, digest) and opens the pull request
// a release manager merges to approve; both are found again rather than duplicated after a crash.
func (r *PromotionReconciler) openPullRequest(ctx context.Context, s *scope, i int, req gitops.Request) (bool, error) {
	st := s.stage(i)
	provider, repo, err := r.forge(s, i)
	if err != nil {
		return false, err
	}
	branch, err := pullRequestBranch(s.p, st.Name, st.InFlightDigest)
	if err != nil {
		return false, stalling(ReasonInvalidSpec, "metadata.name", "%v", err)
	}
	if err := r.ensureFinalizer(ctx, s.p); err != nil {
		return false, err
	}
	refused, err := r.ensureEvidence(ctx, s, i)
	if err != nil {
		return false, err
	}
	if refused != nil {
		r.failDigest(s, i, verificationFailed(refused))
		return true, nil
	}
	req.BaseBranch, req.Remote.Branch = s.in.git.Branch, branch
	res, err := r.Engines.Git.Pin(ctx, req)
	if err != nil {
		return false, gitError(i, err)
	}
	r.warnDistrusted(s, i, res)
	if err := r.setPending(ctx, s, i, provider, repo, res.CommitSHA); err != nil {
		return false, err
	}
	pr := s.p.Spec.Stages[i].Approval.PullRequest
	opened, err := provider.EnsurePullRequest(ctx, scm.PullRequestSpec{
		Repo: repo, Base: s.in.git.Branch, Head: branch, TitleTemplate: pr.TitleTemplate,
		Labels: pr.Labels, Reviewers: pr.Reviewers, Change: s.change(i, res.Files),
	})
	if err != nil {
		return false, forgeError(i, err)
	}
	st.PullRequest = &ferryv1.PullRequestStatus{Number: int64(opened.Number), URL: opened.URL, Branch: branch,
		Digest: st.InFlightDigest, OpenedAt: &s.now, HeadSHA: res.CommitSHA}
	// Reported again on the next poll if the forge failed now: the hash of what was shown stays unset.
	r.reportQuietly(ctx, s, i, provider, repo, res.CommitSHA, s.evidenceStatus(i, opened.URL))
	r.event(s.p, corev1.EventTypeNormal, ReasonPullRequest, "stage %s: pull request %s awaits approval for %s", st.Name, opened.URL, st.InFlightDigest)
	s.setPhase(i, ferryv1.PhaseAwaitingApproval, "Waiting for pull request %s to be merged (approve) or closed (reject).", opened.URL)
	return true, nil
}

// awaitApproval follows the pull request: merged approves the digest, closed rejects it, and a newer digest
// offered meanwhile supersedes it (the pull request is closed with a comment). While it is open, Ferry's view —
// the evidence comment and the commit status of the head — is kept up to date on it.
func (r *PromotionReconciler) awaitApproval(ctx context.Context, s *scope, i int) (bool, error) {
	st := s.stage(i)
	provider, repo, err := r.forge(s, i)
	if err != nil {
		return false, err
	}
	pr, err := provider.GetPullRequest(ctx, repo, int(st.PullRequest.Number))
	if err != nil {
		return false, forgeError(i, err)
	}
	if pr.Approved() || pr.Rejected() {
		r.metrics().ObservePullRequestWait(s.metricsStage(i), s.since(st.PullRequest.OpenedAt))
	}
	switch {
	case pr.Approved() && !mergedWhatFerryPushed(st.PullRequest, pr):
		r.event(s.p, corev1.EventTypeWarning, ReasonRejected, "stage %s: %s was merged with head %s, not the commit %s Ferry pushed; not synced",
			st.Name, pr.URL, shortSHA(pr.HeadSHA), shortSHA(st.PullRequest.HeadSHA))
		r.failDigest(s, i, fmt.Sprintf("pull request %s was merged with head %s, but Ferry pushed %s: someone changed the branch after Ferry, so the merge is not synced; a person must check the branch",
			pr.URL, shortSHA(pr.HeadSHA), shortSHA(st.PullRequest.HeadSHA)))
		return true, nil
	case pr.Approved():
		return r.acceptMerge(ctx, s, i, pr)
	case pr.Rejected():
		r.event(s.p, corev1.EventTypeWarning, ReasonRejected, "stage %s: %s was closed without merging; %s is rejected", st.Name, pr.URL, st.InFlightDigest)
		r.finishDigest(s, i, ferryv1.OutcomeRejected, fmt.Sprintf("pull request %s closed without merging", pr.URL))
		return true, nil
	}
	if newer, _ := s.door(i); newer != "" && newer != st.InFlightDigest {
		return r.supersede(ctx, s, i, provider, repo, newer)
	}
	if moved, err := r.checkOpen(ctx, s, i, provider, repo, pr); moved || err != nil {
		return moved, err
	}
	s.waitAtMost(r.approvalPoll())
	return false, nil
}

// Reasons of the events that say Ferry did not trust what it found in Git.
const (
	// ReasonUntrustedCommit: a commit carries Ferry's trailers for the pin but is not Ferry's (see
	// gitops.Result.Distrusted); it was not taken for Ferry's pin.
	ReasonUntrustedCommit = "UntrustedCommit"
	// ReasonMergeNotPinned: a merged pull request's merge result does not pin the digest Ferry proposed.
	ReasonMergeNotPinned = "MergeNotPinned"
)

// acceptMerge syncs a merged pull request only when the merge result on the base branch — the commit the forge
// says the merge made, else the base's tip — pins the in-flight digest in the stage's files as Ferry wrote it.
// An unchanged head is not enough: a conflict resolved in favour of someone else's pin, or a merge commit chosen
// by hand, would otherwise sync a digest Ferry never verified. Checked here, the commit read is the commit synced.
func (r *PromotionReconciler) acceptMerge(ctx context.Context, s *scope, i int, pr scm.PullRequest) (bool, error) {
	st := s.stage(i)
	check, err := r.Engines.Git.CheckPin(ctx, s.pinRequest(i, false), pr.MergeCommitSHA)
	if errors.Is(err, gitops.ErrNotFound) {
		// The forge may report a merge before its Git serves it; retrying never syncs anything unchecked.
		return false, retrying(ReasonGitUnavailable, fmt.Errorf("reading the merge of %s: %w", pr.URL, err))
	}
	if err != nil {
		return false, gitError(i, err)
	}
	if !check.Pinned {
		why := mergeNotPinned(st.InFlightDigest, pr, check)
		r.event(s.p, corev1.EventTypeWarning, ReasonMergeNotPinned, "stage %s: %s", st.Name, why)
		r.failDigest(s, i, why)
		return true, nil
	}
	st.LastCommit, st.PullRequest.Approver = check.CommitSHA, pr.MergedBy
	r.event(s.p, corev1.EventTypeNormal, ReasonApproved, "stage %s: %s merged %s (%s)", st.Name, pr.MergedBy, pr.URL, st.InFlightDigest)
	s.setPhase(i, ferryv1.PhaseSyncing, "Approved by %s (merge %s); syncing.", pr.MergedBy, shortSHA(check.CommitSHA))
	return true, nil
}

// mergeNotPinned says what the merge result holds instead of digest, naming the pull request and the files.
func mergeNotPinned(digest string, pr scm.PullRequest, check gitops.PinCheck) string {
	found := check.Problem
	if found == "" {
		held := check.Digest
		if held == "" {
			held = "a tag, no digest"
		}
		found = fmt.Sprintf("found %s in %s", held, strings.Join(check.Files, ", "))
	}
	return fmt.Sprintf("pull request %s was merged, but its merge result %s does not pin %s (%s); not synced: someone changed what was approved, a person must check the merge",
		pr.URL, shortSHA(check.CommitSHA), digest, found)
}

// warnDistrusted tells people that a commit posing as Ferry's pin was passed over: someone forged trailers, or
// the signing key changed since Ferry made it.
func (r *PromotionReconciler) warnDistrusted(s *scope, i int, res gitops.Result) {
	if res.Distrusted != "" {
		r.event(s.p, corev1.EventTypeWarning, ReasonUntrustedCommit, "stage %s: %s", s.stage(i).Name, res.Distrusted)
	}
}

// supersede closes the open pull request of stage i because a newer digest is waiting.
func (r *PromotionReconciler) supersede(ctx context.Context, s *scope, i int, provider scm.Provider, repo, newer string) (bool, error) {
	st := s.stage(i)
	comment := fmt.Sprintf("Superseded by %s, which Ferry promotes next.", newer)
	r.reportQuietly(ctx, s, i, provider, repo, st.PullRequest.HeadSHA, failureStatus(st.Name, "superseded by "+newer, st.PullRequest.URL))
	if err := provider.ClosePullRequest(ctx, repo, int(st.PullRequest.Number), comment); err != nil {
		if errors.Is(err, scm.ErrMerged) {
			return false, nil // merged meanwhile: the next reconcile sees the approval
		}
		return false, forgeError(i, err)
	}
	r.event(s.p, corev1.EventTypeNormal, ReasonSuperseded, "stage %s: closed %s; %s supersedes %s", st.Name, st.PullRequest.URL, newer, st.InFlightDigest)
	r.finishDigest(s, i, ferryv1.OutcomeSuperseded, comment)
	return true, nil
}

// forge opens the pull-request API of stage i and names the repository on it.
func (r *PromotionReconciler) forge(s *scope, i int) (scm.Provider, string, error) {
	cfg := s.in.pullRequests[i]
	field := fmt.Sprintf("spec.stages[%d].approval.pullRequest", i)
	if cfg == nil {
		return nil, "", stalling(ReasonInvalidSpec, field, "is required for pull-request approval")
	}
	newSCM := r.Engines.NewSCM
	if newSCM == nil {
		newSCM = scm.New
	}
	provider, err := newSCM(*cfg)
	if err != nil {
		return nil, "", stalling(ReasonInvalidSpec, field, "%v", err)
	}
	repo, err := repoPath(s.p.Spec.Git.URL)
	if err != nil {
		return nil, "", stalling(ReasonInvalidSpec, "spec.git.url", "%v", err)
	}
	return provider, repo, nil
}

// forgeError stalls on what only a change can fix (bad input, refused credentials) and retries the rest.
func forgeError(i int, err error) error {
	var input *scm.InputError
	if errors.As(err, &input) {
		return stalling(ReasonInvalidSpec, fmt.Sprintf("spec.stages[%d].approval.pullRequest", i), "%v", err)
	}
	if errors.Is(err, scm.ErrUnauthorized) {
		return stalling(ReasonInvalidReference, fmt.Sprintf("spec.stages[%d].approval.pullRequest.tokenSecretRef", i), "%v", err)
	}
	return retrying(ReasonForgeUnavailable, fmt.Errorf("talking to the forge: %w", err))
}

// repoPath is the forge's name for the repository: the URL path without ".git" ("owner/name").
func repoPath(gitURL string) (string, error) {
	p := gitURL
	if u, err := url.Parse(gitURL); err == nil && u.Host != "" {
		p = u.Path
	} else if at := strings.Index(gitURL, ":"); at >= 0 { // scp-like git@host:owner/name.git
		p = gitURL[at+1:]
	}
	p = strings.TrimSuffix(strings.Trim(p, "/"), ".git")
	if !strings.Contains(p, "/") {
		return "", fmt.Errorf("%q does not name an owner/repository", gitURL)
	}
	return p, nil
}

func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// pullRequestBranch names the head branch of the pull request that promotes digest into stage. The namespace is
// part of it: two tenants' Promotions of the same name must never share a pull request. Namespaces hold no dot,
// so "<namespace>.<name>" reads back one way only; a long one is cut with a hash, as owner labels are.
func pullRequestBranch(p *ferryv1.Promotion, stage, digest string) (string, error) {
	return scm.BranchName(ownerLabel(p.Namespace+"."+p.Name), stage, digest)
}

// ReasonRollbackRefused: the digest a rollback would return to does not pass verification any more.
const ReasonRollbackRefused = "RollbackRefused"

// checkRollbackTarget verifies the digest a rollback returns to, in the stage's registry, with the policy as it is
// now: a digest signed by a key revoked since it ran must not go back to Git and the cluster. A target that fails
// ends the rollback as Failed — nothing is committed — and the stage waits for a person. It reports whether it
// refused the target.
func (r *PromotionReconciler) checkRollbackTarget(ctx context.Context, s *scope, i int) (bool, error) {
	st := s.stage(i)
	ref := s.p.Spec.Stages[i].Registry.Repository + "@" + st.InFlightDigest
	_, err := verifyAt(ctx, s.in.stages[i], ref, s.in.policy)
	if err == nil {
		return false, nil
	}
	if signature.KindOf(err) == "" {
		return false, retrying(ReasonRegistryUnavailable, fmt.Errorf("verifying the rollback target %s: %w", ref, err))
	}
	reason := fmt.Sprintf("rollback to %s refused: it does not verify with the current policy (%v); nothing was committed, a person must choose the digest", st.InFlightDigest, err)
	r.event(s.p, corev1.EventTypeWarning, ReasonRollbackRefused, "stage %s: %s", st.Name, reason)
	st.Hold = nil
	r.finishDigest(s, i, ferryv1.OutcomeFailed, reason)
	return true, nil
}

// mergedWhatFerryPushed reports whether a merged pull request's head is the commit Ferry pushed to its branch. A
// pull request opened before Ferry recorded its head (an older version) is taken as it is.
func mergedWhatFerryPushed(recorded *ferryv1.PullRequestStatus, pr scm.PullRequest) bool {
	return recorded.HeadSHA == "" || pr.HeadSHA == "" || pr.HeadSHA == recorded.HeadSHA
}
