package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/metrics"
	"github.com/ferrycd/ferry/internal/registry"
	"github.com/ferrycd/ferry/internal/signature"
	"github.com/ferrycd/ferry/internal/text"
)

// Reasons of the discover and verify steps.
const (
	ReasonNoCandidate        = "NoCandidate"
	ReasonVerificationFailed = "VerificationFailed"
	ReasonCandidateVerified  = "CandidateVerified"
	// ReasonAwaitingSignature: the newest digest carries no signature yet and is waited for, within
	// spec.verification.signatureGracePeriod, before it is rejected.
	ReasonAwaitingSignature = "AwaitingSignature"
)

// discover finds the newest digest at the source and verifies it. A digest that fails verification is recorded
// with the reason and never offered to any stage; it is checked again at the next poll. A digest with no
// signature at all is first waited for (see awaitSignature), since CI often signs just after it pushes.
func (r *PromotionReconciler) discover(ctx context.Context, s *scope) error {
	key := client.ObjectKeyFromObject(s.p)
	if !r.discoveryDue(s, key) {
		return s.candidateWait()
	}
	err := r.discoverNow(ctx, s)
	if _, waiting := asWaiting(err); err == nil || waiting {
		r.discovered.Store(key, discovery{at: s.now.Time, generation: s.p.Generation})
	}
	return err
}

// discovery is when a Promotion's source was last asked, and for which generation of its spec.
type discovery struct {
	at         time.Time
	generation int64
}

// discoveryDue says whether the source must be asked again: at the poll interval, on a push notification, or
// when the spec changed. In between, the candidate in status stands, so the frequent reconciles of stages
// waiting for health, approval or soak never reach the source registry (registries rate-limit).
func (r *PromotionReconciler) discoveryDue(s *scope, key client.ObjectKey) bool {
	if _, pushed := r.pushed.LoadAndDelete(key); pushed {
		return true
	}
	v, ok := r.discovered.Load(key)
	if !ok {
		return true
	}
	last := v.(discovery)
	if c := s.p.Status.Candidate; awaitingSignature(c) &&
		(s.now.Sub(last.at) >= signatureRecheck || !s.now.Time.Before(c.SignatureDeadline.Time)) {
		return true
	}
	return last.generation != s.p.Generation || s.now.Sub(last.at) >= s.pollInterval()
}

// candidateWait is what a skipped discovery reports: the wait the last one found, if any.
func (s *scope) candidateWait() error {
	c := s.p.Status.Candidate
	switch {
	case c == nil:
		return &WaitingError{Reason: ReasonNoCandidate, Err: errors.New("no tag matches spec.source.tagPolicy yet")}
	case awaitingSignature(c):
		s.waitAtMost(recheckSignatureIn(s.now.Time, c.SignatureDeadline.Time))
		return nil
	case !c.Verified:
		return rejection(c)
	}
	return nil
}

// rejection is the wait of a rejected candidate. Its message is the same whether the candidate was verified in
// this reconcile or read from status, so that the Ready condition — and its Warning event — changes once per
// rejected digest, not at every reconcile.
func rejection(c *ferryv1.CandidateStatus) error {
	return &WaitingError{Reason: ReasonVerificationFailed, Err: fmt.Errorf("candidate %s rejected: %s", c.Digest, c.Message)}
}

// discoverNow asks the source for the newest candidate and verifies it when it is new.
func (r *PromotionReconciler) discoverNow(ctx context.Context, s *scope) error {
	candidate, err := r.findCandidate(ctx, s)
	if err != nil {
		return err
	}
	cur := s.p.Status.Candidate
	if cur != nil && cur.Digest == candidate.Digest && cur.Verified {
		return nil
	}
	next := &ferryv1.CandidateStatus{Digest: candidate.Digest, Tag: candidate.Tag, DiscoveredAt: &s.now}
	if cur != nil && cur.Digest == candidate.Digest {
		next.DiscoveredAt = cur.DiscoveredAt
	}
	s.p.Status.Candidate = next
	res, err := verifyAt(ctx, s.in.source, s.p.Spec.Source.Image+"@"+candidate.Digest, s.in.policy)
	if err != nil {
		return r.rejectCandidate(s, cur, err)
	}
	next.Verified = true
	next.Signers = signerNames(res, s.in.keyNames)
	r.event(s.p, corev1.EventTypeNormal, ReasonCandidateVerified, "Discovered %s%s, signed by %s",
		candidate.Digest, tagSuffix(candidate.Tag), strings.Join(next.Signers, ", "))
	return nil
}

// findCandidate resolves the source: the pinned digest, or the newest tag the policy accepts.
func (r *PromotionReconciler) findCandidate(ctx context.Context, s *scope) (registry.Candidate, error) {
	src := s.p.Spec.Source
	if src.Digest != "" {
		return registry.Candidate{Digest: src.Digest}, nil
	}
	client, err := registry.NewClient(s.in.source)
	if err != nil {
		return registry.Candidate{}, stalling(ReasonInvalidReference, "spec.source.registry", "%v", err)
	}
	defer client.Close()
	c, err := client.Latest(ctx, src.Image, tagPolicy(src.TagPolicy))
	switch {
	case errors.Is(err, registry.ErrNoMatchingTag):
		return c, &WaitingError{Reason: ReasonNoCandidate, Err: fmt.Errorf("no tag of %s matches spec.source.tagPolicy yet", src.Image)}
	case errors.Is(err, registry.ErrLimitExceeded):
		return c, retrying(ReasonRegistryLimitExceeded, fmt.Errorf("spec.source.image: discovering the newest tag of %s: %w", src.Image, err))
	case err != nil:
		return c, retrying(ReasonRegistryUnavailable, fmt.Errorf("discovering the newest tag of %s: %w", src.Image, err))
	}
	return c, nil
}

// rejectCandidate records a verification failure. A digest with no signature at all is waited for within the
// grace period; any other failure of a known kind is rejected at once and waits for a new digest or new
// signatures; a registry failure is retried with backoff, and changes nothing recorded of the candidate.
//
// A rejection raises no event of its own: it makes Ready False with reason VerificationFailed, and that change
// is the one Warning event (recordReadyChange) — once per rejected digest, with the same message every reconcile.
func (r *PromotionReconciler) rejectCandidate(s *scope, prev *ferryv1.CandidateStatus, err error) error {
	c := s.p.Status.Candidate
	kind := signature.KindOf(err)
	if kind == "" {
		if prev != nil && prev.Digest == c.Digest {
			s.p.Status.Candidate = prev
		}
		return retrying(ReasonRegistryUnavailable, fmt.Errorf("verifying %s: %w", c.Digest, err))
	}
	if kind == signature.KindMalformed {
		return stalling(ReasonInvalidSpec, "spec.verification", "%v", err)
	}
	if deadline := s.signatureDeadline(c); kind == signature.KindUnsigned && s.now.Time.Before(deadline) {
		r.awaitSignature(s, prev, deadline)
		return nil
	}
	c.Message = text.Cut(fmt.Sprintf("%s: %v", kind, err), maxStatusMessage)
	if prev == nil || prev.Digest != c.Digest || prev.Message != c.Message {
		r.metrics().CountVerificationFailure(metrics.Promotion{Namespace: s.p.Namespace, Name: s.p.Name}, verificationReason(kind))
	}
	return rejection(c)
}

// verifyAt verifies ref (repository@digest) with the options of the registry it lives in.
func verifyAt(ctx context.Context, opts registry.Options, ref string, policy signature.Policy) (*signature.Result, error) {
	d, err := opts.ParseDigest("reference", ref)
	if err != nil {
		return nil, err
	}
	remoteOpts, err := registry.RemoteOptions(ctx, opts)
	if err != nil {
		return nil, err
	}
	return signature.VerifyDigest(ctx, d, policy, remoteOpts)
}

func tagPolicy(tp *ferryv1.TagPolicy) registry.TagPolicy {
	if tp == nil {
		return registry.TagPolicy{}
	}
	if tp.Semver != nil {
		return registry.TagPolicy{Semver: tp.Semver.Range, Order: registry.OrderSemver}
	}
	order := registry.OrderLexical
	if tp.Regex.Order == ferryv1.TagOrderSemver {
		order = registry.OrderSemver
	}
	return registry.TagPolicy{Regex: tp.Regex.Pattern, Order: order}
}

// signerNames names each matched signer as the spec does: the key's name, or the certificate identity.
func signerNames(res *signature.Result, keyNames map[string]string) []string {
	names := make([]string, 0, len(res.Signers))
	for _, s := range res.Signers {
		if name, ok := keyNames[s.KeyFingerprint]; ok && s.KeyFingerprint != "" {
			names = append(names, name)
			continue
		}
		names = append(names, s.String())
	}
	return names
}

func tagSuffix(tag string) string {
	if tag == "" {
		return ""
	}
	return " (tag " + tag + ")"
}
