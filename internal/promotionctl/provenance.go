package promotionctl

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// Where a digest was found in a stage's status.
const (
	WhereRunning  = "running"
	WhereInFlight = "in-flight"
	WhereHistory  = "history"
)

// ProvenanceRecord is one place a digest was found.
type ProvenanceRecord struct {
	Namespace      string             `json:"namespace"`
	Promotion      string             `json:"promotion"`
	Stage          string             `json:"stage"`
	Where          string             `json:"where"`
	Phase          ferryv1.StagePhase `json:"phase,omitempty"`
	Outcome        ferryv1.Outcome    `json:"outcome,omitempty"`
	Time           *metav1.Time       `json:"time,omitempty"`
	CommitSHA      string             `json:"commitSHA,omitempty"`
	Approver       string             `json:"approver,omitempty"`
	Signers        []string           `json:"signers,omitempty"`
	Source         string             `json:"source,omitempty"`
	PullRequestURL string             `json:"pullRequestURL,omitempty"`
	Reason         string             `json:"reason,omitempty"`
}

// KnownDigests lists every digest the Promotions' stages run, have in flight or remember.
func KnownDigests(items []ferryv1.Promotion) []string {
	var all []string
	for i := range items {
		for _, s := range items[i].Status.Stages {
			all = append(all, s.Digest, s.InFlightDigest)
			for _, h := range s.History {
				all = append(all, h.Digest)
			}
		}
	}
	return all
}

// Provenance lists where digest appears in one Promotion, in stage order: running, in flight, then history
// newest first.
func Provenance(p *ferryv1.Promotion, digest string) []ProvenanceRecord {
	var recs []ProvenanceRecord
	for _, s := range StageRows(p) {
		base := ProvenanceRecord{Namespace: p.Namespace, Promotion: p.Name, Stage: s.Name}
		history := NewestFirst(s.History)
		if s.Digest == digest {
			r := fromHistory(base, history, digest)
			r.Where, r.Phase, r.Outcome, r.Time, r.Reason = WhereRunning, s.Phase, "", firstSet(s.HealthySince, s.Since), ""
			recs = append(recs, r)
		}
		if s.InFlightDigest == digest {
			r := base
			r.Where, r.Phase, r.Time, r.Source = WhereInFlight, s.Phase, firstSet(s.InFlightSince, s.Since), s.InFlightSource
			if s.PullRequest != nil && s.PullRequest.Digest == digest {
				r.PullRequestURL = s.PullRequest.URL
			}
			recs = append(recs, r)
		}
		for _, h := range history {
			if h.Digest == digest {
				recs = append(recs, historyRecord(base, h))
			}
		}
	}
	return recs
}

// firstSet returns the first time that is set: the most precise one the controller recorded.
func firstSet(times ...*metav1.Time) *metav1.Time {
	for _, t := range times {
		if t != nil {
			return t
		}
	}
	return nil
}

// fromHistory fills a running record with the provenance of the newest history entry of the same digest: the
// commit, approval and signers that put it there.
func fromHistory(base ProvenanceRecord, history []ferryv1.StageHistoryEntry, digest string) ProvenanceRecord {
	for _, h := range history {
		if h.Digest == digest {
			return historyRecord(base, h)
		}
	}
	return base
}

func historyRecord(base ProvenanceRecord, h ferryv1.StageHistoryEntry) ProvenanceRecord {
	r := base
	t := h.Time
	r.Where, r.Outcome, r.Time = WhereHistory, h.Outcome, &t
	r.CommitSHA, r.Approver, r.Signers, r.Source = h.CommitSHA, h.Approver, h.Signers, h.Source
	r.PullRequestURL, r.Reason = h.PullRequestURL, h.Reason
	return r
}
