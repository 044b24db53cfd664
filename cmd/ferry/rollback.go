package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
)

func init() { register(newRollbackCmd) }

// rollbackPollInterval is how often `ferry rollback --wait` reads the Promotion: often enough that progress
// lines keep up with the controller, rarely enough to cost the API server nothing.
const rollbackPollInterval = 500 * time.Millisecond

type rollbackOptions struct {
	stage   string
	to      string
	wait    bool
	timeout time.Duration
}

func newRollbackCmd() *cobra.Command {
	var (
		kube kubeFlags
		o    rollbackOptions
	)
	cmd := &cobra.Command{
		Use:   "rollback NAME --stage STAGE [--to sha256:…]",
		Short: "Roll a stage back to its previous digest, or to a digest from its history, through Git",
		Long: "Ask Ferry to roll one stage back by setting the " + ferryv1.RollbackAnnotation + " annotation on the\n" +
			"Promotion. Without --to the stage returns to the newest promoted digest before the one it runs; with --to\n" +
			"it returns to that digest, which must have been promoted in the stage (see `ferry history`; a prefix of at\n" +
			"least 12 hex characters is enough). Ferry commits the older pin to Git, syncs it, records who asked, and holds the\n" +
			"stage there until a newer digest arrives. The command checks everything first and changes nothing on bad\n" +
			"input; it refuses while another rollback is pending. It then waits (--wait) until the controller reports\n" +
			"the stage rolled back, printing each step, and fails with the controller's reason if it refuses.",
		Example: "  ferry rollback shop --stage prod\n  ferry rollback shop --stage prod --to sha256:4f1c2a9be0d7 --timeout 20m",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var to *promotionctl.DigestArg
			if o.to != "" {
				d, err := promotionctl.ParseDigestArg("--to", o.to)
				if err != nil {
					return err
				}
				to = &d
			}
			if o.timeout <= 0 {
				return fmt.Errorf("--timeout %s: must be positive", o.timeout)
			}
			c, ns, err := kube.client()
			if err != nil {
				return err
			}
			return runRollback(cmd.Context(), cmd.OutOrStdout(), c, ns, args[0], o, to)
		},
	}
	kube.bind(cmd, false)
	f := cmd.Flags()
	f.StringVar(&o.stage, "stage", "", "stage to roll back (required)")
	f.StringVar(&o.to, "to", "", "digest from the stage's history to return to (default: the previous digest)")
	f.BoolVar(&o.wait, "wait", true, "wait until the controller has rolled the stage back")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "how long --wait waits")
	_ = cmd.MarkFlagRequired("stage")
	return cmd
}

// rollbackRequest is what `ferry rollback` asked for, and what it needs to recognise the controller's answer.
type rollbackRequest struct {
	namespace, name, stage string
	from, target           string
	value                  string // the annotation's value
	explicit               bool   // --to named the target; otherwise the controller's choice wins
	history                map[historyKey]bool
	// staleStall is the controller's refusal of an earlier request, if its Stalled condition still says so:
	// it is no answer to this request.
	staleStall *metav1.Condition
}

type historyKey struct {
	digest string
	time   time.Time
}

func runRollback(ctx context.Context, out io.Writer, c client.Client, ns, name string, o rollbackOptions, to *promotionctl.DigestArg) error {
	req, err := requestRollback(ctx, c, ns, name, o.stage, to)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Rolling back stage %s of promotion %s from %s to %s: set %s=%s\n",
		req.stage, req.name, promotionctl.ShortDigest(req.from), req.target, ferryv1.RollbackAnnotation, req.value)
	if !o.wait {
		fmt.Fprintf(out, "Not waiting (--wait=false); follow it with: ferry history %s --stage %s\n", req.name, req.stage)
		return nil
	}
	return waitForRollback(ctx, out, c, req, o.timeout)
}

// requestRollback validates the request against the Promotion as it is now and sets the annotation (see
// promotionctl.RequestKind.Request).
func requestRollback(ctx context.Context, c client.Client, ns, name, stage string, to *promotionctl.DigestArg) (*rollbackRequest, error) {
	var req *rollbackRequest
	err := promotionctl.RollbackRequest.Request(ctx, c, ns, name, func(p *ferryv1.Promotion) (string, error) {
		var err error
		if req, err = planRollback(p, stage, to); err != nil {
			return "", err
		}
		return req.value, nil
	})
	if err != nil {
		return nil, err
	}
	return req, nil
}

// planRollback decides the target digest and the annotation's value (promotionctl.PlanRollback), or says why the
// rollback cannot happen, and keeps what it needs to recognise the controller's answer.
func planRollback(p *ferryv1.Promotion, stage string, to *promotionctl.DigestArg) (*rollbackRequest, error) {
	plan, err := promotionctl.PlanRollback(p, stage, to)
	if err != nil {
		return nil, err
	}
	req := &rollbackRequest{namespace: p.Namespace, name: p.Name, stage: stage, from: plan.From, target: plan.Target,
		value: plan.Value, explicit: plan.Explicit, history: map[historyKey]bool{}}
	for _, h := range plan.Stage.History {
		req.history[historyKey{h.Digest, h.Time.UTC()}] = true
	}
	if c := rollbackStall(p); c != nil {
		req.staleStall = c.DeepCopy()
	}
	return req, nil
}

// waitForRollback follows the Promotion until the controller reports the stage rolled back, printing a line for
// every change it sees.
func waitForRollback(ctx context.Context, out io.Writer, c client.Reader, req *rollbackRequest, timeout time.Duration) error {
	w := &rollbackWatcher{req: req, out: out}
	err := wait.PollUntilContextTimeout(ctx, rollbackPollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		var p ferryv1.Promotion
		err := c.Get(ctx, types.NamespacedName{Namespace: req.namespace, Name: req.name}, &p)
		switch {
		case apierrors.IsNotFound(err):
			return false, fmt.Errorf("promotion %q was deleted while waiting for the rollback", req.name)
		case err != nil && ctx.Err() != nil:
			return false, nil // the deadline cut the read short: report the timeout, not the read
		case err != nil:
			// A blip of the API server must not abandon a rollback that is under way; keep reading.
			w.print(fmt.Sprintf("reading promotion %q: %v (retrying)", req.name, err))
			return false, nil
		}
		return w.observe(&p)
	})
	if err != nil && ctx.Err() == nil && wait.Interrupted(err) {
		return w.timedOut(timeout)
	}
	return err
}

type rollbackWatcher struct {
	req     *rollbackRequest
	out     io.Writer
	last    string
	pending bool
}

// observe reports whether the rollback is done, or an error when the controller reports it failed.
func (w *rollbackWatcher) observe(p *ferryv1.Promotion) (bool, error) {
	req := w.req
	s := stageStatus(p, req.stage)
	w.pending = p.Annotations[ferryv1.RollbackAnnotation] == req.value
	w.progress(s)
	if w.pending {
		return false, w.refused(p)
	}
	// The controller records the rollback in status before it removes the annotation, so from here on the
	// status tells the whole story. Without --to the controller's choice, recorded as the hold, is the target.
	if !req.explicit && s.Hold != nil && s.Hold.Digest != "" && s.Hold.Digest != req.target {
		fmt.Fprintf(w.out, "The controller chose %s as the previous digest.\n", s.Hold.Digest)
		req.target = s.Hold.Digest
	}
	if h := w.newEntry(s); h != nil && h.Outcome != ferryv1.OutcomePromoted && h.Outcome != ferryv1.OutcomeRolledBack {
		return false, fmt.Errorf("rolling back stage %s of promotion %s to %s failed: %s: %s",
			req.stage, req.name, req.target, h.Outcome, promotionctl.Cell(h.Reason))
	}
	if s.Phase == ferryv1.PhaseFailed && (s.InFlightDigest == req.target || s.Digest == req.target) {
		return false, fmt.Errorf("rolling back stage %s of promotion %s to %s failed: %s",
			req.stage, req.name, req.target, promotionctl.Cell(s.Message))
	}
	if s.Digest == req.target && (s.Phase == ferryv1.PhaseRolledBack || s.Phase == ferryv1.PhasePromoted || w.newEntry(s) != nil) {
		fmt.Fprintf(w.out, "Stage %s of promotion %s rolled back to %s.\n", req.stage, req.name, req.target)
		return true, nil
	}
	if s.Hold != nil && s.Hold.Digest != "" && s.Hold.Digest != req.target {
		return false, fmt.Errorf("the controller recorded a rollback of stage %s to %s, not %s: another request "+
			"replaced this one", req.stage, s.Hold.Digest, req.target)
	}
	if !w.underWay(s) {
		return false, fmt.Errorf("the %s annotation was removed but stage %s records no rollback to %s: "+
			"was the request cancelled by hand?", ferryv1.RollbackAnnotation, req.stage, req.target)
	}
	return false, nil
}

// refused returns the controller's reason when it stalled on this rollback request: it leaves the annotation in
// place and says why in the Stalled condition, whose message starts with the field at fault.
func (w *rollbackWatcher) refused(p *ferryv1.Promotion) error {
	c := rollbackStall(p)
	if c == nil {
		return nil
	}
	if old := w.req.staleStall; old != nil && old.Message == c.Message && old.LastTransitionTime.Equal(&c.LastTransitionTime) {
		return nil // not reconciled since the request: the condition still describes an earlier one
	}
	return fmt.Errorf("the controller refused the rollback (%s): %s; remove the annotation (kubectl annotate "+
		"promotion %s %s-) and try again", c.Reason, c.Message, p.Name, ferryv1.RollbackAnnotation)
}

// rollbackStall is the Stalled condition when the controller stalled on a rollback annotation.
func rollbackStall(p *ferryv1.Promotion) *metav1.Condition {
	c := apimeta.FindStatusCondition(p.Status.Conditions, ferryv1.ConditionStalled)
	if c == nil || c.Status != metav1.ConditionTrue || !strings.HasPrefix(c.Message, rollbackField) {
		return nil
	}
	return c
}

// rollbackField is how the controller's messages name the rollback annotation.
const rollbackField = "metadata.annotations[" + ferryv1.RollbackAnnotation + "]"

// newEntry is the newest history entry for the target that was not there when the rollback was requested.
func (w *rollbackWatcher) newEntry(s ferryv1.StageStatus) *ferryv1.StageHistoryEntry {
	for _, h := range promotionctl.NewestFirst(s.History) {
		if h.Digest == w.req.target && !w.req.history[historyKey{h.Digest, h.Time.UTC()}] {
			return &h
		}
	}
	return nil
}

// underWay reports whether the stage's status shows the rollback recorded or in progress.
func (w *rollbackWatcher) underWay(s ferryv1.StageStatus) bool {
	t := w.req.target
	if s.Hold != nil && s.Hold.Digest != "" {
		return s.Hold.Digest == t
	}
	return s.InFlightDigest == t || s.Digest == t || (s.Phase == ferryv1.PhaseRollingBack && s.InFlightDigest == "")
}

// progress prints the stage's state whenever it changes.
func (w *rollbackWatcher) progress(s ferryv1.StageStatus) {
	line := fmt.Sprintf("%s: %s", w.req.stage, promotionctl.OrDash(string(s.Phase)))
	if s.Digest != "" {
		line += ", running " + promotionctl.ShortDigest(s.Digest)
	}
	if s.InFlightDigest != "" {
		line += ", in flight " + promotionctl.ShortDigest(s.InFlightDigest)
	}
	if w.pending {
		line += ", waiting for the controller to pick up the request"
	}
	if s.Message != "" {
		line += ": " + promotionctl.Cell(s.Message)
	}
	w.print(line)
}

// print prints a line unless it repeats the previous one.
func (w *rollbackWatcher) print(line string) {
	if line != w.last {
		fmt.Fprintln(w.out, line)
		w.last = line
	}
}

func (w *rollbackWatcher) timedOut(timeout time.Duration) error {
	if w.pending {
		return fmt.Errorf("timed out after %s: the controller has not picked up the rollback request (is "+
			"ferry-controller running?); %s stays set and is acted on when the controller runs",
			timeout, ferryv1.RollbackAnnotation)
	}
	return fmt.Errorf("timed out after %s waiting for stage %s to run %s; last seen: %s",
		timeout, w.req.stage, w.req.target, w.last)
}

// stageStatus is the recorded status of a stage, empty when the controller has recorded none.
func stageStatus(p *ferryv1.Promotion, name string) ferryv1.StageStatus {
	for _, s := range p.Status.Stages {
		if s.Name == name {
			return s
		}
	}
	return ferryv1.StageStatus{Name: name}
}
