package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
)

func init() { register(newGetCmd) }

func newGetCmd() *cobra.Command {
	var kube kubeFlags
	cmd := &cobra.Command{
		Use:   "get [NAME]",
		Short: "Show Promotions: each stage's phase and digest, and whether the Promotion is Ready",
		Long: "Show Promotions with one line per stage: its phase, the digest it runs, and the Promotion's Ready\n" +
			"condition. A stage in a canary shows its step and weight (\"Canary 2/3 (50%)\"), and a stage with an\n" +
			"analysis its verdict (\"analysis Held: 4 of 12 missing\"; `ferry analysis` shows the details). With NAME,\n" +
			"also print every condition with its message, which says what to fix.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := kube.client()
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			if kube.allNamespaces {
				ns = ""
			}
			return runGet(cmd.Context(), cmd.OutOrStdout(), c, ns, name)
		},
	}
	kube.bind(cmd, true)
	return cmd
}

// runGet prints one Promotion (name set) or every Promotion in ns ("" for all namespaces).
func runGet(ctx context.Context, out io.Writer, c client.Reader, ns, name string) error {
	var items []ferryv1.Promotion
	if name != "" {
		var p ferryv1.Promotion
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("promotion %q not found in namespace %q", name, ns)
			}
			return err
		}
		items = []ferryv1.Promotion{p}
	} else {
		var list ferryv1.PromotionList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		items = list.Items
	}
	if len(items) == 0 {
		where := "namespace " + ns
		if ns == "" {
			where = "any namespace"
		}
		fmt.Fprintf(out, "No Promotions found in %s.\n", where)
		return nil
	}
	printStages(out, items, ns == "")
	if name != "" {
		printConditions(out, &items[0])
	}
	return nil
}

// printStages prints one row per stage; the Promotion's own columns appear on its first row only.
func printStages(out io.Writer, items []ferryv1.Promotion, withNamespace bool) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	header := "PROMOTION\tREADY\tREASON\tSTAGE\tPHASE\tDIGEST\tSINCE"
	if withNamespace {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(w, header)
	for i := range items {
		p := &items[i]
		ready, reason := "Unknown", ""
		if c := apimeta.FindStatusCondition(p.Status.Conditions, ferryv1.ConditionReady); c != nil {
			ready, reason = string(c.Status), c.Reason
		}
		for j, stage := range promotionctl.StageRows(p) {
			cols := []string{"", "", ""}
			if j == 0 {
				cols = []string{p.Name, ready, reason}
			}
			if withNamespace {
				ns := ""
				if j == 0 {
					ns = p.Namespace
				}
				cols = append([]string{ns}, cols...)
			}
			cols = append(cols, stage.Name, promotionctl.PhaseSummary(p, stage), promotionctl.ShortDigest(stage.Digest), since(stage))
			fmt.Fprintln(w, strings.Join(cols, "\t"))
		}
	}
	_ = w.Flush()
}

func printConditions(out io.Writer, p *ferryv1.Promotion) {
	if len(p.Status.Conditions) == 0 {
		fmt.Fprintln(out, "\nNo conditions yet: the controller has not reconciled this Promotion.")
		return
	}
	fmt.Fprintln(out, "\nConditions:")
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(out, "  %s=%s (%s): %s\n", c.Type, c.Status, c.Reason, c.Message)
	}
}

func since(s ferryv1.StageStatus) string {
	if s.Since == nil {
		return "-"
	}
	return time.Since(s.Since.Time).Round(time.Second).String()
}
