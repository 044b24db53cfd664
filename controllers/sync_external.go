package controllers

import (
	"errors"
	"fmt"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// This file is shared by the external sync modes (Argo CD, Flux): what they report that the reconciler acts on
// the same way whichever controller syncs the stage.

// ExternalMissing says the object named to sync a stage (SyncTarget.External) does not exist in its cluster.
// Nothing Ferry retries will create it, so the stage stalls naming the field that names the object; the engine
// watches the object's namespace, so creating it brings the stage back at once.
type ExternalMissing struct {
	Ref ExternalRef
	// Detail says more when the object's kind itself is not served (its controller's CRDs not installed).
	Detail string
}

func (e *ExternalMissing) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s not found: %s", e.Ref, e.Detail)
	}
	return fmt.Sprintf("%s not found: it must exist before Ferry can ask it to sync the stage", e.Ref)
}

// ReasonExternalNotFound: the Argo CD Application or Flux object a stage names does not exist.
const ReasonExternalNotFound = "ExternalObjectNotFound"

// externalMissingField is the spec field that names the object syncing stage i in mode.
func externalMissingField(i int, mode ferryv1.SyncMode) string {
	switch mode {
	case ferryv1.SyncArgoCD:
		return fmt.Sprintf("spec.stages[%d].sync.argoCD.name", i)
	case ferryv1.SyncFlux:
		return fmt.Sprintf("spec.stages[%d].sync.flux.name", i)
	}
	return fmt.Sprintf("spec.stages[%d].sync.mode", i)
}

// externalMissingStall is the stall of stage i when err says that the object syncing it does not exist, naming
// the field that names the object (spec.stages[i].sync.argoCD.name, spec.stages[i].sync.flux.name); else nil.
func externalMissingStall(p *ferryv1.Promotion, i int, err error) *StallingError {
	var missing *ExternalMissing
	if !errors.As(err, &missing) {
		return nil
	}
	return &StallingError{Reason: ReasonExternalNotFound, Field: externalMissingField(i, p.Spec.Stages[i].Sync.Mode), Err: missing}
}
