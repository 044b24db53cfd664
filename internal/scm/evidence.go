package scm

import (
	"fmt"
	"strings"
	"time"
)

// EvidenceMarker is the hidden mark of Ferry's one evidence comment on a pull request (see Reporter).
const EvidenceMarker = "<!-- ferry:evidence -->"

// Evidence is what a person approving a digest should see: who signed it and under which policy, what its
// attestations say, and how the previous stage fared with it. Callers fill it from what Ferry verified; nearly
// all of it comes from outside (signatures, attestations), so every value is rendered through code().
type Evidence struct {
	// VerifiedIn is the repository@digest Ferry verified, in the stage's registry.
	VerifiedIn string
	VerifiedAt time.Time
	// Signers are the accepted signers, as people name them ("key release (SHA256:…)").
	Signers      []string
	Policy       PolicySummary
	Attestations []AttestationEvidence
	// Upstream is the previous stage's result for the digest; nil for the first stage.
	Upstream *UpstreamResult
}

// PolicySummary is the verification policy that accepted the signers.
type PolicySummary struct {
	Keys      []string // key names
	Keyless   []string // "subject … (issuer …)"
	Threshold int
	Required  []string // required attestation predicate types
}

// AttestationEvidence is one accepted attestation, summarised.
type AttestationEvidence struct {
	PredicateType    string
	Signer           string
	BuilderID        string
	SourceRepository string
	SourceCommit     string
	SBOMFormat       string
	Packages         int // -1 when it is no SBOM
}

// UpstreamResult is how the previous stage ran the digest before it was offered here.
type UpstreamResult struct {
	Stage string
	// Commit is the previous stage's commit that pinned the digest; CommitURL its page on the forge, when
	// one can be built (see CommitURL).
	Commit, CommitURL string
	HealthySince      time.Time
	PromotedAt        time.Time
	// Health says how it ran, Verdict what its canary or analysis concluded ("" when none ran).
	Health, Verdict string
}

// RenderComment is Ferry's evidence comment: the marker, Ferry's current verdict and the evidence.
func RenderComment(c Change, status CommitStatus) string {
	var b strings.Builder
	b.WriteString(EvidenceMarker + "\n")
	fmt.Fprintf(&b, "**Ferry: %s** — %s\n\n", status.State, plain(status.Description))
	fmt.Fprintf(&b, "Promotion %s, stage %s, digest %s.\n", code(c.Promotion), code(c.Stage), code(c.Digest))
	writeEvidence(&b, c.Evidence)
	return bounded(b.String())
}

// writeEvidence appends the evidence sections; nothing when there is no evidence.
func writeEvidence(b *strings.Builder, e *Evidence) {
	if e == nil {
		return
	}
	b.WriteString("\n### Signatures\n\n")
	fmt.Fprintf(b, "Verified in %s", code(e.VerifiedIn))
	if !e.VerifiedAt.IsZero() {
		fmt.Fprintf(b, " at %s", e.VerifiedAt.UTC().Format(time.RFC3339))
	}
	b.WriteString(".\n\n")
	for _, s := range e.Signers {
		fmt.Fprintf(b, "- signed by %s\n", code(s))
	}
	writePolicy(b, e.Policy)
	b.WriteString("\n### Attestations\n\n")
	if len(e.Attestations) == 0 {
		b.WriteString("None found from an accepted signer.\n")
	}
	for _, a := range e.Attestations {
		writeAttestation(b, a)
	}
	if u := e.Upstream; u != nil {
		writeUpstream(b, u)
	}
}

func writePolicy(b *strings.Builder, p PolicySummary) {
	threshold := max(p.Threshold, 1)
	fmt.Fprintf(b, "\nAccepted by the policy: at least %d distinct signer(s) of", threshold)
	var accepted []string
	for _, k := range p.Keys {
		accepted = append(accepted, "key "+code(k))
	}
	for _, id := range p.Keyless {
		accepted = append(accepted, "keyless "+code(id))
	}
	if len(accepted) == 0 {
		accepted = []string{"(no signer listed)"}
	}
	b.WriteString(" " + strings.Join(accepted, ", "))
	if len(p.Required) > 0 {
		req := make([]string, len(p.Required))
		for i, r := range p.Required {
			req[i] = code(r)
		}
		b.WriteString("; required attestations: " + strings.Join(req, ", "))
	}
	b.WriteString(".\n")
}

func writeAttestation(b *strings.Builder, a AttestationEvidence) {
	fmt.Fprintf(b, "- %s", code(a.PredicateType))
	if a.Signer != "" {
		fmt.Fprintf(b, " signed by %s", code(a.Signer))
	}
	b.WriteString("\n")
	if a.BuilderID != "" {
		fmt.Fprintf(b, "  - builder %s\n", code(a.BuilderID))
	}
	if a.SourceRepository != "" {
		fmt.Fprintf(b, "  - source %s", code(a.SourceRepository))
		if a.SourceCommit != "" {
			fmt.Fprintf(b, " at commit %s", code(a.SourceCommit))
		}
		b.WriteString("\n")
	}
	if a.SBOMFormat != "" {
		fmt.Fprintf(b, "  - SBOM %s", code(a.SBOMFormat))
		if a.Packages >= 0 {
			fmt.Fprintf(b, " listing %d packages", a.Packages)
		}
		b.WriteString("\n")
	}
}

func writeUpstream(b *strings.Builder, u *UpstreamResult) {
	fmt.Fprintf(b, "\n### Stage %s before this one\n\n", code(u.Stage))
	if u.Health != "" {
		fmt.Fprintf(b, "- health: %s\n", code(u.Health))
	}
	if !u.HealthySince.IsZero() && !u.PromotedAt.IsZero() {
		fmt.Fprintf(b, "- soaked %s: healthy since %s, promoted at %s\n", u.PromotedAt.Sub(u.HealthySince).Round(time.Second),
			u.HealthySince.UTC().Format(time.RFC3339), u.PromotedAt.UTC().Format(time.RFC3339))
	}
	verdict := u.Verdict
	if verdict == "" {
		verdict = "no canary or analysis configured"
	}
	fmt.Fprintf(b, "- canary/analysis: %s\n", code(verdict))
	if u.Commit != "" {
		commit := code(shortOf(u.Commit))
		if u.CommitURL != "" {
			commit = "[" + commit + "](" + u.CommitURL + ")"
		}
		fmt.Fprintf(b, "- commit %s\n", commit)
	}
}

// plain neutralises a sentence written outside a code span: no markup, no line breaks, no HTML.
func plain(s string) string {
	return strings.NewReplacer("<", "‹", ">", "›", "`", "'", "\n", " ", "\r", " ", "[", "(", "]", ")", "|", "/").Replace(s)
}

// truncationNote ends a text cut by bounded.
const truncationNote = "\n\n… (cut by Ferry: the evidence is longer than a forge accepts; see the Promotion's status)\n"

// bounded cuts a body or comment to MaxCommentLength bytes at a line end, saying so.
func bounded(s string) string {
	if len(s) <= MaxCommentLength {
		return s
	}
	cut := strings.LastIndexByte(s[:MaxCommentLength-len(truncationNote)], '\n')
	if cut < 0 {
		cut = 0
	}
	return s[:cut] + truncationNote
}
