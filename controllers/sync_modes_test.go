package controllers

import (
	"testing"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// A canary cannot be held in a stage another controller applies: refused naming the field, not ignored.
func TestCanaryWithAnExternalSyncModeStalls(t *testing.T) {
	p := samplePromotion(t, "ns")
	last := len(p.Spec.Stages) - 1
	p.Spec.Stages[last].Canary = &ferryv1.CanarySpec{Replicas: 4, Steps: []ferryv1.CanaryStep{{Weight: 50}}}
	p.Spec.Stages[last].Sync.Mode = ferryv1.SyncFlux
	p.Spec.Stages[last].Sync.Flux = &ferryv1.FluxSyncSpec{Name: "shop"}
	stall, ok := asStalling(refuseNotActedOn(p))
	if want := "spec.stages[2].canary"; !ok || stall.Field != want || stall.Reason != ReasonNotSupported {
		t.Fatalf("got %v, want a %s stall on %s", stall, ReasonNotSupported, want)
	}
	p.Spec.Stages[last].Sync.Mode, p.Spec.Stages[last].Sync.Flux = ferryv1.SyncFerry, nil
	if err := refuseNotActedOn(p); err != nil {
		t.Errorf("a canary with sync.mode Ferry is refused: %v", err)
	}
}

// A mode this controller has no engine for stalls naming sync.mode; a served mode names its object.
func TestSyncModeWithoutItsEngineStalls(t *testing.T) {
	p := samplePromotion(t, "team")
	p.Spec.Stages[1].Sync.Mode = ferryv1.SyncArgoCD
	p.Spec.Stages[1].Sync.ArgoCD = &ferryv1.ArgoCDSyncSpec{Name: "shop-staging"}
	r := &PromotionReconciler{Engines: Engines{Sync: &ModeSyncer{Ferry: NewGitopsSyncer()}}}
	var target SyncTarget
	stall, ok := asStalling(r.externalTarget(p, 1, &target))
	if want := "spec.stages[1].sync.mode"; !ok || stall.Field != want || stall.Reason != ReasonNotSupported {
		t.Fatalf("got %v, want a %s stall on %s", stall, ReasonNotSupported, want)
	}
	r.Engines.Sync = &ModeSyncer{Ferry: NewGitopsSyncer(), ArgoCD: NewGitopsSyncer()}
	if err := r.externalTarget(p, 1, &target); err != nil {
		t.Fatal(err)
	}
	if want := (ExternalRef{Kind: "Application", Namespace: "argocd", Name: "shop-staging"}); target.External != want {
		t.Errorf("target names %v, want %v", target.External, want)
	}
	p.Spec.Stages[1].Sync.Mode, p.Spec.Stages[1].Sync.ArgoCD = ferryv1.SyncFlux, nil
	p.Spec.Stages[1].Sync.Flux = &ferryv1.FluxSyncSpec{Name: "shop-staging"}
	r.Engines.Sync = &ModeSyncer{Ferry: NewGitopsSyncer(), Flux: NewGitopsSyncer()}
	if err := r.externalTarget(p, 1, &target); err != nil {
		t.Fatal(err)
	}
	if want := (ExternalRef{Kind: "Kustomization", Namespace: "team", Name: "shop-staging"}); target.External != want {
		t.Errorf("target names %v, want %v", target.External, want)
	}
}

// Fields that say how Ferry renders and applies a stage are refused, naming them, when another controller does.
func TestRenderingFieldsOfAnExternalSyncStall(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		mutate     func(st *ferryv1.StageSpec)
	}{
		{"helm release name with Argo CD", "spec.stages[1].manifest.helm", func(st *ferryv1.StageSpec) {
			st.Sync.Mode, st.Sync.ArgoCD = ferryv1.SyncArgoCD, &ferryv1.ArgoCDSyncSpec{Name: "shop"}
			st.Manifest = ferryv1.ManifestSpec{Format: ferryv1.ManifestHelmValues,
				Helm: &ferryv1.HelmValuesSpec{KeyPath: "image", ReleaseName: "shop"}}
		}},
		{"prune with Flux", "spec.stages[1].sync.prune", func(st *ferryv1.StageSpec) {
			st.Sync.Mode, st.Sync.Flux, st.Sync.Prune = ferryv1.SyncFlux, &ferryv1.FluxSyncSpec{Name: "shop"}, true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePromotion(t, "ns")
			tc.mutate(&p.Spec.Stages[1])
			stall, ok := asStalling(refuseNotActedOn(p))
			if !ok || stall.Field != tc.want || stall.Reason != ReasonNotSupported {
				t.Fatalf("got %v, want a %s stall on %s", stall, ReasonNotSupported, tc.want)
			}
		})
	}
	p := samplePromotion(t, "ns")
	p.Spec.Stages[1].Sync.Mode, p.Spec.Stages[1].Sync.ArgoCD = ferryv1.SyncArgoCD, &ferryv1.ArgoCDSyncSpec{Name: "shop"}
	p.Spec.Stages[1].Sync.Prune = true // Argo CD's sync operation carries it
	if err := refuseNotActedOn(p); err != nil {
		t.Errorf("prune with Argo CD is refused: %v", err)
	}
}
