package metrics

import (
	"slices"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// The label values below are closed sets so that series cannot multiply. A value outside its set is a bug in
// the caller; it is recorded as "unknown" rather than as a new label value or a panic in the controller.
const unknown = "unknown"

// closedLabel is v when it is one of set, else unknown.
func closedLabel[T ~string](v T, set ...T) string {
	if slices.Contains(set, v) {
		return string(v)
	}
	return unknown
}

// Result is how a digest's time in a stage ended.
type Result string

// Results of ferry_promotions_total.
const (
	ResultPromoted   Result = "promoted"
	ResultFailed     Result = "failed"
	ResultRolledBack Result = "rolled_back"
	ResultRejected   Result = "rejected"
	ResultSuperseded Result = "superseded"
)

func (r Result) label() string {
	return closedLabel(r, ResultPromoted, ResultFailed, ResultRolledBack, ResultRejected, ResultSuperseded)
}

// ResultOf maps a stage history outcome to its result label, so that the history entry and the counter always
// agree.
func ResultOf(o ferryv1.Outcome) Result {
	switch o {
	case ferryv1.OutcomePromoted:
		return ResultPromoted
	case ferryv1.OutcomeFailed:
		return ResultFailed
	case ferryv1.OutcomeRolledBack:
		return ResultRolledBack
	case ferryv1.OutcomeRejected:
		return ResultRejected
	case ferryv1.OutcomeSuperseded:
		return ResultSuperseded
	}
	return Result(unknown)
}

// VerificationReason is why a digest failed verification.
type VerificationReason string

// Reasons of ferry_verification_failures_total.
const (
	VerificationUnsigned           VerificationReason = "unsigned"
	VerificationUntrusted          VerificationReason = "untrusted"
	VerificationDigestMismatch     VerificationReason = "digest_mismatch"
	VerificationMissingAttestation VerificationReason = "missing_attestation"
	VerificationNotFound           VerificationReason = "not_found"
	VerificationMalformed          VerificationReason = "malformed"
	VerificationTooLarge           VerificationReason = "too_large"
)

func (r VerificationReason) label() string {
	return closedLabel(r, VerificationUnsigned, VerificationUntrusted, VerificationDigestMismatch, VerificationMissingAttestation,
		VerificationNotFound, VerificationMalformed, VerificationTooLarge)
}

// RollbackReason is why a stage was rolled back.
type RollbackReason string

// Reasons of ferry_rollbacks_total.
const (
	RollbackManual         RollbackReason = "manual"
	RollbackAnalysisFailed RollbackReason = "analysis_failed"
	RollbackHealthFailed   RollbackReason = "health_failed"
)

func (r RollbackReason) label() string {
	return closedLabel(r, RollbackManual, RollbackAnalysisFailed, RollbackHealthFailed)
}

// NotificationResult is what became of a notification.
type NotificationResult string

// Results of ferry_notifications_total.
const (
	NotificationDelivered NotificationResult = "delivered"
	NotificationFailed    NotificationResult = "failed"
	NotificationDropped   NotificationResult = "dropped"
)

func (r NotificationResult) label() string {
	return closedLabel(r, NotificationDelivered, NotificationFailed, NotificationDropped)
}
