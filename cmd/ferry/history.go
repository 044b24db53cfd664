package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
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
			"can return to. -o wide prints full digests and commits; -o json prints everything.",
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
	Name    string                      `json:"name"`
	Phase   ferryv1.StagePhase          `json:"phase,omitempty"`
	Digest  string                      `json:"digest,omitempty"`
	History []ferryv1.StageHistoryEntry `json:"history"`
}

type historyOutput struct {
	Namespace string         `json:"namespace"`
	Promotion string         `json:"promotion"`
	Stages    []stageHistory `json:"stages"`
}

func runHistory(ctx context.Context, out io.Writer, c client.Reader, ns, name, stage, output string) error {
	p, err := getPromotion(ctx, c, ns, name)
	if err != nil {
		return err
	}
	rows := stageRows(p)
	if stage != "" {
		s, err := findStage(p, stage)
		if err != nil {
			return err
		}
		rows = []ferryv1.StageStatus{s}
	}
	res := historyOutput{Namespace: p.Namespace, Promotion: p.Name}
	for _, s := range rows {
		res.Stages = append(res.Stages, stageHistory{Name: s.Name, Phase: s.Phase, Digest: s.Digest,
			History: newestFirst(s.History)})
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
		if len(s.History) == 0 {
			empty = append(empty, s.Name)
		}
		for _, h := range s.History {
			fmt.Fprintln(w, strings.Join([]string{cell(s.Name), formatTime(h.Time.Time), digestCell(h.Digest, wide),
				cell(string(h.Outcome)), commitCell(h.CommitSHA, wide), cell(h.Approver),
				cell(strings.Join(h.Signers, ",")), cell(h.PullRequestURL), cell(h.Reason)}, "\t"))
		}
	}
	_ = w.Flush()
	for _, name := range empty {
		fmt.Fprintf(out, "Stage %s has no history yet.\n", name)
	}
}

// getPromotion reads one Promotion, with an error that names it and its namespace when it does not exist.
func getPromotion(ctx context.Context, c client.Reader, ns, name string) (*ferryv1.Promotion, error) {
	var p ferryv1.Promotion
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("promotion %q not found in namespace %q", name, ns)
		}
		return nil, fmt.Errorf("reading promotion %q in namespace %q: %w", name, ns, err)
	}
	return &p, nil
}

// findStage returns the status of the stage the spec declares under name (empty when the controller has not
// recorded it yet), or an error for --stage that lists the stages there are.
func findStage(p *ferryv1.Promotion, name string) (ferryv1.StageStatus, error) {
	var names []string
	for _, s := range stageRows(p) {
		if s.Name == name {
			if s.Phase == "-" { // stageRows' placeholder for a stage without status
				s.Phase = ""
			}
			return s, nil
		}
		names = append(names, s.Name)
	}
	return ferryv1.StageStatus{}, fmt.Errorf("--stage %q: promotion %q has no such stage (stages: %s)",
		name, p.Name, strings.Join(names, ", "))
}

// newestFirst orders history by time, newest first. Status already keeps that order; sorting guards output
// against a hand-edited status.
func newestFirst(h []ferryv1.StageHistoryEntry) []ferryv1.StageHistoryEntry {
	out := append([]ferryv1.StageHistoryEntry{}, h...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time.Time) })
	return out
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

// cell makes a status value safe for one table cell: status text can come from outside (a forge user name, a
// registry error), so control characters that would break the table or drive the terminal become spaces.
func cell(s string) string {
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

func digestCell(d string, wide bool) string {
	if wide {
		return cell(d)
	}
	return cell(shortDigest(d))
}

// commitCell shortens a commit SHA the way `git log --oneline` readers expect.
func commitCell(sha string, wide bool) string {
	if !wide && len(sha) > 12 {
		sha = sha[:12]
	}
	return cell(sha)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
