package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/sync"
)

// ModeSyncer sends each stage to the engine of its sync.mode: Ferry's own (gitops-engine), or the adapter to the
// Argo CD or Flux controller that syncs it. A mode without an engine is refused when the stage's target is made
// (see externalTarget), so a stage is never pinned and then left waiting on something that will not come.
type ModeSyncer struct {
	Ferry  Syncer
	ArgoCD Syncer
	Flux   Syncer
}

// Supports says whether a stage in mode can be synced by this controller.
func (m *ModeSyncer) Supports(mode ferryv1.SyncMode) bool { return m.engine(mode) != nil }

func (m *ModeSyncer) engine(mode ferryv1.SyncMode) Syncer {
	switch mode {
	case ferryv1.SyncArgoCD:
		return m.ArgoCD
	case ferryv1.SyncFlux:
		return m.Flux
	default:
		return m.Ferry
	}
}

func (m *ModeSyncer) route(t SyncTarget) (Syncer, error) {
	if e := m.engine(t.Mode); e != nil {
		return e, nil
	}
	return nil, fmt.Errorf("sync mode %s is not served by this controller", t.Mode)
}

// Apply asks the stage's engine to apply revision.
func (m *ModeSyncer) Apply(ctx context.Context, t SyncTarget, dir, revision string) ([]sync.ObjectRef, error) {
	e, err := m.route(t)
	if err != nil {
		return nil, err
	}
	return e.Apply(ctx, t, dir, revision)
}

// Objects names what the stage declares, as its engine sees it.
func (m *ModeSyncer) Objects(t SyncTarget, dir string) ([]sync.ObjectRef, error) {
	e, err := m.route(t)
	if err != nil {
		return nil, err
	}
	return e.Objects(t, dir)
}

// Render renders the stage's files, as its engine would apply them.
func (m *ModeSyncer) Render(t SyncTarget, dir string) ([]*unstructured.Unstructured, error) {
	e, err := m.route(t)
	if err != nil {
		return nil, err
	}
	return e.Render(t, dir)
}

// Health assesses the stage through its engine.
func (m *ModeSyncer) Health(ctx context.Context, t SyncTarget, objects []sync.ObjectRef, declaredImage string) (Health, error) {
	e, err := m.route(t)
	if err != nil {
		return Health{}, err
	}
	return e.Health(ctx, t, objects, declaredImage)
}

// Expect announces each engine's targets to it.
func (m *ModeSyncer) Expect(targets []SyncTarget) error {
	byEngine := map[Syncer][]SyncTarget{}
	for _, t := range targets {
		if e := m.engine(t.Mode); e != nil {
			byEngine[e] = append(byEngine[e], t)
		}
	}
	for e, ts := range byEngine {
		if err := e.Expect(ts); err != nil {
			return err
		}
	}
	return nil
}

// OnChange registers fn with every engine.
func (m *ModeSyncer) OnChange(fn func(owner string)) {
	for _, e := range m.engines() {
		e.OnChange(fn)
	}
}

// Forget tells every engine the stage is gone.
func (m *ModeSyncer) Forget(owner string) {
	for _, e := range m.engines() {
		e.Forget(owner)
	}
}

func (m *ModeSyncer) engines() []Syncer {
	var out []Syncer
	for _, e := range []Syncer{m.Ferry, m.ArgoCD, m.Flux} {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

// modeSupporter is a Syncer that serves only some sync modes (ModeSyncer); any other Syncer serves Ferry's own.
type modeSupporter interface{ Supports(ferryv1.SyncMode) bool }

// externalTarget fills in the object that syncs stage i in an external mode, and refuses a mode this controller
// does not serve.
func (r *PromotionReconciler) externalTarget(p *ferryv1.Promotion, i int, t *SyncTarget) error {
	spec := p.Spec.Stages[i].Sync
	t.Mode = spec.Mode
	if !r.servesMode(spec.Mode) {
		return stalling(ReasonNotSupported, fmt.Sprintf("spec.stages[%d].sync.mode", i),
			"%s is not served by this controller (it was started without that engine)", spec.Mode)
	}
	switch spec.Mode {
	case ferryv1.SyncArgoCD:
		t.External = ExternalRef{Kind: "Application", Namespace: orDefault(spec.ArgoCD.Namespace, "argocd"), Name: spec.ArgoCD.Name}
	case ferryv1.SyncFlux:
		t.External = ExternalRef{Kind: orDefault(string(spec.Flux.Kind), string(ferryv1.FluxKustomization)),
			Namespace: orDefault(spec.Flux.Namespace, p.Namespace), Name: spec.Flux.Name}
	}
	return nil
}

func (r *PromotionReconciler) servesMode(mode ferryv1.SyncMode) bool {
	if m, ok := r.Engines.Sync.(modeSupporter); ok {
		return m.Supports(mode)
	}
	return mode == "" || mode == ferryv1.SyncFerry
}
