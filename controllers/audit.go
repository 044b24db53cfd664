package controllers

import (
	"context"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/audit"
)

// UnauthenticatedMark marks a requester Ferry names from an annotation's field manager: any client may give its
// request any field manager (kubectl annotate --field-manager=…), so the name proves nothing.
const UnauthenticatedMark = " (unauthenticated field manager)"

// annotationSetter names who asked for the request annotation key on p, for history, holds, events and
// analyses. With the audit webhook (r.AuditWebhook) that is the user the API server authenticated, which the
// webhook recorded in the annotation's companion (see package audit). Without it, or when the companion is
// missing — the request was made before the webhook was installed, or by Ferry's own service account, which
// the webhook configuration leaves out — it is the field manager that last set the annotation, marked
// UnauthenticatedMark. A companion is never believed without the webhook: anyone who may annotate could write one.
func (r *PromotionReconciler) annotationSetter(ctx context.Context, p *ferryv1.Promotion, key string) string {
	if r.AuditWebhook {
		if who, ok := audit.Requester(p.Annotations, key); ok {
			return who
		}
	}
	return audit.Name(r.fieldManager(ctx, p, key)) + UnauthenticatedMark
}

// fieldManager names the field manager that last set an annotation (kubectl-annotate, ferry-rollback:alice, …),
// or "unknown". The informer cache drops managed fields to save memory, so they are read from the API server,
// only when an annotation asks for something.
func (r *PromotionReconciler) fieldManager(ctx context.Context, p *ferryv1.Promotion, key string) string {
	fields := p.ManagedFields
	var fresh ferryv1.Promotion
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(p), &fresh); err == nil {
		fields = fresh.ManagedFields
	}
	needle := `"f:` + key + `"`
	who, when := "unknown", metav1.Time{}
	for _, mf := range fields {
		if mf.FieldsV1 == nil || !strings.Contains(string(mf.FieldsV1.Raw), needle) {
			continue
		}
		if mf.Time != nil && mf.Time.Before(&when) {
			continue
		}
		who = mf.Manager
		if mf.Time != nil {
			when = *mf.Time
		}
	}
	return who
}
