package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	gosync "sync"

	"github.com/argoproj/argo-cd/gitops-engine/pkg/health"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/sync"
)

// GitopsSyncer is the Syncer Ferry runs with: internal/sync (gitops-engine) behind the pipeline's port. It keeps
// one sync.Cluster — a watched cache of every stage namespace there — per cluster, for as long as a stage uses it.
type GitopsSyncer struct {
	mu       gosync.Mutex
	clusters map[string]*sync.Cluster
	// users maps each SyncTarget.Owner to the key of the cluster it was last synced or checked in, so that a
	// cluster no stage uses any more — its Promotions deleted, its kubeconfig's credentials rotated — stops
	// watching and lets go of its cache.
	users   map[string]string
	changed []func(owner string)
	// owners maps the owner label values written on objects back to SyncTarget.Owner (labels are cut to 63
	// characters).
	owners gosync.Map
}

// NewGitopsSyncer returns a Syncer with no clusters yet.
func NewGitopsSyncer() *GitopsSyncer {
	return &GitopsSyncer{clusters: map[string]*sync.Cluster{}, users: map[string]string{}}
}

// OnChange registers fn for changes in every cluster, those already used and those to come.
func (g *GitopsSyncer) OnChange(fn func(owner string)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.changed = append(g.changed, fn)
	for _, c := range g.clusters {
		c.OnOwnerChange(g.ownerChanged(fn))
	}
}

// ownerChanged turns a label value seen by a cluster's cache into the SyncTarget.Owner it was written for.
func (g *GitopsSyncer) ownerChanged(fn func(owner string)) func(label string) {
	return func(label string) {
		if owner, ok := g.owners.Load(label); ok {
			fn(owner.(string))
		}
	}
}

// label is the owner label value of a target, remembered so that changes can be traced back to it.
func (g *GitopsSyncer) label(t SyncTarget) string {
	l := ownerLabel(t.Owner)
	g.owners.Store(l, t.Owner)
	return l
}

// Close stops every cluster's watches.
func (g *GitopsSyncer) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, c := range g.clusters {
		c.Close()
		delete(g.clusters, k)
	}
}

// target returns the sync target of a stage, sharing the cluster's cache with every other stage there.
func (g *GitopsSyncer) target(t SyncTarget) (*sync.Target, error) {
	c, err := g.cluster(t)
	if err != nil {
		return nil, err
	}
	return c.Target(t.Namespace)
}

// Expect has each cluster's cache watch the namespaces of targets, all in one go.
func (g *GitopsSyncer) Expect(targets []SyncTarget) error {
	namespaces := map[*sync.Cluster][]string{}
	for _, t := range targets {
		if t.Owner != "" {
			g.label(t) // after a restart, changes to what an earlier process applied are traced too
		}
		c, err := g.cluster(t)
		if err != nil {
			return err
		}
		namespaces[c] = append(namespaces[c], t.Namespace)
	}
	for c, ns := range namespaces {
		if err := c.Watch(ns...); err != nil {
			return err
		}
	}
	return nil
}

// cluster returns the state kept for the cluster t is in, creating it on first use, and records that t.Owner
// uses it now.
func (g *GitopsSyncer) cluster(t SyncTarget) (*sync.Cluster, error) {
	key := clusterKey(t.Config) // one cluster state per API server and identity
	g.mu.Lock()
	c, ok := g.clusters[key]
	if !ok {
		var err error
		if c, err = sync.NewCluster(t.Config); err != nil {
			g.mu.Unlock()
			return nil, err
		}
		for _, fn := range g.changed {
			c.OnOwnerChange(g.ownerChanged(fn))
		}
		g.clusters[key] = c
	}
	var unused *sync.Cluster
	if t.Owner != "" && g.users[t.Owner] != key {
		previous := g.users[t.Owner]
		g.users[t.Owner] = key
		unused = g.dropIfUnused(previous)
	}
	g.mu.Unlock()
	closeCluster(unused)
	return c, nil
}

// Forget says that owner's stage is gone: the cluster it used is let go of when no other stage uses it.
func (g *GitopsSyncer) Forget(owner string) {
	g.owners.Delete(ownerLabel(owner))
	g.mu.Lock()
	key, ok := g.users[owner]
	delete(g.users, owner)
	var unused *sync.Cluster
	if ok {
		unused = g.dropIfUnused(key)
	}
	g.mu.Unlock()
	closeCluster(unused)
}

// dropIfUnused removes the cluster under key when no stage uses it, and returns it to be closed once the lock is
// released. g.mu must be held.
func (g *GitopsSyncer) dropIfUnused(key string) *sync.Cluster {
	c, ok := g.clusters[key]
	if !ok {
		return nil
	}
	for _, k := range g.users {
		if k == key {
			return nil
		}
	}
	delete(g.clusters, key)
	return c
}

func closeCluster(c *sync.Cluster) {
	if c != nil {
		c.Close()
	}
}

// Clusters says how many clusters are watched.
func (g *GitopsSyncer) Clusters() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.clusters)
}

// render reads the stage files checked out in dir.
func render(t SyncTarget, dir string) ([]*unstructured.Unstructured, error) {
	format := sync.FormatPlain
	switch t.Format {
	case ferryv1.ManifestKustomize:
		format = sync.FormatKustomize
	case ferryv1.ManifestHelmValues:
		return renderHelm(t, dir)
	}
	return sync.Render(sync.RenderRequest{Root: dir, Path: ".", Format: format})
}

// ReasonHelmRenderFailed: a HelmValues stage's chart does not render, as its files and manifest.helm say.
const ReasonHelmRenderFailed = "HelmRenderFailed"

// helmFields are the fields of manifest.helm that each input of a Helm render comes from.
var helmFields = map[string]string{sync.HelmInputChart: "chart", sync.HelmInputValuesFile: "file",
	sync.HelmInputImageKey: "keyPath", sync.HelmInputReleaseName: "releaseName"}

// renderHelm renders the chart of a HelmValues stage. A chart that does not render stalls, naming the field: the
// commit will render the same way on every try, so only a change to Git or to the spec helps.
func renderHelm(t SyncTarget, dir string) ([]*unstructured.Unstructured, error) {
	field := t.Field + ".manifest.helm"
	if t.Helm == nil {
		return nil, stalling(ReasonInvalidSpec, field, "required when manifest.format is %s", ferryv1.ManifestHelmValues)
	}
	release := t.Helm.ReleaseName
	if release == "" {
		release = t.Release
	}
	objs, err := sync.Render(sync.RenderRequest{Root: dir, Path: ".", Format: sync.FormatHelm, Helm: sync.HelmOptions{
		Chart: t.Helm.Chart, ValuesFile: t.Helm.File, ImageKey: t.Helm.KeyPath, ReleaseName: release, Namespace: t.Namespace}})
	var he *sync.HelmError
	if !errors.As(err, &he) {
		return objs, err // the controller's own trouble (a busy renderer, an unreadable checkout): retried
	}
	if he.Input == sync.HelmInputReleaseName && t.Helm.ReleaseName == "" {
		return nil, stalling(ReasonHelmRenderFailed, field+".releaseName", "the default release name, %q (the Promotion's "+
			"name and the stage's), is not a valid Helm release name; set one: %v", release, err)
	}
	return nil, stalling(ReasonHelmRenderFailed, field+"."+helmFields[he.Input], "%v", err)
}

// Apply renders and applies a stage's files; objects Ferry applied earlier for the stage and no longer declared
// are pruned when the stage asks for it.
func (g *GitopsSyncer) Apply(ctx context.Context, t SyncTarget, dir, revision string) ([]sync.ObjectRef, error) {
	objs, err := render(t, dir)
	if err != nil {
		return nil, err
	}
	tgt, err := g.target(t)
	if err != nil {
		return nil, err
	}
	res, err := tgt.Apply(ctx, sync.ApplyRequest{Owner: g.label(t), Revision: revision, Objects: objs, Prune: t.Prune})
	if err != nil {
		return nil, err
	}
	return res.Declared, nil
}

// Render renders the files in dir.
func (g *GitopsSyncer) Render(t SyncTarget, dir string) ([]*unstructured.Unstructured, error) {
	return render(t, dir)
}

// Objects renders the files in dir and names what they declare in t.Namespace.
func (g *GitopsSyncer) Objects(t SyncTarget, dir string) ([]sync.ObjectRef, error) {
	objs, err := render(t, dir)
	if err != nil {
		return nil, err
	}
	refs := make([]sync.ObjectRef, len(objs))
	for i, o := range objs {
		refs[i] = sync.RefOf(o)
		refs[i].Namespace = t.Namespace
	}
	return refs, nil
}

// Health assesses the objects with gitops-engine and compares running images with the declared one.
func (g *GitopsSyncer) Health(ctx context.Context, t SyncTarget, objects []sync.ObjectRef, declaredImage string) (Health, error) {
	tgt, err := g.target(t)
	if err != nil {
		return Health{}, err
	}
	report, drifts, err := tgt.Assess(ctx, objects, []string{declaredImage})
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
