package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations understood by Ferry on a Promotion.
const (
	// RollbackAnnotation asks Ferry to roll one stage back, for on-call engineers. The value is either
	// "<stage>" (roll back to the stage's previous digest from its history) or "<stage>=sha256:<hex>" (roll back
	// to that digest, which must appear in the stage's history). Ferry commits the older pin to Git with a
	// Ferry-Rollback trailer naming who set the annotation (see RequestedByPrefix), syncs it, records it in
	// status and events, removes the annotation when done, and holds the stage on that digest until a newer
	// digest arrives or the hold is cleared with ClearHoldAnnotation. The annotation can never skip signature
	// verification.
	RollbackAnnotation = "ferry.dev/rollback"

	// ClearHoldAnnotation, set to a stage name, releases the hold that a rollback put on that stage so that
	// automatic promotion resumes. Ferry removes the annotation once the hold is cleared.
	ClearHoldAnnotation = "ferry.dev/clear-hold"

	// ApproveAnnotation, set to a stage name, lets a held analysis of that stage go on: the missing-data budget
	// starts again and a Marginal comparison is accepted. `ferry approve` sets it; Ferry records who set it and
	// removes it.
	ApproveAnnotation = "ferry.dev/approve"

	// AbortAnnotation, set to a stage name, fails the canary or analysis under way in that stage now: the
	// previous digest is committed back to Git. `ferry abort` sets it; Ferry records who set it and removes it.
	AbortAnnotation = "ferry.dev/abort"

	// RequestedByPrefix starts the companion of each annotation above: requested-by.ferry.dev/<name> (for example
	// requested-by.ferry.dev/rollback) holds the user the API server authenticated for the request that set or
	// changed ferry.dev/<name>. Ferry's audit webhook (config/webhook) writes it and overrules any value a client
	// writes; Ferry records it as who asked. Without the webhook, Ferry records the annotation's field manager
	// instead, which any client can choose, and marks it unauthenticated.
	RequestedByPrefix = "requested-by.ferry.dev/"

	// Finalizer is set on Promotions while Ferry may still have open pull requests to close on deletion.
	Finalizer = "ferry.dev/finalizer"
)

// PromotionSpec declares where digests come from, what they must prove, where Git declares them and the ordered
// stages they move through.
// +kubebuilder:validation:XValidation:rule="self.stages.all(s, self.stages.filter(x, x.name == s.name).size() == 1)",message="spec.stages: stage names must be unique",fieldPath=".stages",reason="FieldValueInvalid"
// +kubebuilder:validation:XValidation:rule="!has(self.notifications) || self.notifications.all(n, self.notifications.filter(x, x.name == n.name).size() == 1)",message="spec.notifications: receiver names must be unique",fieldPath=".notifications",reason="FieldValueInvalid"
// +kubebuilder:validation:XValidation:rule="!has(self.notifications) || self.notifications.all(n, !has(n.stages) || n.stages.all(s, self.stages.exists(x, x.name == s)))",message="spec.notifications: stages must name stages of spec.stages",fieldPath=".notifications",reason="FieldValueInvalid"
type PromotionSpec struct {
	// Source is the image repository that new digests are discovered in.
	// +required
	Source SourceSpec `json:"source"`

	// Verification is the signature and attestation policy every digest must satisfy before it enters any stage,
	// checked at the source and again in each stage's registry. It cannot be skipped.
	// +required
	Verification VerificationSpec `json:"verification"`

	// Git is the repository that declares what runs in every stage; Ferry writes digest pins to it.
	// +required
	Git GitSpec `json:"git"`

	// Stages are the ordered environments a digest moves through, first to last (for example dev, staging,
	// prod). The same digest moves through every stage; nothing is rebuilt.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Stages []StageSpec `json:"stages"`

	// Interval is how often the source is polled for new digests when no registry webhook arrives.
	// +optional
	// +kubebuilder:default="5m"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// HistoryLimit bounds each stage's history of digests in status (the digests a rollback can return to).
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=50
	HistoryLimit *int32 `json:"historyLimit,omitempty"`

	// Suspend stops Ferry from starting new promotions for this Promotion. Steps already under way finish.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// ServiceAccountName is a ServiceAccount of the Promotion's namespace that Ferry impersonates for everything
	// it reads and applies in the cluster it runs in (stages without a kubeconfig): a Promotion can only touch what
	// its own identity may touch. Without it, the controller's --default-service-account is used; with neither,
	// Ferry applies with its own identity.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// Notifications are the receivers told when stages change: a promotion starts, waits for approval, is
	// promoted, fails its analysis, is rolled back or held, or the Promotion stalls (see docs/notifications.md).
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	Notifications []NotificationReceiver `json:"notifications,omitempty"`
}

// LocalObjectReference names an object in the Promotion's namespace.
type LocalObjectReference struct {
	// Name of the object in the Promotion's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// SecretKeyReference names one key of a Secret in the Promotion's namespace.
type SecretKeyReference struct {
	// Name of the Secret in the Promotion's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key in the Secret's data. Each field that uses this type documents its default.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// ObjectKind is the kind of object a KeyReference points at.
// +kubebuilder:validation:Enum=ConfigMap;Secret
type ObjectKind string

// Kinds a KeyReference may point at.
const (
	ConfigMapKind ObjectKind = "ConfigMap"
	SecretKind    ObjectKind = "Secret"
)

// KeyReference names one key of a ConfigMap or Secret in the Promotion's namespace.
type KeyReference struct {
	// Kind of the object holding the key.
	// +optional
	// +kubebuilder:default=ConfigMap
	Kind ObjectKind `json:"kind,omitempty"`

	// Name of the object in the Promotion's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key in the object's data. Each field that uses this type documents its default.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// Promotion moves signed image digests through an ordered pipeline of stages: discover, verify, copy into the
// stage's registry, pin in Git (directly or through an approved pull request), sync, wait for health, analyse a
// canary, and roll back through Git when it fails.
//
// On-call engineers roll a stage back by annotating the Promotion with
// ferry.dev/rollback: "<stage>" or "<stage>=sha256:<hex>" (see RollbackAnnotation).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=promo;promos,categories=ferry
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.source.image`
// +kubebuilder:printcolumn:name="Candidate",type=string,JSONPath=`.status.candidate.tag`,description="Newest verified candidate tag"
// +kubebuilder:printcolumn:name="Stages",type=string,JSONPath=`.status.summary`,description="Each stage's phase, in order"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Promotion struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec PromotionSpec `json:"spec"`
	// +optional
	Status PromotionStatus `json:"status,omitempty"`
}

// PromotionList is a list of Promotions.
//
// +kubebuilder:object:root=true
type PromotionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Promotion `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Promotion{}, &PromotionList{})
}
