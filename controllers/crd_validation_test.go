package controllers

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

func TestSampleIsAccepted(t *testing.T) {
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	p := samplePromotion(t, ns)
	if err := e.Client.Create(context.Background(), p); err != nil {
		t.Fatalf("the 3-stage sample was rejected: %v", err)
	}
	// Defaults from the schema are applied by the API server.
	if got := p.Spec.Interval; got == nil || got.Duration.String() != "5m0s" {
		t.Errorf("spec.interval default = %v, want 5m", got)
	}
	if got := p.Spec.Stages[0].Approval.Mode; got != ferryv1.ApprovalAutomatic {
		t.Errorf("stages[0].approval.mode default = %q, want Automatic", got)
	}
	if got := p.Spec.Stages[0].Rollback.OnHealthFailure; got == nil || !*got {
		t.Errorf("stages[0].rollback.onHealthFailure default = %v, want true", got)
	}
}

// TestInvalidPromotionsAreRejected checks that the API server itself rejects bad specs, each with a message
// that names the field and the rule.
func TestInvalidPromotionsAreRejected(t *testing.T) {
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	str := func(s string) *string { return &s }
	dur := func(s string) *metav1.Duration {
		d := metav1.Duration{}
		_ = d.UnmarshalJSON([]byte(`"` + s + `"`))
		return &d
	}

	cases := []struct {
		name   string
		mutate func(p *ferryv1.Promotion)
		want   []string
	}{
		{"duplicate stage names", func(p *ferryv1.Promotion) { p.Spec.Stages[2].Name = "dev" },
			[]string{"spec.stages", "stage names must be unique"}},
		{"stage name not a DNS label", func(p *ferryv1.Promotion) { p.Spec.Stages[0].Name = "Dev_1" },
			[]string{"spec.stages[0].name", "should match"}},
		{"no stages", func(p *ferryv1.Promotion) { p.Spec.Stages = nil },
			[]string{"spec.stages", "Required value"}},
		{"sync mode ArgoCD without its Application", func(p *ferryv1.Promotion) { p.Spec.Stages[1].Sync.Mode = ferryv1.SyncArgoCD },
			[]string{"spec.stages[1].sync.argoCD", "required when mode is ArgoCD"}},
		{"a Flux object with sync mode Ferry", func(p *ferryv1.Promotion) {
			p.Spec.Stages[0].Sync.Flux = &ferryv1.FluxSyncSpec{Name: "shop"}
		}, []string{"spec.stages[0].sync.flux", "required when mode is Flux, and only then"}},
		{"unknown Flux kind", func(p *ferryv1.Promotion) {
			p.Spec.Stages[0].Sync.Mode = ferryv1.SyncFlux
			p.Spec.Stages[0].Sync.Flux = &ferryv1.FluxSyncSpec{Kind: "GitRepository", Name: "shop"}
		}, []string{"spec.stages[0].sync.flux.kind", "Unsupported value"}},
		{"malformed source digest", func(p *ferryv1.Promotion) {
			p.Spec.Source.TagPolicy = nil
			p.Spec.Source.Digest = "sha256:abc"
		}, []string{"spec.source.digest", "should match '^sha256:[a-f0-9]{64}$'"}},
		{"both tag policy and digest", func(p *ferryv1.Promotion) {
			p.Spec.Source.Digest = "sha256:" + strings.Repeat("a", 64)
		}, []string{"spec.source", "set exactly one of tagPolicy or digest"}},
		{"semver and regex policy together", func(p *ferryv1.Promotion) {
			p.Spec.Source.TagPolicy.Regex = &ferryv1.RegexPolicy{Pattern: "^v.*"}
		}, []string{"spec.source.tagPolicy", "set exactly one of semver or regex"}},
		{"source image with a tag", func(p *ferryv1.Promotion) { p.Spec.Source.Image = "127.0.0.1:5001/acme/shop:1.0" },
			[]string{"spec.source.image", "must be a repository without tag or digest"}},
		{"canary weights not increasing", func(p *ferryv1.Promotion) {
			p.Spec.Stages[2].Canary.Steps = []ferryv1.CanaryStep{{Weight: 50}, {Weight: 10}, {Weight: 100}}
		}, []string{"spec.stages[2].canary.steps", "weights must be strictly increasing"}},
		{"canary weights repeated", func(p *ferryv1.Promotion) {
			p.Spec.Stages[2].Canary.Steps = []ferryv1.CanaryStep{{Weight: 50}, {Weight: 50}}
		}, []string{"spec.stages[2].canary.steps", "weights must be strictly increasing"}},
		{"canary weight out of range", func(p *ferryv1.Promotion) {
			p.Spec.Stages[2].Canary.Steps = []ferryv1.CanaryStep{{Weight: 10, Pause: dur("1m")}, {Weight: 101}}
		}, []string{"spec.stages[2].canary.steps[1].weight", "less than or equal to 100"}},
		{"pull request approval without provider and token", func(p *ferryv1.Promotion) {
			p.Spec.Stages[1].Approval = ferryv1.ApprovalSpec{Mode: ferryv1.ApprovalPullRequest}
		}, []string{"spec.stages[1].approval.pullRequest", "required when mode is PullRequest"}},
		{"Gitea pull request without API URL", func(p *ferryv1.Promotion) {
			p.Spec.Stages[2].Approval.PullRequest.APIURL = ""
		}, []string{"spec.stages[2].approval.pullRequest.apiURL", "required for provider Gitea"}},
		{"no signer at all", func(p *ferryv1.Promotion) { p.Spec.Verification.Keys = nil },
			[]string{"spec.verification", "signature checks cannot be skipped"}},
		{"keyless without trusted root", func(p *ferryv1.Promotion) {
			p.Spec.Verification.Keyless = []ferryv1.KeylessIdentity{{Issuer: "https://issuer.example", Subject: "ci@example.com"}}
		}, []string{"spec.verification.trustedRootRef", "required when keyless identities are set"}},
		{"keyless identity with subject and regex", func(p *ferryv1.Promotion) {
			p.Spec.Verification.TrustedRootRef = &ferryv1.KeyReference{Name: "root"}
			p.Spec.Verification.Keyless = []ferryv1.KeylessIdentity{{Issuer: "https://i", Subject: "a", SubjectRegex: "b"}}
		}, []string{"spec.verification.keyless[0]", "set exactly one of subject or subjectRegex"}},
		{"threshold above signers", func(p *ferryv1.Promotion) { p.Spec.Verification.Threshold = 2 },
			[]string{"spec.verification.threshold", "cannot exceed the number of keys plus keyless identities"}},
		{"stage path escaping the repository", func(p *ferryv1.Promotion) { p.Spec.Stages[0].Path = "envs/../../etc" },
			[]string{"spec.stages[0].path", "must not contain '..'"}},
		{"Helm values format without key path", func(p *ferryv1.Promotion) {
			p.Spec.Stages[2].Manifest = ferryv1.ManifestSpec{Format: ferryv1.ManifestHelmValues}
		},
			[]string{"spec.stages[2].manifest.helm", "required when format is HelmValues"}},
		{"Helm key path on another format", func(p *ferryv1.Promotion) {
			p.Spec.Stages[0].Manifest.Helm = &ferryv1.HelmValuesSpec{KeyPath: "image"}
		}, []string{"spec.stages[0].manifest.helm", "required when format is HelmValues, and only then"}},
		{"unknown manifest format", func(p *ferryv1.Promotion) { p.Spec.Stages[0].Manifest.Format = "Jsonnet" },
			[]string{"spec.stages[0].manifest.format", "Unsupported value"}},
		{"metric min above max", func(p *ferryv1.Promotion) {
			m := &p.Spec.Stages[2].Analysis.Metrics[1]
			m.Min, m.Max = str("2"), str("1")
		}, []string{"spec.stages[2].analysis.metrics[1]", "min must not exceed max"}},
		{"baseline deviation without baseline", func(p *ferryv1.Promotion) { p.Spec.Stages[2].Analysis.Baseline = nil },
			[]string{"spec.stages[2].analysis.baseline", "required when a metric sets maxBaselineDeviationPercent"}},
		{"metric with nothing to judge it by", func(p *ferryv1.Promotion) {
			m := &p.Spec.Stages[2].Analysis.Metrics[1]
			m.Min, m.Max = nil, nil
		}, []string{"spec.stages[2].analysis", "set min, max or maxBaselineDeviationPercent"}},
		{"traffic minimum that is not a number", func(p *ferryv1.Promotion) { p.Spec.Stages[2].Analysis.Traffic.MinRequests = "lots" },
			[]string{"spec.stages[2].analysis.traffic.minRequests", "should match"}},
		{"git URL that is not one", func(p *ferryv1.Promotion) { p.Spec.Git.URL = "not a url" },
			[]string{"spec.git.url", "should match"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePromotion(t, ns)
			p.GenerateName = "invalid-"
			p.Name = ""
			tc.mutate(p)
			err := e.Client.Create(context.Background(), p)
			if err == nil {
				t.Fatalf("accepted; want rejection mentioning %q", tc.want)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("error is not a validation error: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}
