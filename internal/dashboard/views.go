package dashboard

import (
	"fmt"
	"net/url"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
)

// promotionRow is one Promotion on the list page.
type promotionRow struct {
	Namespace, Name, URL string
	Image                string
	Ready                conditionView
	Stalled              *conditionView
	Drifted              *conditionView
	Stages               []stageCell
}

type conditionView struct {
	Type, Status, Reason, Message string
}

// stageCell is what the list shows of a stage, and what each stage's section on the Promotion page starts with.
type stageCell struct {
	Name, Phase, Summary, Message string
	Digest                        digestView
	InFlight                      *digestView
	InFlightStep                  string
	Hold                          *holdView
	PullRequest                   *pullRequestView
	Since                         timeView
	Healthy                       bool
}

type digestView struct{ Full, Short string }

type holdView struct {
	Digest              digestView
	Reason, RequestedBy string
	Since               timeView
}

type pullRequestView struct {
	Number      int64
	URL, Branch string
	Digest      digestView
	Approver    string
}

// timeView is a moment shown as an age ("5m ago") with the exact time for machines and tooltips.
type timeView struct{ Age, RFC3339 string }

func promotionURL(ns, name string) string {
	return "/promotions/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
}

func newPromotionRow(p *ferryv1.Promotion, now time.Time) promotionRow {
	row := promotionRow{Namespace: p.Namespace, Name: p.Name, URL: promotionURL(p.Namespace, p.Name),
		Image: p.Spec.Source.Image, Ready: readyOf(p)}
	if c := apimeta.FindStatusCondition(p.Status.Conditions, ferryv1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		v := condition(*c)
		row.Stalled = &v
	}
	if c := apimeta.FindStatusCondition(p.Status.Conditions, ferryv1.ConditionDrifted); c != nil && c.Status == metav1.ConditionTrue {
		v := condition(*c)
		row.Drifted = &v
	}
	for _, s := range promotionctl.StageRows(p) {
		row.Stages = append(row.Stages, newStageCell(p, s, now))
	}
	return row
}

func readyOf(p *ferryv1.Promotion) conditionView {
	if c := apimeta.FindStatusCondition(p.Status.Conditions, ferryv1.ConditionReady); c != nil {
		return condition(*c)
	}
	return conditionView{Type: ferryv1.ConditionReady, Status: "Unknown", Message: "The controller has not reconciled this Promotion yet."}
}

func condition(c metav1.Condition) conditionView {
	return conditionView{Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message}
}

func newStageCell(p *ferryv1.Promotion, s ferryv1.StageStatus, now time.Time) stageCell {
	c := stageCell{Name: s.Name, Phase: string(s.Phase), Summary: promotionctl.PhaseSummary(p, s), Message: s.Message,
		Digest: digest(s.Digest), Since: timeOf(s.Since, now), Healthy: s.HealthySince != nil}
	if s.Phase == promotionctl.NoPhase {
		c.Phase, c.Summary = "", "not started"
	}
	if s.InFlightDigest != "" {
		d := digest(s.InFlightDigest)
		c.InFlight, c.InFlightStep = &d, string(s.Phase)
	}
	if h := s.Hold; h != nil {
		c.Hold = &holdView{Digest: digest(h.Digest), Reason: h.Reason, RequestedBy: h.RequestedBy, Since: timeOf(h.Since, now)}
	}
	if pr := s.PullRequest; pr != nil {
		c.PullRequest = &pullRequestView{Number: pr.Number, URL: pr.URL, Branch: pr.Branch, Digest: digest(pr.Digest),
			Approver: pr.Approver}
	}
	return c
}

func digest(d string) digestView {
	if d == "" {
		return digestView{}
	}
	return digestView{Full: d, Short: promotionctl.ShortDigest(d)}
}

func timeOf(t *metav1.Time, now time.Time) timeView {
	if t == nil || t.IsZero() {
		return timeView{}
	}
	return timeView{Age: age(now.Sub(t.Time)) + " ago", RFC3339: t.UTC().Format(time.RFC3339)}
}

// age shows a duration the way people say it: 45s, 12m, 5h, 3d.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s" // the controller's clock is ahead of ours
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
