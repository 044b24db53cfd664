package promotionctl

import (
	"context"
	"fmt"
	"unicode/utf8"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// RequestKind is one of the annotations through which a person asks Ferry's controller to act on a stage. The
// controller records who asked — the user the audit webhook authenticated, else the annotation's field manager
// (marked unauthenticated) — acts, then removes the annotation.
type RequestKind struct {
	Annotation string // the annotation's key
	Command    string // the ferry command that sets it; names the field manager "ferry-<command>:<user>"
	Noun       string // the request in a sentence: "a rollback"
}

// The requests a person can make.
var (
	RollbackRequest  = RequestKind{Annotation: ferryv1.RollbackAnnotation, Command: "rollback", Noun: "a rollback"}
	ApproveRequest   = RequestKind{Annotation: ferryv1.ApproveAnnotation, Command: "approve", Noun: "an approval"}
	AbortRequest     = RequestKind{Annotation: ferryv1.AbortAnnotation, Command: "abort", Noun: "an abort"}
	ClearHoldRequest = RequestKind{Annotation: ferryv1.ClearHoldAnnotation, Command: "clear-hold", Noun: "a hold release"}
)

// Request validates a request against the Promotion as it is now (plan returns the annotation's value, or why
// the request cannot be made) and sets the annotation with a merge patch that carries the resourceVersion it
// validated, so that a concurrent change makes it validate again rather than act on a stale view. It refuses
// while an earlier request of the same kind is pending. On any refusal the Promotion is left unchanged; the API
// server's own errors (Forbidden, for a user whose role does not allow the patch) are returned unwrapped.
func (k RequestKind) Request(ctx context.Context, c client.Client, ns, name string,
	plan func(*ferryv1.Promotion) (string, error)) error {
	manager := ""
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := Get(ctx, c, ns, name)
		if err != nil {
			return err
		}
		value, err := plan(p)
		if err != nil {
			return err
		}
		if v, ok := p.Annotations[k.Annotation]; ok {
			return fmt.Errorf("%s is already pending on promotion %q (%s=%q): wait for the controller to "+
				"finish it, or remove the annotation to cancel it", k.Noun, p.Name, k.Annotation, v)
		}
		if manager == "" {
			manager = RequesterManager(ctx, c, k.Command)
		}
		patch := client.MergeFromWithOptions(p.DeepCopy(), client.MergeFromWithOptimisticLock{})
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k.Annotation] = value
		return c.Patch(ctx, p, patch, client.FieldOwner(manager))
	})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("setting %s on promotion %q: it kept changing under us: %w", k.Annotation, name, err)
	}
	return err
}

// maxManagerLength is the API server's limit for field manager names.
const maxManagerLength = 128

// RequesterManager names the field manager of a request annotation after the user the API server
// authenticated, "ferry-<command>:<user>", so that the controller can record who asked (it reads the
// annotation's manager from managedFields). Without the SelfSubjectReview API it is just "ferry-<command>".
func RequesterManager(ctx context.Context, c client.Client, command string) string {
	manager := "ferry-" + command
	user := WhoAmI(ctx, c)
	if user == "" {
		return manager
	}
	manager += ":" + user
	for len(manager) > maxManagerLength { // cut whole characters only
		_, size := utf8.DecodeLastRuneInString(manager)
		manager = manager[:len(manager)-size]
	}
	return manager
}

// WhoAmI is the user name the API server authenticates the client as, or "" when it cannot tell (the
// SelfSubjectReview API is off, or the client's scheme lacks it).
func WhoAmI(ctx context.Context, c client.Client) string {
	review := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(ctx, review); err != nil {
		return ""
	}
	return review.Status.UserInfo.Username
}
