package controllers

import (
	"errors"
	"fmt"
)

// StallingError is bad input: the spec or a referenced object must change before Ferry can go on. The
// reconciler sets Stalled with its reason and does not requeue; a watch on the referenced objects brings the
// Promotion back when they change.
type StallingError struct {
	// Reason is a CamelCase condition and event reason.
	Reason string
	// Field is the path of the spec field at fault, for example "spec.stages[1].registry.secretRef".
	Field string
	// Err says what is wrong with it.
	Err error
}

func (e *StallingError) Error() string { return fmt.Sprintf("%s: %v", e.Field, e.Err) }
func (e *StallingError) Unwrap() error { return e.Err }

// stalling builds a StallingError for a field.
func stalling(reason, field, format string, args ...any) *StallingError {
	return &StallingError{Reason: reason, Field: field, Err: fmt.Errorf(format, args...)}
}

// asStalling reports whether err is bad input, and returns it.
func asStalling(err error) (*StallingError, bool) {
	var s *StallingError
	ok := errors.As(err, &s)
	return s, ok
}

// WaitingError is a state that will pass without a change to the spec (no candidate yet, a candidate whose
// signatures are not there yet): Ready is False with its reason and the Promotion is polled again at its
// interval, without error backoff.
type WaitingError struct {
	Reason string
	Err    error
}

func (e *WaitingError) Error() string { return e.Err.Error() }
func (e *WaitingError) Unwrap() error { return e.Err }

func asWaiting(err error) (*WaitingError, bool) {
	var w *WaitingError
	ok := errors.As(err, &w)
	return w, ok
}

// Reasons of failures that retrying may fix, on the Ready condition while the reconcile is retried.
const (
	ReasonRegistryUnavailable = "RegistryUnavailable"
	ReasonGitUnavailable      = "GitUnavailable"
	ReasonForgeUnavailable    = "ForgeUnavailable"
	ReasonClusterUnavailable  = "ClusterUnavailable"
	// ReasonRegistryLimitExceeded: a registry serves more than Ferry reads (tags, attachments, manifest bytes);
	// retried, since tags may be deleted, but named apart from an outage so that nobody waits for one to end.
	ReasonRegistryLimitExceeded = "RegistryLimitExceeded"
)

// RetryingError is a failure of something outside Ferry that retrying may fix — a registry, the Git server, a
// forge or a stage's cluster not answering as it should. Ready is False with its reason, so on-call sees which
// of them is in the way, and the reconcile is retried with backoff.
type RetryingError struct {
	Reason string
	Err    error
}

func (e *RetryingError) Error() string { return e.Err.Error() }
func (e *RetryingError) Unwrap() error { return e.Err }

// retrying marks err as a retryable failure of what reason names.
func retrying(reason string, err error) error { return &RetryingError{Reason: reason, Err: err} }

// asRetrying reports whether err is a retryable failure of a peer, and returns it.
func asRetrying(err error) (*RetryingError, bool) {
	var r *RetryingError
	ok := errors.As(err, &r)
	return r, ok
}

// retryReason is the condition reason of a retried failure: the RetryingError's, else ReasonRetrying.
func retryReason(err error) string {
	if r, ok := asRetrying(err); ok {
		return r.Reason
	}
	return ReasonRetrying
}
