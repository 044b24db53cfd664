package controllers

import (
	"fmt"
	"slices"
	"strings"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/scm"
	"github.com/ferrycd/ferry/internal/signature"
	"github.com/ferrycd/ferry/internal/text"
)

// Bounds of the evidence kept in a stage's status (see ferryv1.DigestEvidence): a handful of signers and
// attestations is normal; a registry full of them must not grow the Promotion.
const (
	maxEvidenceSigners      = 16
	maxEvidenceAttestations = 16
)

// recordEvidence keeps in stage i's status what verifying digest at ref in the stage's registry found: the
// signers, the policy that accepted them and a summary of each distinct attestation.
func (s *scope) recordEvidence(i int, digest, ref string, res *signature.Result) {
	if res == nil {
		return
	}
	now := s.now
	ev := &ferryv1.DigestEvidence{Digest: digest, Reference: clipTo(ref, 1024), VerifiedAt: &now,
		Policy: policyEvidence(&s.p.Spec.Verification)}
	for _, sg := range res.Signers {
		if len(ev.Signers) == maxEvidenceSigners {
			break
		}
		ev.Signers = append(ev.Signers, ferryv1.SignerEvidence{Key: clipTo(s.in.keyNames[sg.KeyFingerprint], 63),
			KeyFingerprint: clipTo(sg.KeyFingerprint, 128), Issuer: clipTo(sg.Issuer, 512), Subject: clipTo(sg.Subject, 1024)})
	}
	seen := map[string]bool{}
	for _, a := range res.Attestations {
		ae := attestationEvidence(a, s.in.keyNames)
		key := fmt.Sprintf("%+v", ae) // the same attestation in both layouts (tag and referrer) counts once
		if seen[key] || len(ev.Attestations) == maxEvidenceAttestations {
			continue
		}
		seen[key] = true
		ev.Attestations = append(ev.Attestations, ae)
	}
	s.stage(i).Evidence = ev
}

func attestationEvidence(a signature.Attestation, keyNames map[string]string) ferryv1.AttestationEvidence {
	sum := a.Summary
	ae := ferryv1.AttestationEvidence{PredicateType: clipTo(a.PredicateType, 512), Signer: clipTo(signerName(a.Signer, keyNames), 1024),
		BuilderID: sum.BuilderID, SourceRepository: sum.SourceRepository, SourceCommit: sum.SourceCommit, SBOMFormat: sum.SBOMFormat}
	if sum.Packages >= 0 {
		n := int32(min(sum.Packages, 1<<30))
		ae.Packages = &n
	}
	return ae
}

// signerName names a signer as the spec does: the key's name, else the key fingerprint or certificate identity.
func signerName(sg signature.Signer, keyNames map[string]string) string {
	if name := keyNames[sg.KeyFingerprint]; sg.KeyFingerprint != "" && name != "" {
		return name
	}
	return sg.String()
}

func policyEvidence(v *ferryv1.VerificationSpec) *ferryv1.PolicyEvidence {
	p := &ferryv1.PolicyEvidence{Threshold: max(v.Threshold, 1), Keyless: append([]ferryv1.KeylessIdentity(nil), v.Keyless...)}
	for _, k := range v.Keys {
		p.Keys = append(p.Keys, k.Name)
	}
	for _, a := range v.RequiredAttestations {
		p.RequiredAttestations = append(p.RequiredAttestations, a.PredicateType)
	}
	return p
}

// change is what stage i's pull request proposes, with the evidence Ferry holds for it; files are the files
// the pin changes, when known.
func (s *scope) change(i int, files []string) scm.Change {
	st := s.stage(i)
	return scm.Change{Promotion: s.p.Name, Stage: st.Name, Digest: st.InFlightDigest, Source: st.InFlightSource,
		Signer: strings.Join(candidateSigners(s), ", "), Previous: st.Digest, Files: files, Evidence: s.evidenceFor(i, st.InFlightDigest)}
}

// evidenceFor renders stage i's recorded evidence of digest for people, with the previous stage's result; nil
// when none was recorded for that digest.
func (s *scope) evidenceFor(i int, digest string) *scm.Evidence {
	ev := s.stage(i).Evidence
	if ev == nil || ev.Digest != digest {
		return nil
	}
	out := &scm.Evidence{VerifiedIn: ev.Reference, Upstream: s.upstreamResult(i, digest)}
	if ev.VerifiedAt != nil {
		out.VerifiedAt = ev.VerifiedAt.Time
	}
	for _, sg := range ev.Signers {
		out.Signers = append(out.Signers, signerEvidenceName(sg))
	}
	if p := ev.Policy; p != nil {
		out.Policy = scm.PolicySummary{Keys: p.Keys, Threshold: int(p.Threshold), Required: p.RequiredAttestations}
		for _, id := range p.Keyless {
			subject := id.Subject
			if id.SubjectRegex != "" {
				subject = "~" + id.SubjectRegex
			}
			out.Policy.Keyless = append(out.Policy.Keyless, fmt.Sprintf("%s (issuer %s)", subject, id.Issuer))
		}
	}
	for _, a := range ev.Attestations {
		ae := scm.AttestationEvidence{PredicateType: a.PredicateType, Signer: a.Signer, BuilderID: a.BuilderID,
			SourceRepository: a.SourceRepository, SourceCommit: a.SourceCommit, SBOMFormat: a.SBOMFormat, Packages: -1}
		if a.Packages != nil {
			ae.Packages = int(*a.Packages)
		}
		out.Attestations = append(out.Attestations, ae)
	}
	return out
}

func signerEvidenceName(sg ferryv1.SignerEvidence) string {
	switch {
	case sg.Key != "":
		return fmt.Sprintf("key %s (%s)", sg.Key, sg.KeyFingerprint)
	case sg.KeyFingerprint != "":
		return "key " + sg.KeyFingerprint
	}
	return fmt.Sprintf("%s (issuer %s)", sg.Subject, sg.Issuer)
}

// upstreamResult is how stage i-1 ran digest: its soak (healthy since, promoted at), health, canary or analysis
// verdict and the commit that pinned it there. nil for the first stage or when stage i-1 has no record of it.
func (s *scope) upstreamResult(i int, digest string) *scm.UpstreamResult {
	if i == 0 {
		return nil
	}
	prev := s.stage(i - 1)
	var promoted *ferryv1.StageHistoryEntry
	for k := range prev.History {
		if h := &prev.History[k]; h.Digest == digest && h.Outcome == ferryv1.OutcomePromoted {
			promoted = h
			break
		}
	}
	if promoted == nil {
		return nil
	}
	u := &scm.UpstreamResult{Stage: prev.Name, Commit: promoted.CommitSHA, PromotedAt: promoted.Time.Time}
	if prev.Digest == digest {
		u.Health = fmt.Sprintf("healthy, still running it (%s)", prev.Phase)
		if prev.HealthySince != nil {
			u.HealthySince = prev.HealthySince.Time
		}
	} else {
		u.Health = fmt.Sprintf("promoted; the stage has moved on to %s (%s)", orDefault(prev.Digest, "nothing"), prev.Phase)
	}
	if a := prev.Analysis; a != nil && a.Digest == digest {
		u.Verdict = fmt.Sprintf("%s (%s)", a.Phase, a.Run)
		if a.Message != "" {
			u.Verdict += ": " + a.Message
		}
	}
	if cfg := s.in.pullRequests[i]; cfg != nil {
		u.CommitURL = scm.CommitURL(*cfg, s.p.Spec.Git.URL, u.Commit)
	}
	return u
}

// evidenceStatus is the commit status saying that Ferry verified digest for stage i: the signers and the
// attestation types, in the forge's short description.
func (s *scope) evidenceStatus(i int, url string) scm.CommitStatus {
	st := s.stage(i)
	ev := st.Evidence
	desc := "verified"
	if ev != nil {
		var types []string
		for _, a := range ev.Attestations {
			t := shortPredicate(a.PredicateType)
			if !slices.Contains(types, t) {
				types = append(types, t)
			}
		}
		desc = fmt.Sprintf("verified: %d signer(s)", len(ev.Signers))
		if len(types) > 0 {
			desc += ", attestations " + strings.Join(types, ", ")
		}
	}
	return scm.CommitStatus{State: scm.CommitSuccess, Context: statusContext(st.Name), Description: desc + "; awaiting approval", TargetURL: url}
}

// statusContext names Ferry's commit status for a stage.
func statusContext(stage string) string { return "ferry/" + stage }

// shortPredicate drops the scheme of a predicate type: "slsa.dev/provenance/v1".
func shortPredicate(t string) string {
	if _, rest, ok := strings.Cut(t, "://"); ok {
		return rest
	}
	return t
}

// clipTo cuts s to at most n bytes of valid UTF-8, for status fields with a maximum length.
func clipTo(s string, n int) string {
	return text.Cut(strings.ToValidUTF8(s, "?"), n)
}
