package promotionctl

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"unicode"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// NoPhase is the phase StageRows gives a stage the controller has recorded nothing for yet.
const NoPhase ferryv1.StagePhase = "-"

// Get reads one Promotion, with an error that names it and its namespace when it does not exist.
func Get(ctx context.Context, c client.Reader, ns, name string) (*ferryv1.Promotion, error) {
	var p ferryv1.Promotion
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("promotion %q not found in namespace %q", name, ns)
		}
		return nil, fmt.Errorf("reading promotion %q in namespace %q: %w", name, ns, err)
	}
	return &p, nil
}

// StageRows lists the stages in spec order, with status where the controller has recorded it; a stage without
// status has phase NoPhase.
func StageRows(p *ferryv1.Promotion) []ferryv1.StageStatus {
	byName := make(map[string]ferryv1.StageStatus, len(p.Status.Stages))
	for _, s := range p.Status.Stages {
		byName[s.Name] = s
	}
	rows := make([]ferryv1.StageStatus, 0, len(p.Spec.Stages))
	for _, spec := range p.Spec.Stages {
		s, ok := byName[spec.Name]
		if !ok {
			s = ferryv1.StageStatus{Name: spec.Name, Phase: NoPhase}
		}
		rows = append(rows, s)
	}
	return rows
}

// FindStage returns the status of the stage the spec declares under name (empty when the controller has not
// recorded it yet), or an error for --stage that lists the stages there are.
func FindStage(p *ferryv1.Promotion, name string) (ferryv1.StageStatus, error) {
	var names []string
	for _, s := range StageRows(p) {
		if s.Name == name {
			if s.Phase == NoPhase {
				s.Phase = ""
			}
			return s, nil
		}
		names = append(names, s.Name)
	}
	return ferryv1.StageStatus{}, fmt.Errorf("--stage %q: promotion %q has no such stage (stages: %s)",
		name, p.Name, strings.Join(names, ", "))
}

// StageSpec is the spec of the stage named name, or nil.
func StageSpec(p *ferryv1.Promotion, name string) *ferryv1.StageSpec {
	for i := range p.Spec.Stages {
		if p.Spec.Stages[i].Name == name {
			return &p.Spec.Stages[i]
		}
	}
	return nil
}

// NewestFirst orders history by time, newest first. Status already keeps that order; sorting guards output
// against a hand-edited status.
func NewestFirst(h []ferryv1.StageHistoryEntry) []ferryv1.StageHistoryEntry {
	out := append([]ferryv1.StageHistoryEntry{}, h...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time.Time) })
	return out
}

// OldestFirst orders measurements by time, oldest first. Status already keeps that order; sorting guards the
// output against a hand-edited status.
func OldestFirst(ms []ferryv1.Measurement) []ferryv1.Measurement {
	out := append([]ferryv1.Measurement{}, ms...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(&out[j].Time) })
	return out
}

// ShortDigest keeps a digest readable in a table: sha256: and 12 hex characters.
func ShortDigest(d string) string {
	if d == "" {
		return "<none>"
	}
	if len(d) > len(DigestAlgorithm)+12 {
		return d[:len(DigestAlgorithm)+12]
	}
	return d
}

// StepOf shows the canary step under way as "2/3", counted from 1 out of the steps the spec declares.
func StepOf(p *ferryv1.Promotion, stage string, a *ferryv1.AnalysisStatus) string {
	if a.Step == nil {
		return "-"
	}
	if spec := StageSpec(p, stage); spec != nil && spec.Canary != nil && len(spec.Canary.Steps) > 0 {
		return fmt.Sprintf("%d/%d", *a.Step+1, len(spec.Canary.Steps))
	}
	return fmt.Sprint(*a.Step + 1)
}

// PhaseSummary is a stage's phase in a few words: the phase, with the canary step under way ("Canary 2/3
// (50%)") and a compact verdict of its analysis ("analysis Held: 4 of 12 missing"). A stage without an analysis
// shows its phase alone.
func PhaseSummary(p *ferryv1.Promotion, s ferryv1.StageStatus) string {
	phase := string(s.Phase)
	a := s.Analysis
	if a == nil {
		return phase
	}
	if s.Phase == ferryv1.PhaseCanary && a.Step != nil {
		phase += fmt.Sprintf(" %s (%d%%)", StepOf(p, s.Name, a), a.Weight)
	}
	verdict := "analysis " + OrDash(string(a.Phase))
	if current := orString(s.InFlightDigest, s.Digest); a.Digest != current {
		// The last analysis was of another digest — one the stage was rolled back from — so say which.
		verdict = fmt.Sprintf("analysis of %s %s", ShortDigest(a.Digest), OrDash(string(a.Phase)))
	}
	if a.Missing > 0 {
		verdict += fmt.Sprintf(": %d of %d missing", a.Missing, a.Taken)
	}
	return phase + ", " + verdict
}

// Cell makes a status value safe for one line of output: status text can come from outside (a forge user
// name, a registry error), so control characters that would break a table or drive a terminal become spaces.
// An empty value is "-".
func Cell(s string) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
	if s == "" {
		return "-"
	}
	return s
}

// OrDash is s, or "-" when s is empty.
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Because appends a status message to an explanation, when there is one.
func Because(message string) string {
	if c := Cell(message); c != "-" {
		return " (" + c + ")"
	}
	return ""
}

func orString(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
