package controllers

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// A just-pushed digest often has no signature yet: CI pushes the image, then signs it. Rejecting it at once would
// flip Ready to False and raise a Warning for what is only lag, so a digest with no signature at all is waited
// for, from when Ferry first saw it, for spec.verification.signatureGracePeriod. A signature that is there but
// does not verify is never lag: it is rejected at once.

// defaultSignatureGrace applies when the spec carries no grace period (the CRD defaults it to the same).
const defaultSignatureGrace = 2 * time.Minute

// signatureRecheck is how often the source is asked again while a signature is waited for; a registry
// notification of the signature's push brings the check sooner.
const signatureRecheck = 5 * time.Second

// awaitingSignature says whether c is a candidate with no signature yet, within its grace period.
func awaitingSignature(c *ferryv1.CandidateStatus) bool {
	return c != nil && !c.Verified && c.SignatureDeadline != nil
}

// signatureDeadline is when c, found with no signature, is rejected: its grace period after Ferry first saw it.
func (s *scope) signatureDeadline(c *ferryv1.CandidateStatus) time.Time {
	grace := defaultSignatureGrace
	if g := s.p.Spec.Verification.SignatureGracePeriod; g != nil {
		grace = g.Duration
	}
	seen := s.now.Time
	if c.DiscoveredAt != nil {
		seen = c.DiscoveredAt.Time
	}
	return seen.Add(grace)
}

// awaitSignature records that the candidate waits for a signature until deadline, says so once per digest with a
// Normal event, and asks to look again shortly. The candidate is not offered to any stage meanwhile, and Ready is
// left to the stages: nothing has failed yet.
func (r *PromotionReconciler) awaitSignature(s *scope, prev *ferryv1.CandidateStatus, deadline time.Time) {
	c := s.p.Status.Candidate
	at := metav1.NewTime(deadline)
	c.SignatureDeadline = &at
	c.Message = "No signature yet; waiting for one until " + deadline.UTC().Format(time.RFC3339) +
		" (spec.verification.signatureGracePeriod), then it is rejected."
	if prev == nil || prev.Digest != c.Digest || prev.SignatureDeadline == nil {
		r.event(s.p, corev1.EventTypeNormal, ReasonAwaitingSignature, "%s%s has no signature yet: waiting for one until %s before rejecting it",
			c.Digest, tagSuffix(c.Tag), deadline.UTC().Format(time.RFC3339))
	}
	s.waitAtMost(recheckSignatureIn(s.now.Time, deadline))
}

// recheckSignatureIn is how soon to ask the source again while a signature is waited for: at the recheck
// interval, and no later than the deadline.
func recheckSignatureIn(now, deadline time.Time) time.Duration {
	return max(min(signatureRecheck, deadline.Sub(now)), 10*time.Millisecond)
}
