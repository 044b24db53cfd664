package controllers

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/registry"
)

// copyStage copies the in-flight digest, with every signature, attestation and SBOM attached to it, into the
// stage's registry and verifies it there again: a digest that does not verify in the stage registry never
// reaches Git. What that verification found is kept in the stage's status as its evidence.
func (r *PromotionReconciler) copyStage(ctx context.Context, s *scope, i int) (bool, error) {
	st := s.stage(i)
	stage := &s.p.Spec.Stages[i]
	opts := mergeRegistryOptions(s.sourceOptions(i), s.in.stages[i])
	client, err := registry.NewClient(opts)
	if err != nil {
		return false, stalling(ReasonInvalidReference, fmt.Sprintf("spec.stages[%d].registry", i), "%v", err)
	}
	defer client.Close()
	res, err := client.Copy(ctx, st.InFlightSource, stage.Registry.Repository)
	if errors.Is(err, registry.ErrNotFound) {
		r.failDigest(s, i, fmt.Sprintf("%s is gone from %s: %v", st.InFlightDigest, st.InFlightSource, err))
		return true, nil
	}
	if err != nil {
		return false, retrying(ReasonRegistryUnavailable, fmt.Errorf("copying %s: %w", st.InFlightSource, err))
	}
	refused, err := verifyInStage(ctx, s, i, res.Destination) // keeps what a pull request for it will show
	if err != nil {
		return false, err
	}
	if refused != nil {
		r.failDigest(s, i, verificationFailed(refused))
		return true, nil
	}
	r.metrics().AddCopy(s.metricsStage(i), res.BytesMoved, int(res.Requests))
	r.event(s.p, corev1.EventTypeNormal, ReasonCopied, "stage %s: copied %s (%d blobs copied, %d mounted, %d present; %d referrers, %d signature tags) and verified it there",
		st.Name, res.Destination, res.BlobsCopied, res.BlobsMounted, res.BlobsSkipped, res.ReferrersCopied+res.ReferrersSkipped, res.TagsCopied+res.TagsSkipped)
	s.setPhase(i, ferryv1.PhaseWriting, "Copied and verified %s; writing the pin to Git.", res.Destination)
	return true, nil
}

// sourceOptions are the registry options of where stage i copies from.
func (s *scope) sourceOptions(i int) registry.Options {
	if i == 0 {
		return s.in.source
	}
	return s.in.stages[i-1]
}

// mergeRegistryOptions combines the options of two registries for a copy between them.
func mergeRegistryOptions(a, b registry.Options) registry.Options {
	out := registry.Options{Insecure: append(append([]string{}, a.Insecure...), b.Insecure...)}
	switch {
	case a.Keychain != nil && b.Keychain != nil:
		out.Keychain = authn.NewMultiKeychain(b.Keychain, a.Keychain)
	case a.Keychain != nil:
		out.Keychain = a.Keychain
	default:
		out.Keychain = b.Keychain
	}
	if len(a.CABundle) > 0 || len(b.CABundle) > 0 {
		out.CABundle = append(append(append([]byte{}, a.CABundle...), '\n'), b.CABundle...)
	}
	return out
}

// failDigest ends the in-flight digest with Failed: it is not retried in this stage.
func (r *PromotionReconciler) failDigest(s *scope, i int, reason string) {
	st := s.stage(i)
	r.event(s.p, corev1.EventTypeWarning, ReasonStageFailed, "stage %s: %s failed: %s", st.Name, st.InFlightDigest, reason)
	r.finishDigest(s, i, ferryv1.OutcomeFailed, reason)
}
