package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
)

func init() { register(newClearHoldCmd) }

// newClearHoldCmd releases the hold a rollback put on a stage, so that automatic promotion resumes: the same
// request the dashboard's "Clear hold" makes.
func newClearHoldCmd() *cobra.Command {
	var (
		kube  kubeFlags
		stage string
	)
	cmd := &cobra.Command{
		Use:   "clear-hold NAME --stage STAGE",
		Short: "Release the hold a rollback put on a stage, so that automatic promotion resumes",
		Long: "A rollback holds its stage on the digest it returned to until a newer digest arrives. clear-hold sets the\n" +
			ferryv1.ClearHoldAnnotation + " annotation; Ferry releases the hold, records who asked and removes the\n" +
			"annotation. The command refuses, changing nothing, when the stage is not held.",
		Example: "  ferry clear-hold shop --stage prod\n  ferry get shop   # which stages are held",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := kube.client()
			if err != nil {
				return err
			}
			return runClearHold(cmd.Context(), cmd.OutOrStdout(), c, ns, args[0], stage)
		},
	}
	kube.bind(cmd, false)
	cmd.Flags().StringVar(&stage, "stage", "", "stage whose hold to release (required)")
	_ = cmd.MarkFlagRequired("stage")
	return cmd
}

func runClearHold(ctx context.Context, out io.Writer, c client.Client, ns, name, stage string) error {
	var held ferryv1.StageStatus
	err := promotionctl.ClearHoldRequest.Request(ctx, c, ns, name, func(p *ferryv1.Promotion) (string, error) {
		s, err := promotionctl.FindStage(p, stage)
		if err != nil {
			return "", err
		}
		if err := promotionctl.HoldReleasable(p, s); err != nil {
			return "", err
		}
		held = s
		return stage, nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Releasing the hold of stage %s of promotion %s on %s (%s, asked by %s): set %s=%s\n", held.Name, name,
		promotionctl.ShortDigest(held.Hold.Digest), promotionctl.OrDash(held.Hold.Reason), promotionctl.OrDash(held.Hold.RequestedBy),
		ferryv1.ClearHoldAnnotation, stage)
	fmt.Fprintln(out, "Ferry's controller will release the hold, so that automatic promotion resumes, and remove the annotation.")
	return nil
}
