package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

func init() { register(newAnalysisCmd) }

func newAnalysisCmd() *cobra.Command {
	var (
		kube   kubeFlags
		stage  string
		output string
	)
	cmd := &cobra.Command{
		Use:   "analysis NAME --stage STAGE",
		Short: "Show the canary and analysis of a stage: its step, verdicts, measurements and baseline comparisons",
		Long: "Show the analysis the controller records for a stage: the digest, the phase (Running, Passed, Failed,\n" +
			"Held) and why, the canary step and its weight, the missing-data budget, the outage under way, who\n" +
			"approved, the metric queries as sent to Prometheus, every measurement (newest last) and the baseline\n" +
			"judge's comparisons. A Held analysis waits for `ferry approve` or `ferry abort`. -o json prints the\n" +
			"analysis status as the controller wrote it (null when there is none).",
		Example: "  ferry analysis shop --stage prod\n  ferry analysis shop --stage prod -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			c, ns, err := kube.client()
			if err != nil {
				return err
			}
			return runAnalysis(cmd.Context(), cmd.OutOrStdout(), c, ns, args[0], stage, output)
		},
	}
	kube.bind(cmd, false)
	cmd.Flags().StringVar(&stage, "stage", "", "stage whose analysis to show (required)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	_ = cmd.MarkFlagRequired("stage")
	return cmd
}

func runAnalysis(ctx context.Context, out io.Writer, c client.Reader, ns, name, stage, output string) error {
	p, err := getPromotion(ctx, c, ns, name)
	if err != nil {
		return err
	}
	s, err := findStage(p, stage)
	if err != nil {
		return err
	}
	if output == "json" {
		return writeJSON(out, s.Analysis) // null without an analysis
	}
	if s.Analysis == nil {
		fmt.Fprintf(out, "Stage %s of promotion %s has no analysis: %s.\n", s.Name, p.Name, noAnalysisReason(p, s))
		return nil
	}
	printAnalysis(out, p, s)
	return nil
}

// noAnalysisReason says plainly why a stage has no analysis to show.
func noAnalysisReason(p *ferryv1.Promotion, s ferryv1.StageStatus) string {
	if spec := stageSpec(p, s.Name); spec == nil || (spec.Canary == nil && spec.Analysis == nil) {
		return "its spec declares no canary or analysis"
	}
	if s.Phase == "" {
		return "the controller has recorded nothing for it yet"
	}
	return "none is under way or recorded (phase " + string(s.Phase) + ")"
}

func printAnalysis(out io.Writer, p *ferryv1.Promotion, s ferryv1.StageStatus) {
	a := s.Analysis
	line := func(label, value string) { fmt.Fprintf(out, "%s: %s\n", label, value) }
	fmt.Fprintf(out, "Analysis of stage %s of promotion %s\n", s.Name, p.Name)
	line("Digest", cell(a.Digest))
	line("Phase", cell(string(a.Phase)))
	line("Message", cell(a.Message))
	if a.Run != "" {
		line("Run", string(a.Run))
	}
	if a.Step != nil {
		line("Step", fmt.Sprintf("%s, weight %d%%", stepOf(p, s.Name, a), a.Weight))
	} else if a.Run == ferryv1.RunSoak {
		line("Step", "- (soak: the digest runs the whole stage)")
	} else {
		line("Step", "-")
	}
	line("Step started", timeAndAge(a.StepStartedAt))
	line("Last measured", timeAndAge(a.LastMeasuredAt))
	line("Missing", fmt.Sprintf("%d of %d measurements (budget %d)", a.Missing, a.Taken, a.Budget))
	line("Outage since", timeAndAge(a.OutageSince))
	approvals := fmt.Sprint(a.Approvals)
	if a.ApprovedBy != "" {
		approvals += ", last by " + cell(a.ApprovedBy)
	}
	if a.ApprovedAt != nil {
		approvals += " at " + formatTime(a.ApprovedAt.Time)
	}
	line("Approvals", approvals)
	if a.AbortedBy != "" {
		line("Aborted by", cell(a.AbortedBy))
	}
	if len(a.Tallies) > 0 {
		var tallies []string
		for _, t := range a.Tallies {
			tallies = append(tallies, fmt.Sprintf("%s %d passed, %d failed, %d inconclusive",
				cell(t.Metric), t.Passed, t.Failed, t.Inconclusive))
		}
		line("Tallies", strings.Join(tallies, "; "))
	}

	fmt.Fprintln(out, "\nQueries:")
	if len(a.Queries) == 0 {
		fmt.Fprintln(out, "  none recorded")
	} else {
		table(out, "METRIC\tTRACK\tQUERY", len(a.Queries), func(i int) []string {
			q := a.Queries[i]
			return []string{cell(q.Metric), cell(q.Track), cell(strings.Join(strings.Fields(q.Query), " "))}
		})
	}

	fmt.Fprintln(out, "\nMeasurements (newest last):")
	ms := oldestFirst(a.Measurements)
	if len(ms) == 0 {
		fmt.Fprintln(out, "  none yet")
	} else {
		table(out, "TIME\tSTEP\tMETRIC\tTRACK\tVALUE\tVERDICT\tREASON\tMESSAGE", len(ms), func(i int) []string {
			m := ms[i]
			return []string{formatTime(m.Time.Time), measurementStep(m.Step), cell(m.Metric), cell(m.Track),
				cell(m.Value), cell(m.Verdict), cell(m.Reason), cell(m.Message)}
		})
	}

	fmt.Fprintln(out, "\nBaseline comparisons:")
	if len(a.Comparisons) == 0 {
		fmt.Fprintln(out, "  none")
	} else {
		table(out, "METRIC\tVERDICT\tP-VALUE\tCANARY MEDIAN\tBASELINE MEDIAN\tSAMPLES\tREASON", len(a.Comparisons), func(i int) []string {
			c := a.Comparisons[i]
			return []string{cell(c.Metric), cell(c.Verdict), cell(c.PValue), cell(c.CanaryMedian), cell(c.BaselineMedian),
				fmt.Sprintf("%d/%d", c.CanarySamples, c.BaselineSamples), cell(c.Reason)}
		})
	}
}

// table prints rows under a header, indented by two spaces so that sections stand out.
func table(out io.Writer, header string, n int, row func(int) []string) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  "+header)
	for i := 0; i < n; i++ {
		fmt.Fprintln(w, "  "+strings.Join(row(i), "\t"))
	}
	_ = w.Flush()
}

// oldestFirst orders measurements by time, oldest first. Status already keeps that order; sorting guards the
// output against a hand-edited status.
func oldestFirst(ms []ferryv1.Measurement) []ferryv1.Measurement {
	out := append([]ferryv1.Measurement{}, ms...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(&out[j].Time) })
	return out
}

// measurementStep shows a step index the way people count steps (from 1); a measurement without a step was
// taken during the soak.
func measurementStep(step *int32) string {
	if step == nil {
		return "soak"
	}
	return fmt.Sprint(*step + 1)
}

// stepOf shows the canary step under way as "2/3", counted from 1 out of the steps the spec declares.
func stepOf(p *ferryv1.Promotion, stage string, a *ferryv1.AnalysisStatus) string {
	if a.Step == nil {
		return "-"
	}
	if spec := stageSpec(p, stage); spec != nil && spec.Canary != nil && len(spec.Canary.Steps) > 0 {
		return fmt.Sprintf("%d/%d", *a.Step+1, len(spec.Canary.Steps))
	}
	return fmt.Sprint(*a.Step + 1)
}

// stageSpec is the spec of the stage named name, or nil.
func stageSpec(p *ferryv1.Promotion, name string) *ferryv1.StageSpec {
	for i := range p.Spec.Stages {
		if p.Spec.Stages[i].Name == name {
			return &p.Spec.Stages[i]
		}
	}
	return nil
}

// phaseCell is the PHASE column of `ferry get`: the stage's phase, with the canary step under way ("Canary 2/3
// (50%)") and a compact verdict of its analysis ("analysis Held: 4 of 12 missing"). A stage without an analysis
// shows its phase alone.
func phaseCell(p *ferryv1.Promotion, s ferryv1.StageStatus) string {
	phase := string(s.Phase)
	a := s.Analysis
	if a == nil {
		return phase
	}
	if s.Phase == ferryv1.PhaseCanary && a.Step != nil {
		phase += fmt.Sprintf(" %s (%d%%)", stepOf(p, s.Name, a), a.Weight)
	}
	verdict := "analysis " + orDash(string(a.Phase))
	if current := orString(s.InFlightDigest, s.Digest); a.Digest != current {
		// The last analysis was of another digest — one the stage was rolled back from — so say which.
		verdict = fmt.Sprintf("analysis of %s %s", shortDigest(a.Digest), orDash(string(a.Phase)))
	}
	if a.Missing > 0 {
		verdict += fmt.Sprintf(": %d of %d missing", a.Missing, a.Taken)
	}
	return phase + ", " + verdict
}

// timeAndAge shows a time with how long ago it was, or "-".
func timeAndAge(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	age := time.Since(t.Time).Round(time.Second)
	if age < 0 {
		age = 0 // the controller's clock is ahead of ours
	}
	return fmt.Sprintf("%s (%s ago)", formatTime(t.Time), age)
}

// orString is s, or fallback when s is empty.
func orString(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
