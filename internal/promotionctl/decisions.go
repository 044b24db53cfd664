package promotionctl

import (
	"fmt"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// Approvable says why a stage has no analysis waiting for approval; nil when it has one.
func Approvable(p *ferryv1.Promotion, s ferryv1.StageStatus) error {
	a := s.Analysis
	if a == nil {
		return fmt.Errorf("stage %q of promotion %q has no analysis to approve (phase %s)", s.Name, p.Name, OrDash(string(s.Phase)))
	}
	if a.Phase != ferryv1.AnalysisHeld {
		return fmt.Errorf("the analysis of stage %q of promotion %q is %s, not Held%s: only a held analysis "+
			"waits for approval", s.Name, p.Name, OrDash(string(a.Phase)), Because(a.Message))
	}
	return nil
}

// Abortable says why a stage has no canary or analysis under way to abort; nil when it has one.
func Abortable(p *ferryv1.Promotion, s ferryv1.StageStatus) error {
	a := s.Analysis
	switch {
	case a == nil && s.Phase == ferryv1.PhaseCanary:
		return nil // a canary without an analysis
	case a == nil:
		return fmt.Errorf("stage %q of promotion %q has no canary or analysis under way (phase %s): there is "+
			"nothing to abort", s.Name, p.Name, OrDash(string(s.Phase)))
	case a.Phase == ferryv1.AnalysisPassed || a.Phase == ferryv1.AnalysisFailed:
		return fmt.Errorf("the analysis of stage %q of promotion %q already ended: %s%s: there is nothing to abort",
			s.Name, p.Name, a.Phase, Because(a.Message))
	}
	return nil
}

// HoldReleasable says why a stage has no hold to release; nil when it has one.
func HoldReleasable(p *ferryv1.Promotion, s ferryv1.StageStatus) error {
	if s.Hold == nil {
		return fmt.Errorf("stage %q of promotion %q is not held: there is no hold to clear", s.Name, p.Name)
	}
	return nil
}

// AbortTarget is the digest an abort returns the stage to, as far as the status tells: during a canary the
// stable workload still runs it; during the soak it is the newest other digest promoted in the stage.
func AbortTarget(s ferryv1.StageStatus) string {
	analysed := s.InFlightDigest
	if s.Analysis != nil && s.Analysis.Digest != "" {
		analysed = s.Analysis.Digest
	}
	if analysed == "" {
		analysed = s.Digest // nothing in flight: the soak of the running digest
	}
	if s.Digest != "" && s.Digest != analysed {
		return s.Digest
	}
	for _, h := range NewestFirst(s.History) {
		if h.Outcome == ferryv1.OutcomePromoted && h.Digest != analysed {
			return h.Digest
		}
	}
	return ""
}
