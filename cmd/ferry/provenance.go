package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
)

func init() { register(newProvenanceCmd) }

func newProvenanceCmd() *cobra.Command {
	var (
		kube   kubeFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "provenance DIGEST",
		Short: "Show every Promotion and stage where a digest runs, is in flight or ran, with its provenance",
		Long: "Answer \"where did this digest run, who approved it and who signed it?\" from the Promotions' status\n" +
			"alone (one List call): each stage that runs the digest now, has it in flight, or lists it in its history,\n" +
			"with Ferry's commit, the pull request, the approver, the verified signers, the time and the outcome.\n" +
			"DIGEST is sha256:<64 hex>, or a prefix of at least 12 hex characters that matches only one digest.",
		Example: "  ferry provenance sha256:4f1c2a9be0d7 -A\n  ferry provenance sha256:4f1c… -n shop -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "wide", "json"); err != nil {
				return err
			}
			d, err := promotionctl.ParseDigestArg("DIGEST", args[0])
			if err != nil {
				return err
			}
			c, ns, err := kube.client()
			if err != nil {
				return err
			}
			if kube.allNamespaces {
				ns = ""
			}
			return runProvenance(cmd.Context(), cmd.OutOrStdout(), c, ns, d, output)
		},
	}
	kube.bind(cmd, true)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, wide or json")
	return cmd
}

type provenanceOutput struct {
	Digest  string                          `json:"digest"`
	Records []promotionctl.ProvenanceRecord `json:"records"`
}

func runProvenance(ctx context.Context, out io.Writer, c client.Reader, ns string, d promotionctl.DigestArg, output string) error {
	var list ferryv1.PromotionList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("listing promotions: %w", err)
	}
	digest, err := d.Resolve(promotionctl.KnownDigests(list.Items))
	if err != nil {
		where := fmt.Sprintf("namespace %q (use -A for every namespace)", ns)
		if ns == "" {
			where = "any namespace"
		}
		return fmt.Errorf("%w in the status of any Promotion in %s", err, where)
	}
	res := provenanceOutput{Digest: digest}
	for i := range list.Items {
		res.Records = append(res.Records, promotionctl.Provenance(&list.Items[i], digest)...)
	}
	if output == "json" {
		return writeJSON(out, res)
	}
	printProvenance(out, res, ns == "", output == "wide")
	return nil
}

func printProvenance(out io.Writer, res provenanceOutput, withNamespace, wide bool) {
	fmt.Fprintf(out, "Digest %s\n\n", res.Digest)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	header := "PROMOTION\tSTAGE\tWHERE\tSTATUS\tTIME\tCOMMIT\tAPPROVER\tSIGNERS\tPULL REQUEST\tREASON"
	if withNamespace {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(w, header)
	for _, r := range res.Records {
		status := string(r.Outcome)
		if r.Where != promotionctl.WhereHistory {
			status = string(r.Phase)
		}
		var t string
		if r.Time != nil {
			t = formatTime(r.Time.Time)
		}
		cols := []string{promotionctl.Cell(r.Promotion), promotionctl.Cell(r.Stage), r.Where, promotionctl.Cell(status), promotionctl.Cell(t),
			commitCell(r.CommitSHA, wide), promotionctl.Cell(r.Approver), promotionctl.Cell(strings.Join(r.Signers, ",")),
			promotionctl.Cell(r.PullRequestURL), promotionctl.Cell(r.Reason)}
		if withNamespace {
			cols = append([]string{promotionctl.Cell(r.Namespace)}, cols...)
		}
		fmt.Fprintln(w, strings.Join(cols, "\t"))
	}
	_ = w.Flush()
}
