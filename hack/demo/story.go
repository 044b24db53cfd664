package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// stageFiles are the Git repository's first content: one folder per stage, as a platform team would keep it.
func stageFiles(stageReg string) map[string]string {
	deployment := func(image string) string {
		return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  labels: {app: shop}
spec:
  replicas: 2
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
        - name: shop
          image: ` + image + ` # the digest is pinned by Ferry
          ports:
            - containerPort: 8080
`
	}
	return map[string]string{
		"README.md": "Deployment manifests of shop, one folder per stage. Ferry pins image digests here.\n",
		"envs/dev/kustomization.yaml": `# dev: kustomize; Ferry sets the digest in images:
resources:
  - deployment.yaml
images:
  - name: ` + stageReg + `/dev/shop
    newTag: "0.0.0"
`,
		"envs/dev/deployment.yaml":     deployment(stageReg + "/dev/shop:0.0.0"),
		"envs/staging/deployment.yaml": deployment(stageReg + "/staging/shop:0.0.0"),
		"envs/prod/deployment.yaml":    deployment(stageReg + "/prod/shop:0.0.0"),
	}
}

// The analysis of prod: the share of requests answered with a 5xx on the track measured, over the last interval,
// among at least trafficMinimum requests.
const (
	errorRatioMetric = "error-ratio"
	errorRatioQuery  = `sum(rate(http_requests_total{namespace="{{.Namespace}}",track="{{.Track}}",code=~"5.."}[{{.Interval}}]))` +
		` / sum(rate(http_requests_total{namespace="{{.Namespace}}",track="{{.Track}}"}[{{.Interval}}]))`
	trafficQuery   = `sum(increase(http_requests_total{namespace="{{.Namespace}}",track="{{.Track}}"}[{{.Interval}}]))`
	trafficMinimum = "20"
	errorRatioMax  = "0.05"
)

// promotion is the demo's Promotion: three stages, each with its own registry repository and Git folder; prod
// takes a new digest through a two-step canary measured on prometheus.
func promotion(w *world, prometheus string) *ferryv1.Promotion {
	seconds := func(n int) *metav1.Duration { return &metav1.Duration{Duration: time.Duration(n) * time.Second} }
	soak := seconds(3)
	stage := func(name string, format ferryv1.ManifestFormat, gateSoak *metav1.Duration) ferryv1.StageSpec {
		return ferryv1.StageSpec{
			Name: name, Path: "envs/" + name,
			Registry: ferryv1.StageRegistry{Repository: w.StageRegistry + "/" + name + "/shop"},
			Manifest: ferryv1.ManifestSpec{Format: format},
			Sync:     ferryv1.SyncSpec{Namespace: "shop-" + name, Prune: true, HealthTimeout: &metav1.Duration{Duration: 2 * time.Minute}},
			Gates:    ferryv1.GatesSpec{Soak: gateSoak},
		}
	}
	prod := stage("prod", ferryv1.ManifestPlain, nil)
	prod.Canary = &ferryv1.CanarySpec{Replicas: 2, Steps: []ferryv1.CanaryStep{
		{Weight: 50, Pause: seconds(5)}, {Weight: 100, Pause: seconds(5)}}}
	prod.Analysis = &ferryv1.AnalysisSpec{
		Prometheus: ferryv1.PrometheusSpec{Address: prometheus},
		Interval:   seconds(2),
		MinSamples: 2,
		Traffic:    &ferryv1.TrafficSpec{Query: trafficQuery, MinRequests: trafficMinimum},
		Metrics:    []ferryv1.MetricSpec{{Name: errorRatioMetric, Query: errorRatioQuery, Max: ptr.To(errorRatioMax)}},
	}
	return &ferryv1.Promotion{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "demo"},
		Spec: ferryv1.PromotionSpec{
			Source: ferryv1.SourceSpec{Image: w.SourceRegistry + "/acme/shop",
				TagPolicy: &ferryv1.TagPolicy{Semver: &ferryv1.SemverPolicy{Range: ">=1.0.0"}}},
			Verification: ferryv1.VerificationSpec{Keys: []ferryv1.PublicKeySource{
				{Name: "release-key", SecretRef: ferryv1.SecretKeyReference{Name: "release-key"}}},
				// CI usually signs moments after it pushes: an unsigned digest is waited for this long, then rejected.
				SignatureGracePeriod: &metav1.Duration{Duration: 5 * time.Second}},
			Git: ferryv1.GitSpec{URL: w.RepoURL(repoPath), Branch: "main",
				CommitMessageTemplate: "Promote shop to {{.Stage}}{{if .Rollback}} (rollback){{end}}"},
			Interval: &metav1.Duration{Duration: 10 * time.Minute}, // the registry webhook makes polling a fallback
			Stages: []ferryv1.StageSpec{
				stage("dev", ferryv1.ManifestKustomize, soak),
				stage("staging", ferryv1.ManifestPlain, soak),
				prod,
			},
		},
	}
}

// describeProd says how prod takes a new digest, from its spec.
func describeProd(prod ferryv1.StageSpec) {
	var steps []string
	for _, s := range prod.Canary.Steps {
		steps = append(steps, fmt.Sprintf("%d%% for %s", s.Weight, s.Pause.Duration))
	}
	a := prod.Analysis
	fmt.Printf("  prod: canary %s of %d replicas beside the running digest; analysis every %s on %s\n",
		strings.Join(steps, ", then "), prod.Canary.Replicas, a.Interval.Duration, a.Prometheus.Address)
	for _, m := range a.Metrics {
		fmt.Printf("    %s <= %s, at least %d samples a step, with at least %s requests a sample:\n      %s\n",
			m.Name, *m.Max, a.MinSamples, a.Traffic.MinRequests, m.Query)
	}
}

// follow prints each stage's progress until prod runs digest.
func (d *demo) follow(ctx context.Context, digest string) error {
	return d.followUntil(ctx, d.version(digest)+" to reach prod", func(p *ferryv1.Promotion) (bool, error) {
		prod := p.Status.Stages[len(p.Status.Stages)-1]
		if prod.Phase == ferryv1.PhaseFailed || prod.Phase == ferryv1.PhaseRolledBack && prod.InFlightDigest == "" && rolledBack(prod, digest) {
			return false, fmt.Errorf("prod did not take %s: %s", d.version(digest), prod.Message)
		}
		return prod.Digest == digest && prod.InFlightDigest == "", nil
	})
}

// followUntil prints each stage's progress, and which pods serve prod's traffic, until done says so.
func (d *demo) followUntil(ctx context.Context, what string, done func(*ferryv1.Promotion) (bool, error)) error {
	seen := map[string]string{}
	for {
		p, err := d.get(ctx)
		if err != nil {
			return err
		}
		for _, st := range p.Status.Stages {
			line := fmt.Sprintf("  %-8s %-17s %s", st.Name, st.Phase, st.Message)
			if seen[st.Name] != line {
				seen[st.Name] = line
				fmt.Println(line)
			}
		}
		if serving := "  prod's traffic reaches: " + d.traffic.serving(); seen["traffic"] != serving {
			seen["traffic"] = serving
			fmt.Println(serving)
		}
		if len(p.Status.Stages) > 0 {
			if ok, err := done(p); err != nil || ok {
				return err
			}
		}
		if err := pause(ctx); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
	}
}

// waitCandidate waits until Ferry has judged digest, and shows the verdict.
func (d *demo) waitCandidate(ctx context.Context, digest string, verified bool) error {
	for {
		p, err := d.get(ctx)
		if err != nil {
			return err
		}
		// An unsigned candidate is first waited for (SignatureDeadline set), then rejected.
		if c := p.Status.Candidate; c != nil && c.Digest == digest && c.Verified == verified && c.SignatureDeadline == nil {
			if !verified {
				fmt.Printf("  rejected, no stage touched: %s\n", c.Message)
			}
			return nil
		}
		if err := pause(ctx); err != nil {
			return fmt.Errorf("waiting for Ferry to judge %s: %w", digest, err)
		}
	}
}

func (d *demo) get(ctx context.Context) (*ferryv1.Promotion, error) {
	var p ferryv1.Promotion
	err := d.c.Get(ctx, types.NamespacedName{Namespace: "demo", Name: "shop"}, &p)
	return &p, err
}

func pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(200 * time.Millisecond):
		return nil
	}
}
