package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
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
	p, err := promotionctl.Get(ctx, c, ns, name)
	if err != nil {
		return err
	}
	s, err := promotionctl.FindStage(p, stage)
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
	if spec := promotionctl.StageSpec(p, s.Name); spec == nil || (spec.Canary == nil && spec.Analysis == nil) {
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
	line("Digest", promotionctl.Cell(a.Digest))
	line("Phase", promotionctl.Cell(string(a.Phase)))
	line("Message", promotionctl.Cell(a.Message))
	if a.Run != "" {
		line("Run", string(a.Run))
	}
	if a.Step != nil {
		line("Step", fmt.Sprintf("%s, weight %d%%", promotionctl.StepOf(p, s.Name, a), a.Weight))
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
		approvals += ", last by " + promotionctl.Cell(a.ApprovedBy)
	}
	if a.ApprovedAt != nil {
		approvals += " at " + formatTime(a.ApprovedAt.Time)
	}
	line("Approvals", approvals)
	if a.AbortedBy != "" {
		line("Aborted by", promotionctl.Cell(a.AbortedBy))
	}
	if len(a.Tallies) > 0 {
		var tallies []string
		for _, t := range a.Tallies {
			tallies = append(tallies, fmt.Sprintf("%s %d passed, %d failed, %d inconclusive",
				promotionctl.Cell(t.Metric), t.Passed, t.Failed, t.Inconclusive))
		}
		line("Tallies", strings.Join(tallies, "; "))
	}

	fmt.Fprintln(out, "\nQueries:")
	if len(a.Queries) == 0 {
		fmt.Fprintln(out, "  none recorded")
	} else {
		table(out, "METRIC\tTRACK\tQUERY", len(a.Queries), func(i int) []string {
			q := a.Queries[i]
			return []string{promotionctl.Cell(q.Metric), promotionctl.Cell(q.Track), promotionctl.Cell(strings.Join(strings.Fields(q.Query), " "))}
		})
	}

	fmt.Fprintln(out, "\nMeasurements (newest last):")
	ms := promotionctl.OldestFirst(a.Measurements)
	if len(ms) == 0 {
		fmt.Fprintln(out, "  none yet")
	} else {
		table(out, "TIME\tSTEP\tMETRIC\tTRACK\tVALUE\tVERDICT\tREASON\tMESSAGE", len(ms), func(i int) []string {
			m := ms[i]
			return []string{formatTime(m.Time.Time), measurementStep(m.Step), promotionctl.Cell(m.Metric), promotionctl.Cell(m.Track),
				promotionctl.Cell(m.Value), promotionctl.Cell(m.Verdict), promotionctl.Cell(m.Reason), promotionctl.Cell(m.Message)}
		})
	}

	fmt.Fprintln(out, "\nBaseline comparisons:")
	if len(a.Comparisons) == 0 {
		fmt.Fprintln(out, "  none")
	} else {
		table(out, "METRIC\tVERDICT\tP-VALUE\tCANARY MEDIAN\tBASELINE MEDIAN\tSAMPLES\tREASON", len(a.Comparisons), func(i int) []string {
			c := a.Comparisons[i]
			return []string{promotionctl.Cell(c.Metric), promotionctl.Cell(c.Verdict), promotionctl.Cell(c.PValue), promotionctl.Cell(c.CanaryMedian), promotionctl.Cell(c.BaselineMedian),
				fmt.Sprintf("%d/%d", c.CanarySamples, c.BaselineSamples), promotionctl.Cell(c.Reason)}
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

// measurementStep shows a step index the way people count steps (from 1); a measurement without a step was
// taken during the soak.
func measurementStep(step *int32) string {
	if step == nil {
		return "soak"
	}
	return fmt.Sprint(*step + 1)
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
