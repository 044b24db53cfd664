package main

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

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

// promotion is the demo's Promotion: three stages, each with its own registry repository and Git folder.
func promotion(w *world) *ferryv1.Promotion {
	soak := &metav1.Duration{Duration: 3 * time.Second}
	stage := func(name string, format ferryv1.ManifestFormat, gateSoak *metav1.Duration) ferryv1.StageSpec {
		return ferryv1.StageSpec{
			Name: name, Path: "envs/" + name,
			Registry: ferryv1.StageRegistry{Repository: w.StageRegistry + "/" + name + "/shop"},
			Manifest: ferryv1.ManifestSpec{Format: format},
			Sync:     ferryv1.SyncSpec{Namespace: "shop-" + name, Prune: true, HealthTimeout: &metav1.Duration{Duration: 2 * time.Minute}},
			Gates:    ferryv1.GatesSpec{Soak: gateSoak},
		}
	}
	return &ferryv1.Promotion{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "demo"},
		Spec: ferryv1.PromotionSpec{
			Source: ferryv1.SourceSpec{Image: w.SourceRegistry + "/acme/shop",
				TagPolicy: &ferryv1.TagPolicy{Semver: &ferryv1.SemverPolicy{Range: ">=1.0.0"}}},
			Verification: ferryv1.VerificationSpec{Keys: []ferryv1.PublicKeySource{
				{Name: "release-key", SecretRef: ferryv1.SecretKeyReference{Name: "release-key"}}}},
			Git: ferryv1.GitSpec{URL: w.RepoURL(repoPath), Branch: "main",
				CommitMessageTemplate: "Promote shop to {{.Stage}}{{if .Rollback}} (rollback){{end}}"},
			Interval: &metav1.Duration{Duration: 10 * time.Minute}, // the registry webhook makes polling a fallback
			Stages: []ferryv1.StageSpec{
				stage("dev", ferryv1.ManifestKustomize, soak),
				stage("staging", ferryv1.ManifestPlain, soak),
				stage("prod", ferryv1.ManifestPlain, nil),
			},
		},
	}
}

// follow prints each stage's progress until prod runs digest.
func (d *demo) follow(ctx context.Context, digest string) error {
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
		if n := len(p.Status.Stages); n > 0 {
			prod := p.Status.Stages[n-1]
			if prod.Digest == digest && prod.InFlightDigest == "" {
				return nil
			}
			if prod.Phase == ferryv1.PhaseFailed {
				return fmt.Errorf("prod failed: %s", prod.Message)
			}
		}
		if err := pause(ctx); err != nil {
			return fmt.Errorf("waiting for %s to reach prod: %w (see .demo/controller.log)", digest, err)
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
		if c := p.Status.Candidate; c != nil && c.Digest == digest && c.Verified == verified {
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
