package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
)

func init() { register(newHistoryCmd) }

func newHistoryCmd() *cobra.Command {
	var (
		kube   kubeFlags
		stage  string
		output string
	)
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "Show the digests each stage of a Promotion ran, newest first, with their provenance",
		Long: "Show each stage's bounded history from the Promotion's status, newest first: when the outcome was\n" +
			"reached, the digest, the outcome (Promoted, Failed, RolledBack, Superseded, Rejected), Ferry's commit, who\n" +
			"approved, the verified signers, the pull request and the reason. These are the digests `ferry rollback`\n" +
			"can return to. A digest still in flight (copying, awaiting approval, soaking…) comes first, as\n" +
			"in-flight:<phase> since it entered the stage, with its approver (or pending, or automatic) and source.\n" +
			"-o wide prints full digests and commits; -o json prints everything.",
		Example: "  ferry history shop\n  ferry history shop --stage prod -o wide",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "wide", "json"); err != nil {
				return err
			}
			c, ns, err := kube.client()
			if err != nil {
				return err
			}
			return runHistory(cmd.Context(), cmd.OutOrStdout(), c, ns, args[0], stage, output)
		},
	}
	kube.bind(cmd, false)
	cmd.Flags().StringVar(&stage, "stage", "", "show only this stage")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, wide or json")
	return cmd
}

// stageHistory is one stage's history as `ferry history -o json` prints it.
type stageHistory struct {
	Name   string             `json:"name"`
	Phase  ferryv1.StagePhase `json:"phase,omitempty"`
	Digest string             `json:"digest,omitempty"`
	// InFlight is the digest the stage is taking now, if any (see inFlight).
	InFlight *inFlight                   `json:"inFlight,omitempty"`
	History  []ferryv1.StageHistoryEntry `json:"history"`
}

type historyOutput struct {
	Namespace string         `json:"namespace"`
	Promotion string         `json:"promotion"`
	Stages    []stageHistory `json:"stages"`
}

func runHistory(ctx context.Context, out io.Writer, c client.Reader, ns, name, stage, output string) error {
	p, err := promotionctl.Get(ctx, c, ns, name)
	if err != nil {
		return err
	}
	rows := promotionctl.StageRows(p)
	if stage != "" {
		s, err := promotionctl.FindStage(p, stage)
		if err != nil {
			return err
		}
		rows = []ferryv1.StageStatus{s}
	}
	res := historyOutput{Namespace: p.Namespace, Promotion: p.Name}
	for _, s := range rows {
		res.Stages = append(res.Stages, stageHistory{Name: s.Name, Phase: s.Phase, Digest: s.Digest,
			InFlight: inFlightOf(p, s), History: promotionctl.NewestFirst(s.History)})
	}
	if output == "json" {
		return writeJSON(out, res)
	}
	printHistory(out, res, output == "wide")
	return nil
}

func printHistory(out io.Writer, res historyOutput, wide bool) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STAGE\tTIME\tDIGEST\tOUTCOME\tCOMMIT\tAPPROVER\tSIGNERS\tPULL REQUEST\tREASON")
	var empty []string
	for _, s := range res.Stages {
		if len(s.History) == 0 && s.InFlight == nil {
			empty = append(empty, s.Name)
		}
		if s.InFlight != nil {
			fmt.Fprintln(w, inFlightRow(s.Name, s.InFlight, wide))
		}
		for _, h := range s.History {
			fmt.Fprintln(w, strings.Join([]string{promotionctl.Cell(s.Name), formatTime(h.Time.Time), digestCell(h.Digest, wide),
				promotionctl.Cell(string(h.Outcome)), commitCell(h.CommitSHA, wide), promotionctl.Cell(h.Approver),
				promotionctl.Cell(strings.Join(h.Signers, ",")), promotionctl.Cell(h.PullRequestURL), promotionctl.Cell(h.Reason)}, "\t"))
		}
	}
	_ = w.Flush()
	for _, name := range empty {
		fmt.Fprintf(out, "Stage %s has no history yet.\n", name)
	}
}

func checkOutput(output string, allowed ...string) error {
	for _, a := range allowed {
		if output == a {
			return nil
		}
	}
	return fmt.Errorf("--output %q: want one of %s", output, strings.Join(allowed, ", "))
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func digestCell(d string, wide bool) string {
	if wide {
		return promotionctl.Cell(d)
	}
	return promotionctl.Cell(promotionctl.ShortDigest(d))
}

// commitCell shortens a commit SHA the way `git log --oneline` readers expect.
func commitCell(sha string, wide bool) string {
	if !wide && len(sha) > 12 {
		sha = sha[:12]
	}
	return promotionctl.Cell(sha)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
