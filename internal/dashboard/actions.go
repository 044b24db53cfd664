package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
)

// action is a request a person can make from the dashboard: the same annotation, the same checks and the same
// API call as the ferry command of the same name.
type action struct {
	name, label string
	kind        promotionctl.RequestKind
	fits        func(p *ferryv1.Promotion, s ferryv1.StageStatus) error // why the stage's state does not fit it
	next        string                                                  // what the controller does then
}

var actions = []action{
	{name: "rollback", label: "Roll back", kind: promotionctl.RollbackRequest,
		fits: func(p *ferryv1.Promotion, s ferryv1.StageStatus) error {
			_, err := promotionctl.PreviousDigest(p.Name, s)
			return err
		},
		next: "Ferry's controller commits the older pin to Git, syncs it, records who asked and holds the stage " +
			"there until a newer digest arrives or the hold is cleared."},
	{name: "approve", label: "Approve", kind: promotionctl.ApproveRequest, fits: promotionctl.Approvable,
		next: "Ferry's controller records who approved, starts the missing-data budget again and accepts a " +
			"Marginal comparison, then removes the annotation."},
	{name: "abort", label: "Abort", kind: promotionctl.AbortRequest, fits: promotionctl.Abortable,
		next: "Ferry's controller fails the run and commits the previous digest back to Git, then removes the annotation."},
	{name: "clear-hold", label: "Clear hold", kind: promotionctl.ClearHoldRequest, fits: promotionctl.HoldReleasable,
		next: "Ferry's controller releases the hold, so that automatic promotion into the stage resumes, then " +
			"removes the annotation."},
}

func findAction(name string) (action, bool) {
	for _, a := range actions {
		if a.name == name {
			return a, true
		}
	}
	return action{}, false
}

// actionLink leads to the confirmation of one action on one stage.
type actionLink struct {
	ID, Name, Label, URL string
}

// actionsFor lists the actions that fit a stage as its status stands.
func actionsFor(p *ferryv1.Promotion, s ferryv1.StageStatus) []actionLink {
	var links []actionLink
	for _, a := range actions {
		if a.fits(p, s) != nil {
			continue
		}
		links = append(links, actionLink{ID: "action-" + a.name + "-" + s.Name, Name: a.name, Label: a.label,
			URL: confirmURL(p.Namespace, p.Name, a.name, s.Name)})
	}
	return links
}

func confirmURL(ns, name, action, stage string) string {
	return promotionURL(ns, name) + "/confirm?" + url.Values{"action": {action}, "stage": {stage}}.Encode()
}

// confirmView is the confirmation step of an action: what will be asked, and of which stage.
type confirmView struct {
	Namespace, Name, PromotionURL, PostURL string
	Action, Label, Stage                   string
	Question, Next                         string
	Targets                                []targetOption
	Problem                                string // why the action cannot be confirmed as things stand
	Error                                  string // why the request just made failed; nothing was changed
}

type targetOption struct {
	Value, Label string
	Selected     bool
}

// newConfirmView checks the action against the Promotion as it is now, as the request will again when sent.
func newConfirmView(p *ferryv1.Promotion, a action, stage, to string) confirmView {
	v := confirmView{Namespace: p.Namespace, Name: p.Name, PromotionURL: promotionURL(p.Namespace, p.Name),
		PostURL: promotionURL(p.Namespace, p.Name) + "/actions", Action: a.name, Label: a.label, Stage: stage, Next: a.next}
	s, err := promotionctl.FindStage(p, stage)
	if err != nil {
		v.Problem = err.Error()
		return v
	}
	if err := a.fits(p, s); err != nil {
		v.Problem = err.Error()
		return v
	}
	v.Question = fmt.Sprintf("%s stage %s of promotion %s?", a.label, stage, p.Name)
	if a.name == "rollback" {
		previous, _ := promotionctl.PreviousDigest(p.Name, s)
		v.Question = fmt.Sprintf("Roll back stage %s of promotion %s from %s?", stage, p.Name, promotionctl.ShortDigest(s.Digest))
		v.Targets = append(v.Targets, targetOption{Value: "", Label: "the previous digest, " + previous, Selected: to == "" || to == previous})
		for _, h := range promotionctl.RollbackTargets(s) {
			if h.Digest == previous {
				continue // offered above
			}
			v.Targets = append(v.Targets, targetOption{Value: h.Digest, Selected: to == h.Digest,
				Label: fmt.Sprintf("%s (promoted %s)", h.Digest, h.Time.UTC().Format("2006-01-02 15:04 MST"))})
		}
	}
	return v
}

// request makes the action's request with the user's client, checking it against the Promotion as it is at
// that moment; on any refusal nothing is changed. It returns what was set.
func (s *Server) request(ctx context.Context, a action, ns, name, stage, to string) (string, error) {
	var target *promotionctl.DigestArg
	if to != "" {
		if a.name != "rollback" {
			return "", fmt.Errorf("to: only a rollback returns to a chosen digest")
		}
		d, err := promotionctl.ParseDigestArg("to", to)
		if err != nil {
			return "", err
		}
		target = &d
	}
	var value string
	err := a.kind.Request(ctx, s.opts.Client, ns, name, func(p *ferryv1.Promotion) (string, error) {
		if a.name == "rollback" {
			plan, err := promotionctl.PlanRollback(p, stage, target)
			value = plan.Value
			return plan.Value, err
		}
		st, err := promotionctl.FindStage(p, stage)
		if err != nil {
			return "", err
		}
		if err := a.fits(p, st); err != nil {
			return "", err
		}
		value = stage
		return stage, nil
	})
	if err != nil {
		return "", err
	}
	return a.kind.Annotation + "=" + value, nil
}

// statusFor is the HTTP status of a failed request: the API server's own verdict when it gave one, else a
// conflict with the Promotion's state.
func statusFor(err error) int {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Code != 0 {
		return int(status.Status().Code)
	}
	return http.StatusConflict
}

// explain turns a refused request into a sentence for the page. The API server's message is kept whole: for a
// user whose role forbids the change it names the user and the verb.
func explain(err error) string {
	switch {
	case apierrors.IsForbidden(err):
		return "Forbidden: the API server refused this request for your user, so nothing was changed. " + err.Error()
	case apierrors.IsNotFound(err):
		return "Not found, so nothing was changed: " + err.Error()
	}
	return "Nothing was changed: " + err.Error()
}
