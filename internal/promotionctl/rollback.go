package promotionctl

import (
	"fmt"
	"strings"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// RollbackPlan is what a rollback request asks for: the stage, the digest it runs, the digest it returns to and
// the value of the rollback annotation.
type RollbackPlan struct {
	Stage    ferryv1.StageStatus
	From     string
	Target   string
	Value    string
	Explicit bool // the person named the target; otherwise the controller's choice of previous digest wins
}

// PlanRollback decides the target digest and the annotation's value, or says why the rollback cannot happen.
// Without to the stage returns to the newest promoted digest before the one it runs.
func PlanRollback(p *ferryv1.Promotion, stage string, to *DigestArg) (RollbackPlan, error) {
	s, err := FindStage(p, stage)
	if err != nil {
		return RollbackPlan{}, err
	}
	plan := RollbackPlan{Stage: s, From: s.Digest, Value: stage, Explicit: to != nil}
	if to != nil {
		plan.Target, err = explicitTarget(p.Name, s, *to)
		plan.Value = stage + "=" + plan.Target
	} else {
		plan.Target, err = PreviousDigest(p.Name, s)
	}
	if err != nil {
		return RollbackPlan{}, err
	}
	return plan, nil
}

// explicitTarget resolves a chosen digest against the stage's history.
func explicitTarget(promotion string, s ferryv1.StageStatus, to DigestArg) (string, error) {
	known := make([]string, 0, len(s.History))
	for _, h := range s.History {
		known = append(known, h.Digest)
	}
	target, err := to.Resolve(known)
	if err != nil {
		return "", fmt.Errorf("%w in the history of stage %q (`ferry history %s --stage %s` lists it)",
			err, s.Name, promotion, s.Name)
	}
	if target == s.Digest {
		return "", fmt.Errorf("%s %s: stage %q already runs that digest", to.what, target, s.Name)
	}
	// Only a digest that once ran healthy in the stage is a place to return to; the controller refuses others.
	var outcomes []string
	for _, h := range s.History {
		if h.Digest == target {
			if h.Outcome == ferryv1.OutcomePromoted {
				return target, nil
			}
			outcomes = append(outcomes, string(h.Outcome))
		}
	}
	return "", fmt.Errorf("%s %s: was never promoted in stage %q (its history says %s); only a digest that was "+
		"promoted there can be rolled back to", to.what, target, s.Name, strings.Join(outcomes, ", "))
}

// PreviousDigest is what the controller returns to without a chosen digest: the newest digest the stage was
// promoted to before the one it runs now.
func PreviousDigest(promotion string, s ferryv1.StageStatus) (string, error) {
	if s.Digest == "" {
		return "", fmt.Errorf("stage %q of promotion %q runs no digest yet: there is nothing to roll back", s.Name, promotion)
	}
	for _, h := range NewestFirst(s.History) {
		if h.Outcome == ferryv1.OutcomePromoted && h.Digest != s.Digest {
			return h.Digest, nil
		}
	}
	return "", fmt.Errorf("stage %q of promotion %q has no previous digest: its history holds no promoted digest "+
		"other than the one it runs (%s); pick one with --to from `ferry history %s --stage %s`",
		s.Name, promotion, ShortDigest(s.Digest), promotion, s.Name)
}

// RollbackTargets lists the digests a stage can be rolled back to by name: those promoted there, other than the
// one it runs, newest first, each once.
func RollbackTargets(s ferryv1.StageStatus) []ferryv1.StageHistoryEntry {
	seen := map[string]bool{s.Digest: true}
	var out []ferryv1.StageHistoryEntry
	for _, h := range NewestFirst(s.History) {
		if h.Outcome == ferryv1.OutcomePromoted && !seen[h.Digest] {
			seen[h.Digest] = true
			out = append(out, h)
		}
	}
	return out
}
