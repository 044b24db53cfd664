package main

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
)

// inFlight is the digest a stage is taking now: it has no history entry until its time in the stage ends (a
// soak can last days), so `ferry history` shows it first, apart from the entries.
type inFlight struct {
	Digest string             `json:"digest"`
	Phase  ferryv1.StagePhase `json:"phase,omitempty"`
	Since  *metav1.Time       `json:"since,omitempty"`
	Source string             `json:"source,omitempty"`
	// Approver is who merged the approving pull request, "pending" while it is open, or "automatic".
	Approver       string   `json:"approver"`
	Signers        []string `json:"signers,omitempty"`
	PullRequestURL string   `json:"pullRequestURL,omitempty"`
}

// inFlightOf describes the digest stage s has in flight, or nil. The signers are the source candidate's when it
// is the same digest (they were verified for it).
func inFlightOf(p *ferryv1.Promotion, s ferryv1.StageStatus) *inFlight {
	if s.InFlightDigest == "" {
		return nil
	}
	f := &inFlight{Digest: s.InFlightDigest, Phase: s.Phase, Since: s.InFlightSince, Source: s.InFlightSource, Approver: "automatic"}
	if f.Since == nil {
		f.Since = s.Since
	}
	if pr := s.PullRequest; pr != nil && pr.Digest == s.InFlightDigest {
		f.PullRequestURL, f.Approver = pr.URL, pr.Approver
		if f.Approver == "" {
			f.Approver = "pending"
		}
	}
	if c := p.Status.Candidate; c != nil && c.Digest == s.InFlightDigest && c.Verified {
		f.Signers = c.Signers
	}
	return f
}

// inFlightRow is the table row of f: its phase stands in the OUTCOME column, marked as in flight, and its source
// in the REASON column.
func inFlightRow(stage string, f *inFlight, wide bool) string {
	var since string
	if f.Since != nil {
		since = formatTime(f.Since.Time)
	}
	return strings.Join([]string{promotionctl.Cell(stage), promotionctl.Cell(since), digestCell(f.Digest, wide),
		promotionctl.Cell("in-flight:" + string(f.Phase)), "-", promotionctl.Cell(f.Approver),
		promotionctl.Cell(strings.Join(f.Signers, ",")), promotionctl.Cell(f.PullRequestURL),
		promotionctl.Cell("from " + f.Source)}, "\t")
}
