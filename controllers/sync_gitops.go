package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	gosync "sync"

	"github.com/argoproj/argo-cd/gitops-engine/pkg/health"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/sync"
)

// GitopsSyncer is the Syncer Ferry runs with: internal/sync (gitops-engine) behind the pipeline's port. It keeps
// one sync.Target — a watched cache of the namespace — per cluster and namespace, for as long as it lives.
type GitopsSyncer struct {
	mu      gosync.Mutex
	targets map[string]*sync.Target
}

// NewGitopsSyncer returns a Syncer with no targets yet.
func NewGitopsSyncer() *GitopsSyncer { return &GitopsSyncer{targets: map[string]*sync.Target{}} }

// Close stops every target's watches.
func (g *GitopsSyncer) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, t := range g.targets {
		t.Close()
		delete(g.targets, k)
	}
}

func (g *GitopsSyncer) target(t SyncTarget) (*sync.Target, error) {
	key := t.Config.Host + "|" + t.Namespace
	g.mu.Lock()
	defer g.mu.Unlock()
	if tgt, ok := g.targets[key]; ok {
		return tgt, nil
	}
	tgt, err := sync.NewTarget(t.Config, t.Namespace)
	if err != nil {
		return nil, err
	}
	g.targets[key] = tgt
	return tgt, nil
}

// render reads the stage files checked out in dir.
func render(t SyncTarget, dir string) ([]*unstructured.Unstructured, error) {
	format := sync.FormatPlain
	switch t.Format {
	case ferryv1.ManifestKustomize:
		format = sync.FormatKustomize
	case ferryv1.ManifestHelmValues:
		return nil, fmt.Errorf("stages in the HelmValues format are pinned in Git but not rendered by Ferry")
	}
	return sync.Render(sync.RenderRequest{Root: dir, Path: ".", Format: format})
}

// Apply renders and applies a stage's files; objects Ferry applied earlier for the stage and no longer declared
// are pruned when the stage asks for it.
func (g *GitopsSyncer) Apply(ctx context.Context, t SyncTarget, dir, revision string) error {
	objs, err := render(t, dir)
	if err != nil {
		return err
	}
	tgt, err := g.target(t)
	if err != nil {
		return err
	}
	_, err = tgt.Apply(ctx, sync.ApplyRequest{Owner: ownerLabel(t.Owner), Revision: revision, Objects: objs, Prune: t.Prune})
	return err
}

// Health assesses the declared objects with gitops-engine and compares running images with the declared one.
func (g *GitopsSyncer) Health(ctx context.Context, t SyncTarget, dir, declaredImage string) (Health, error) {
	objs, err := render(t, dir)
	if err != nil {
		return Health{}, err
	}
	tgt, err := g.target(t)
	if err != nil {
		return Health{}, err
	}
	refs := make([]sync.ObjectRef, len(objs))
	for i, o := range objs {
		refs[i] = sync.RefOf(o)
		refs[i].Namespace = t.Namespace
	}
	report, err := tgt.Health(ctx, refs)
	if err != nil {
		return Health{}, err
	}
	drifts, err := tgt.Drift(ctx, refs, []string{declaredImage})
	if err != nil {
		return Health{}, err
	}
	h := Health{Healthy: report.Status == health.HealthStatusHealthy, Degraded: report.Status == health.HealthStatusDegraded,
		Message: report.String()}
	for _, d := range drifts {
		h.Drift = append(h.Drift, d.String())
	}
	return h, nil
}

// ownerLabel fits the stage's owner into a label value (63 characters), keeping it unique with a hash.
func ownerLabel(owner string) string {
	if len(owner) <= 63 {
		return owner
	}
	sum := sha256.Sum256([]byte(owner))
	return owner[:50] + "-" + hex.EncodeToString(sum[:6])
}
