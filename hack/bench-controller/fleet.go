package main

import (
	"context"
	"fmt"
	"path"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// stages every application moves through.
var stages = []string{"dev", "staging", "prod"}

// app is one application: one Promotion, one source repository, one folder per stage in its tenant's Git
// repository and one Deployment per stage namespace.
type app struct {
	tenant, name string
}

func (a app) source() string { return a.tenant + "/" + a.name }

// fleet lays out n applications over tenants the way a platform team would: each tenant (a team) has its own
// namespace for its Promotions, one deploy repository for all its applications (so pushes contend on one
// branch) and one namespace per stage that its applications are synced into.
type fleet struct {
	apps    []app
	tenants []string
}

func newFleet(n, tenants int) fleet {
	f := fleet{}
	for t := 0; t < tenants; t++ {
		f.tenants = append(f.tenants, fmt.Sprintf("tenant-%02d", t))
	}
	for i := 0; i < n; i++ {
		f.apps = append(f.apps, app{tenant: f.tenants[i%tenants], name: fmt.Sprintf("app-%04d", i)})
	}
	return f
}

func stageNamespace(tenant, stage string) string { return tenant + "-" + stage }

func stageRepo(w *world, a app, stage string) string {
	return w.StageRegistry + "/" + stage + "/" + a.source()
}

// gitFiles is a tenant repository's first content: per application and stage, a kustomization whose images:
// entry Ferry pins, and the Deployment it renders.
func gitFiles(w *world, f fleet, tenant string) map[string]string {
	files := map[string]string{"README.md": "Deployment manifests of " + tenant + ", one folder per application and stage.\n"}
	for _, a := range f.apps {
		if a.tenant != tenant {
			continue
		}
		for _, st := range stages {
			dir := path.Join("apps", a.name, st)
			image := stageRepo(w, a, st)
			files[path.Join(dir, "kustomization.yaml")] = "resources:\n  - deployment.yaml\nimages:\n  - name: " + image + "\n    newTag: \"0.0.0\"\n"
			files[path.Join(dir, "deployment.yaml")] = deployment(a.name, image+":0.0.0")
		}
	}
	return files
}

func deployment(name, image string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
  labels: {app: ` + name + `}
spec:
  replicas: 1
  selector:
    matchLabels: {app: ` + name + `}
  template:
    metadata:
      labels: {app: ` + name + `}
    spec:
      containers:
        - name: app
          image: ` + image + `
`
}

// promotion is application a's Promotion: the source's semver tags, verified with the tenant's release key,
// pinned dev -> staging -> prod automatically, each stage synced into its namespace of the API server.
func promotion(w *world, a app) *ferryv1.Promotion {
	var specs []ferryv1.StageSpec
	for _, st := range stages {
		specs = append(specs, ferryv1.StageSpec{
			Name: st, Path: path.Join("apps", a.name, st),
			Registry: ferryv1.StageRegistry{Repository: stageRepo(w, a, st)},
			Manifest: ferryv1.ManifestSpec{Format: ferryv1.ManifestKustomize},
			Sync:     ferryv1.SyncSpec{Namespace: stageNamespace(a.tenant, st), Prune: true},
		})
	}
	return &ferryv1.Promotion{
		ObjectMeta: metav1.ObjectMeta{Name: a.name, Namespace: a.tenant},
		Spec: ferryv1.PromotionSpec{
			Source: ferryv1.SourceSpec{Image: w.SourceRegistry + "/" + a.source(),
				TagPolicy: &ferryv1.TagPolicy{Semver: &ferryv1.SemverPolicy{Range: ">=1.0.0"}}},
			Verification: ferryv1.VerificationSpec{Keys: []ferryv1.PublicKeySource{
				{Name: "release", SecretRef: ferryv1.SecretKeyReference{Name: "release-key"}}}},
			Git:    ferryv1.GitSpec{URL: w.repoURL(a.tenant), Branch: "main"},
			Stages: specs,
		},
	}
}

// seed creates everything before the controller starts: Git repositories, signed 1.0.0 images, the tenants'
// namespaces and keys, and the Promotions.
func seed(ctx context.Context, c client.Client, w *world, f fleet) error {
	for _, t := range f.tenants {
		if err := w.seedRepo(t, gitFiles(w, f, t)); err != nil {
			return err
		}
	}
	if err := parallel(len(f.apps), 8, func(i int) error {
		_, err := w.release(f.apps[i].source(), "1.0.0")
		return err
	}); err != nil {
		return err
	}
	var objs []client.Object
	for _, t := range f.tenants {
		objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t}})
		for _, st := range stages {
			objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: stageNamespace(t, st)}})
		}
		objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "release-key", Namespace: t},
			Data: map[string][]byte{"cosign.pub": w.pubPEM}})
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return parallel(len(f.apps), 8, func(i int) error {
		p := promotion(w, f.apps[i])
		if err := c.Create(ctx, p); err != nil {
			return fmt.Errorf("creating Promotion %s/%s: %w", p.Namespace, p.Name, err)
		}
		return nil
	})
}

// parallel runs fn for 0..n-1 on at most workers goroutines and returns the first error.
func parallel(n, workers int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for k := 0; k < workers; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
