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

func init() {
	register(newApproveCmd)
	register(newAbortCmd)
}

// decision is a person's answer to a stage's canary or analysis, given by setting a request annotation: approve
// or abort. Both commands check the stage's state first and refuse, changing nothing, when the decision makes no
// sense there, unless --force.
type decision struct {
	kind                 promotionctl.RequestKind
	short, long, example string
	verb                 string // "Approving"
	stageHelp, forceHelp string
	check                func(p *ferryv1.Promotion, s ferryv1.StageStatus) error // why the state does not fit; --force skips it
	next                 func(s ferryv1.StageStatus) string                      // what the controller will do
}

func newApproveCmd() *cobra.Command {
	return newDecisionCmd(decision{
		kind:  promotionctl.ApproveRequest,
		short: "Let a held canary or analysis of a stage go on",
		long: "Approve the analysis of a stage that Ferry holds for a person (its phase is Held: the missing-data\n" +
			"budget or the outage deadline ran out, or a baseline comparison was Marginal) by setting the\n" +
			ferryv1.ApproveAnnotation + " annotation. Ferry records who approved, starts the missing-data budget again,\n" +
			"accepts a Marginal comparison and removes the annotation. The command refuses, changing nothing, when\n" +
			"the analysis is not Held, unless --force.",
		example:   "  ferry approve shop --stage prod\n  ferry analysis shop --stage prod   # what is held, and why",
		verb:      "Approving",
		stageHelp: "stage whose held analysis to approve (required)",
		forceHelp: "set the annotation even when the analysis is not Held",
		check:     promotionctl.Approvable,
		next: func(ferryv1.StageStatus) string {
			return "Ferry's controller will record who approved, start the missing-data budget again and accept a " +
				"Marginal comparison, then remove the annotation."
		},
	})
}

func newAbortCmd() *cobra.Command {
	return newDecisionCmd(decision{
		kind:  promotionctl.AbortRequest,
		short: "Fail the canary or analysis under way in a stage now and return it to its previous digest",
		long: "Abort the canary or analysis under way in a stage by setting the " + ferryv1.AbortAnnotation + " annotation.\n" +
			"Ferry fails the run, commits the previous digest back to Git whatever the rollback policy says, records\n" +
			"who aborted and removes the annotation. The command refuses, changing nothing, when no canary or analysis\n" +
			"is under way in the stage, unless --force.",
		example:   "  ferry abort shop --stage prod",
		verb:      "Aborting",
		stageHelp: "stage whose canary or analysis to abort (required)",
		forceHelp: "set the annotation even when no canary or analysis is under way",
		check:     promotionctl.Abortable,
		next: func(s ferryv1.StageStatus) string {
			previous := "the previous digest"
			if d := promotionctl.AbortTarget(s); d != "" {
				previous += " (" + promotionctl.ShortDigest(d) + ")"
			}
			return "Ferry's controller will fail the run and commit " + previous + " back to Git, then remove the annotation."
		},
	})
}

func newDecisionCmd(d decision) *cobra.Command {
	var (
		kube  kubeFlags
		stage string
		force bool
	)
	cmd := &cobra.Command{
		Use:     d.kind.Command + " NAME --stage STAGE",
		Short:   d.short,
		Long:    d.long,
		Example: d.example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := kube.client()
			if err != nil {
				return err
			}
			return runDecision(cmd.Context(), cmd.OutOrStdout(), c, ns, args[0], stage, force, d)
		},
	}
	kube.bind(cmd, false)
	cmd.Flags().StringVar(&stage, "stage", "", d.stageHelp)
	cmd.Flags().BoolVar(&force, "force", false, d.forceHelp)
	_ = cmd.MarkFlagRequired("stage")
	return cmd
}

func runDecision(ctx context.Context, out io.Writer, c client.Client, ns, name, stage string, force bool, d decision) error {
	var (
		p        *ferryv1.Promotion
		s        ferryv1.StageStatus
		overrode error // what --force overrode
	)
	err := d.kind.Request(ctx, c, ns, name, func(got *ferryv1.Promotion) (string, error) {
		var err error
		if s, err = promotionctl.FindStage(got, stage); err != nil {
			return "", err
		}
		p, overrode = got, nil
		if err := d.check(got, s); err != nil {
			if !force {
				return "", fmt.Errorf("%w (--force sets %s anyway)", err, d.kind.Annotation)
			}
			overrode = err
		}
		return stage, nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s %s in stage %s of promotion %s: set %s=%s\n", d.verb, runOf(p, s), s.Name, p.Name,
		d.kind.Annotation, stage)
	if overrode != nil {
		fmt.Fprintf(out, "Set with --force although %v.\n", overrode)
	}
	fmt.Fprintln(out, d.next(s))
	fmt.Fprintf(out, "Follow it with: ferry analysis %s --stage %s\n", p.Name, s.Name)
	return nil
}

// runOf names what a decision is about: "the canary of sha256:… at step 2/3 (50%)" or "the analysis of sha256:…".
func runOf(p *ferryv1.Promotion, s ferryv1.StageStatus) string {
	a := s.Analysis
	if a == nil {
		if s.Phase == ferryv1.PhaseCanary {
			return "the canary of " + promotionctl.ShortDigest(s.InFlightDigest)
		}
		return "the analysis"
	}
	if a.Step != nil {
		return fmt.Sprintf("the canary of %s at step %s (%d%%, analysis %s)", promotionctl.ShortDigest(a.Digest), promotionctl.StepOf(p, s.Name, a),
			a.Weight, promotionctl.OrDash(string(a.Phase)))
	}
	return fmt.Sprintf("the analysis of %s (%s)", promotionctl.ShortDigest(a.Digest), promotionctl.OrDash(string(a.Phase)))
}
