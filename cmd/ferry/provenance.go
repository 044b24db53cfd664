package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
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
			d, err := parseDigestArg("DIGEST", args[0])
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

// Where a digest was found in a stage's status.
const (
	whereRunning  = "running"
	whereInFlight = "in-flight"
	whereHistory  = "history"
)

// provenanceRecord is one place a digest was found.
type provenanceRecord struct {
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

type provenanceOutput struct {
	Digest  string             `json:"digest"`
	Records []provenanceRecord `json:"records"`
}

func runProvenance(ctx context.Context, out io.Writer, c client.Reader, ns string, d digestArg, output string) error {
	var list ferryv1.PromotionList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("listing promotions: %w", err)
	}
	digest, err := d.resolve(knownDigests(list.Items))
	if err != nil {
		where := fmt.Sprintf("namespace %q (use -A for every namespace)", ns)
		if ns == "" {
			where = "any namespace"
		}
		return fmt.Errorf("%w in the status of any Promotion in %s", err, where)
	}
	res := provenanceOutput{Digest: digest}
	for i := range list.Items {
		res.Records = append(res.Records, provenanceOf(&list.Items[i], digest)...)
	}
	if output == "json" {
		return writeJSON(out, res)
	}
	printProvenance(out, res, ns == "", output == "wide")
	return nil
}

// knownDigests lists every digest the Promotions' stages run, have in flight or remember.
func knownDigests(items []ferryv1.Promotion) []string {
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

// provenanceOf lists where digest appears in one Promotion, in stage order: running, in flight, then history
// newest first.
func provenanceOf(p *ferryv1.Promotion, digest string) []provenanceRecord {
	var recs []provenanceRecord
	for _, s := range stageRows(p) {
		base := provenanceRecord{Namespace: p.Namespace, Promotion: p.Name, Stage: s.Name}
		history := newestFirst(s.History)
		if s.Digest == digest {
			r := fromHistory(base, history, digest)
			r.Where, r.Phase, r.Outcome, r.Time, r.Reason = whereRunning, s.Phase, "", firstSet(s.HealthySince, s.Since), ""
			recs = append(recs, r)
		}
		if s.InFlightDigest == digest {
			r := base
			r.Where, r.Phase, r.Time, r.Source = whereInFlight, s.Phase, firstSet(s.InFlightSince, s.Since), s.InFlightSource
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
func fromHistory(base provenanceRecord, history []ferryv1.StageHistoryEntry, digest string) provenanceRecord {
	for _, h := range history {
		if h.Digest == digest {
			return historyRecord(base, h)
		}
	}
	return base
}

func historyRecord(base provenanceRecord, h ferryv1.StageHistoryEntry) provenanceRecord {
	r := base
	t := h.Time
	r.Where, r.Outcome, r.Time = whereHistory, h.Outcome, &t
	r.CommitSHA, r.Approver, r.Signers, r.Source = h.CommitSHA, h.Approver, h.Signers, h.Source
	r.PullRequestURL, r.Reason = h.PullRequestURL, h.Reason
	return r
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
		if r.Where != whereHistory {
			status = string(r.Phase)
		}
		var t string
		if r.Time != nil {
			t = formatTime(r.Time.Time)
		}
		cols := []string{cell(r.Promotion), cell(r.Stage), r.Where, cell(status), cell(t),
			commitCell(r.CommitSHA, wide), cell(r.Approver), cell(strings.Join(r.Signers, ",")),
			cell(r.PullRequestURL), cell(r.Reason)}
		if withNamespace {
			cols = append([]string{cell(r.Namespace)}, cols...)
		}
		fmt.Fprintln(w, strings.Join(cols, "\t"))
	}
	_ = w.Flush()
}

// digestArg is a digest as a person types it: sha256:<hex> or bare hex, whole or a prefix of at least
// minDigestPrefix hex characters, normalised to lower case with the sha256: prefix.
type digestArg struct {
	what   string // the flag or argument it came from, for errors
	prefix string
}

const (
	digestAlgorithm = "sha256:"
	digestHexLen    = 64
	minDigestPrefix = 12
)

// parseDigestArg validates a digest or digest prefix given as what (a flag such as "--to", or "DIGEST").
func parseDigestArg(what, s string) (digestArg, error) {
	hex := strings.ToLower(strings.TrimSpace(s))
	if alg, rest, ok := strings.Cut(hex, ":"); ok {
		if alg+":" != digestAlgorithm {
			return digestArg{}, fmt.Errorf("%s %q: only sha256 digests are supported", what, s)
		}
		hex = rest
	}
	if len(hex) < minDigestPrefix || len(hex) > digestHexLen {
		return digestArg{}, fmt.Errorf("%s %q: not a digest: want sha256: and %d hex characters, or a prefix of at least %d",
			what, s, digestHexLen, minDigestPrefix)
	}
	for _, r := range hex {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return digestArg{}, fmt.Errorf("%s %q: not a digest: %q is not a hex character", what, s, r)
		}
	}
	return digestArg{what: what, prefix: digestAlgorithm + hex}, nil
}

// resolve finds the one digest among known that the argument names. The error names the argument and, for an
// ambiguous prefix, the digests it matches.
func (d digestArg) resolve(known []string) (string, error) {
	seen := map[string]bool{}
	var matches []string
	for _, k := range known {
		if k != "" && strings.HasPrefix(k, d.prefix) && !seen[k] {
			seen[k] = true
			matches = append(matches, k)
		}
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("%s %s: digest not found", d.what, d.prefix)
	case 1:
		return matches[0], nil
	}
	sort.Strings(matches)
	return "", fmt.Errorf("%s %s: prefix matches %d digests (%s); give more hex characters",
		d.what, d.prefix, len(matches), strings.Join(matches, ", "))
}
