package scm

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// testEvidence is evidence as the controller builds it: a key signer, SLSA provenance and an SBOM, and the
// previous stage's soak and verdict.
func testEvidence() *Evidence {
	healthy := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	return &Evidence{
		VerifiedIn: "registry.example.com/prod/web@" + digestA,
		VerifiedAt: healthy.Add(2 * time.Hour),
		Signers:    []string{"key release (SHA256:abcdef)"},
		Policy:     PolicySummary{Keys: []string{"release"}, Keyless: []string{"ci@example.test (issuer https://issuer.example.test)"}, Threshold: 1, Required: []string{"https://slsa.dev/provenance/v1"}},
		Attestations: []AttestationEvidence{
			{PredicateType: "https://slsa.dev/provenance/v1", Signer: "release", BuilderID: "https://github.com/shop/web/.github/workflows/release.yml@refs/tags/v1.4.2",
				SourceRepository: "git+https://github.com/shop/web@refs/tags/v1.4.2", SourceCommit: "0123456789abcdef0123456789abcdef01234567", Packages: -1},
			{PredicateType: "https://spdx.dev/Document", Signer: "release", SBOMFormat: "SPDX-2.3", Packages: 42},
		},
		Upstream: &UpstreamResult{Stage: "staging", Commit: strings.Repeat("e", 40), CommitURL: "https://github.com/shop/deploy/commit/" + strings.Repeat("e", 40),
			HealthySince: healthy, PromotedAt: healthy.Add(90 * time.Minute), Health: "Healthy", Verdict: "Passed (Canary): every metric passed"},
	}
}

// evidenceShown are the parts of testEvidence a person must find in the body and in the comment.
var evidenceShown = []string{"signed by `key release (SHA256:abcdef)`", "key `release`", "`ci@example.test (issuer https://issuer.example.test)`",
	"at least 1 distinct signer", "`https://slsa.dev/provenance/v1`", "builder `https://github.com/shop/web/.github/workflows/release.yml@refs/tags/v1.4.2`",
	"at commit `0123456789abcdef0123456789abcdef01234567`", "SBOM `SPDX-2.3` listing 42 packages", "Stage `staging` before this one",
	"soaked 1h30m0s", "`Passed (Canary): every metric passed`", "[`eeeeeeeeeeee`](https://github.com/shop/deploy/commit/eeee"}

func TestRenderEvidence(t *testing.T) {
	c := testChange()
	c.Evidence = testEvidence()
	body := RenderBody(c)
	comment := RenderComment(c, CommitStatus{State: CommitSuccess, Description: "verified: 1 signer"})
	for _, want := range evidenceShown {
		if !strings.Contains(body, want) || !strings.Contains(comment, want) {
			t.Errorf("%q missing from the body or the comment:\n%s\n---\n%s", want, body, comment)
		}
	}
	if !strings.HasPrefix(comment, EvidenceMarker+"\n**Ferry: success** — verified: 1 signer") {
		t.Errorf("comment does not open with the marker and the verdict:\n%s", comment)
	}
	if strings.Contains(RenderBody(testChange()), "### Attestations") {
		t.Error("a change without evidence renders an evidence section")
	}
}

// Values from attestations cannot break out of their code span, and the total stays under the forge's limit.
func TestRenderEvidenceIsNeutralisedAndBounded(t *testing.T) {
	c := testChange()
	c.Evidence = testEvidence()
	c.Evidence.Attestations[0].BuilderID = "x` | **bold** <script>\n# heading"
	comment := RenderComment(c, CommitStatus{State: CommitFailure, Description: "<img src=x> [link](http://evil) `x`"})
	for _, bad := range []string{"\n# heading", "<img", "[link](http://evil)"} {
		if strings.Contains(comment, bad) {
			t.Errorf("comment carries %q unneutralised:\n%s", bad, comment)
		}
	}
	// Inside one code span markup is shown, not rendered: the span must stay whole.
	if want := "builder `x' \\| **bold** <script> # heading`"; !strings.Contains(comment, want) {
		t.Errorf("builder not rendered as one code span %q:\n%s", want, comment)
	}
	for i := 0; i < 2000; i++ {
		c.Evidence.Attestations = append(c.Evidence.Attestations, AttestationEvidence{PredicateType: strings.Repeat("p", 100), Packages: -1})
	}
	for name, text := range map[string]string{"body": RenderBody(c), "comment": RenderComment(c, CommitStatus{State: CommitSuccess})} {
		if len(text) > MaxCommentLength || !strings.HasSuffix(text, truncationNote) {
			t.Errorf("%s is %d bytes (limit %d) or does not say it was cut", name, len(text), MaxCommentLength)
		}
	}
}

func TestCommitURL(t *testing.T) {
	sha := strings.Repeat("a", 40)
	cases := []struct {
		name   string
		cfg    Config
		gitURL string
		want   string
	}{
		{"gitea over http", Config{Provider: "gitea", APIURL: "http://127.0.0.1:3000/"}, "http://127.0.0.1:3000/acme/deploy.git",
			"http://127.0.0.1:3000/acme/deploy/commit/" + sha},
		{"github.com over ssh", Config{Provider: "github"}, "git@github.com:acme/deploy.git", "https://github.com/acme/deploy/commit/" + sha},
		{"github enterprise", Config{Provider: "github", APIURL: "https://ghe.example.test/api/v3/"}, "https://ghe.example.test/acme/deploy",
			"https://ghe.example.test/acme/deploy/commit/" + sha},
		{"gitlab subgroup", Config{Provider: "gitlab"}, "ssh://git@gitlab.com/acme/platform/deploy.git",
			"https://gitlab.com/acme/platform/deploy/-/commit/" + sha},
		{"git elsewhere than the forge", Config{Provider: "github"}, "https://git.example.test/acme/deploy.git", ""},
		{"gitea without API URL", Config{Provider: "gitea"}, "http://127.0.0.1:3000/acme/deploy.git", ""},
		{"nested path on GitHub", Config{Provider: "github"}, "https://github.com/acme/x/deploy.git", ""},
		{"short sha", Config{Provider: "github"}, "https://github.com/acme/deploy.git", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := sha
			if tc.name == "short sha" {
				s = "abc123"
			}
			if got := CommitURL(tc.cfg, tc.gitURL, s); got != tc.want {
				t.Fatalf("CommitURL = %q, want %q", got, tc.want)
			}
		})
	}
}

// Bad input to the reporter is refused, naming the field, before anything reaches the forge.
func TestReporterRefusesBadInput(t *testing.T) {
	f := newFakeGitHub(t)
	r := f.provider(t, f.token).(Reporter)
	ok := CommitStatus{State: CommitSuccess, Context: "ferry/prod"}
	cases := map[string]func() error{
		"commit": func() error { return r.SetCommitStatus(t.Context(), "shop/web", "abc", ok) },
		"status state": func() error {
			s := ok
			s.State = "done"
			return r.SetCommitStatus(t.Context(), "shop/web", strings.Repeat("a", 40), s)
		},
		"status context": func() error {
			s := ok
			s.Context = "a\nb"
			return r.SetCommitStatus(t.Context(), "shop/web", strings.Repeat("a", 40), s)
		},
		"status target URL": func() error {
			s := ok
			s.TargetURL = "javascript:x"
			return r.SetCommitStatus(t.Context(), "shop/web", strings.Repeat("a", 40), s)
		},
		"repo":           func() error { return r.SetCommitStatus(t.Context(), "shop", strings.Repeat("a", 40), ok) },
		"comment marker": func() error { return r.UpsertComment(t.Context(), "shop/web", 1, "ferry", "ferry") },
		"comment":        func() error { return r.UpsertComment(t.Context(), "shop/web", 1, EvidenceMarker, "no marker") },
		"pull request number": func() error {
			return r.UpsertComment(t.Context(), "shop/web", 0, EvidenceMarker, EvidenceMarker)
		},
	}
	for field, call := range cases {
		var ie *InputError
		if err := call(); !errors.As(err, &ie) || ie.Field != field {
			t.Errorf("%s: error %v, want an InputError on %q", field, err, field)
		}
	}
	if n := f.postCount(); n != 0 || f.calls != 0 {
		t.Fatalf("bad input reached the forge: %d requests", f.calls)
	}
	// A long description is cut to GitHub's limit, not refused.
	s, err := CommitStatus{State: CommitSuccess, Context: "ferry/prod", Description: strings.Repeat("é", 200)}.normalize(strings.Repeat("a", 40))
	if err != nil || len([]rune(s.Description)) != MaxStatusDescription {
		t.Fatalf("long description: %d runes, %v", len([]rune(s.Description)), err)
	}
}
