package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NotificationType is the payload a receiver understands.
// +kubebuilder:validation:Enum=Webhook;Slack
type NotificationType string

// Receiver types.
const (
	// NotificationWebhook posts Ferry's JSON payload, signed with HMAC-SHA256 in the X-Ferry-Signature header.
	NotificationWebhook NotificationType = "Webhook"
	// NotificationSlack posts a Slack-compatible incoming-webhook payload ({"text": ...}).
	NotificationSlack NotificationType = "Slack"
)

// NotificationEvent is a change of a Promotion's status a receiver can ask to hear about.
// +kubebuilder:validation:Enum=PromotionStarted;ApprovalNeeded;Promoted;AnalysisFailed;RolledBack;Held;Stalled
type NotificationEvent string

// Notification events, each derived from a change of status (see docs/notifications.md).
const (
	// EventPromotionStarted: a new digest entered a stage (not a rollback).
	EventPromotionStarted NotificationEvent = "PromotionStarted"
	// EventApprovalNeeded: a stage opened a pull request and waits for it to be merged.
	EventApprovalNeeded NotificationEvent = "ApprovalNeeded"
	// EventPromoted: a digest was promoted in a stage (healthy, analysed, soaked).
	EventPromoted NotificationEvent = "Promoted"
	// EventAnalysisFailed: a canary or soak analysis failed (measured, or aborted by a person).
	EventAnalysisFailed NotificationEvent = "AnalysisFailed"
	// EventRolledBack: a stage runs an earlier digest again after a rollback, and is held on it.
	EventRolledBack NotificationEvent = "RolledBack"
	// EventHeld: an analysis waits for a person (ferry approve / ferry abort).
	EventHeld NotificationEvent = "Held"
	// EventStalled: the Promotion stalled on bad input; it concerns no single stage.
	EventStalled NotificationEvent = "Stalled"
)

// NotificationReceiver is one place Ferry tells about the events it asks for. Its URL, a credential for Slack,
// lives in a Secret, never in the spec.
// +kubebuilder:validation:XValidation:rule="(self.type == 'Webhook') == has(self.hmacKeySecretRef)",message="hmacKeySecretRef: required when type is Webhook, and only then",fieldPath=".hmacKeySecretRef",reason="FieldValueInvalid"
type NotificationReceiver struct {
	// Name of the receiver, unique within the Promotion; it labels metrics and conditions.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Type of payload the receiver understands.
	// +required
	Type NotificationType `json:"type"`

	// URLSecretRef names the Secret key holding the URL to post to; the key defaults to "url". It must be
	// https, or http to a loopback address.
	// +required
	URLSecretRef SecretKeyReference `json:"urlSecretRef"`

	// HMACKeySecretRef names the Secret key holding the key (at least 16 bytes) Webhook payloads are signed
	// with; the key defaults to "hmac-key". Required for type Webhook, refused for Slack.
	// +optional
	HMACKeySecretRef *SecretKeyReference `json:"hmacKeySecretRef,omitempty"`

	// Events the receiver is told about.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=7
	// +listType=set
	Events []NotificationEvent `json:"events"`

	// Stages, when set, limits the stage events to these stages of spec.stages. Stalled concerns the whole
	// Promotion and is sent whatever this says.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=63
	// +listType=set
	Stages []string `json:"stages,omitempty"`
}

// PendingNotification is one message Ferry owes one receiver: written to status in the same patch that records
// the change it tells about, and removed once the receiver accepted it or Ferry gave up, so that a restarted
// controller sends what was not yet delivered, and only that.
type PendingNotification struct {
	// ID is the delivery id, stable across retries and restarts (the X-Ferry-Delivery header).
	// +required
	// +kubebuilder:validation:MaxLength=64
	ID string `json:"id"`

	// Receiver is the name of the receiver in spec.notifications.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Receiver string `json:"receiver"`

	// Event that happened.
	// +required
	Event NotificationEvent `json:"event"`

	// Stage it happened in; empty for Stalled.
	// +optional
	Stage string `json:"stage,omitempty"`

	// Digest the event concerns.
	// +optional
	Digest string `json:"digest,omitempty"`

	// PreviousDigest is what the stage ran before (or rolled back from).
	// +optional
	PreviousDigest string `json:"previousDigest,omitempty"`

	// Commit is Ferry's last commit for the stage.
	// +optional
	Commit string `json:"commit,omitempty"`

	// PullRequestURL is the pull request that asks for, or gave, approval.
	// +optional
	PullRequestURL string `json:"pullRequestURL,omitempty"`

	// Approver is who approved: the person who merged the pull request, or "automatic".
	// +optional
	Approver string `json:"approver,omitempty"`

	// RequestedBy is who asked for a rollback or an abort ("ferry" when Ferry decided).
	// +optional
	RequestedBy string `json:"requestedBy,omitempty"`

	// Message says what happened, in a sentence.
	// +optional
	Message string `json:"message,omitempty"`

	// Time of the change.
	// +required
	Time metav1.Time `json:"time"`
}
