package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// DigestPattern is the only digest form Ferry accepts: sha256 and 64 lowercase hex characters.
const DigestPattern = `^sha256:[a-f0-9]{64}$`

// SourceSpec is where new digests are discovered: a repository and either a tag policy or a pinned digest.
// +kubebuilder:validation:XValidation:rule="has(self.tagPolicy) != has(self.digest)",message="spec.source: set exactly one of tagPolicy or digest",reason="FieldValueInvalid"
type SourceSpec struct {
	// Image is the source repository without tag or digest, for example "ghcr.io/acme/shop".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.contains('@') && !self.matches(':[^/]*$')",message="spec.source.image: must be a repository without tag or digest (put the digest in spec.source.digest)"
	Image string `json:"image"`

	// TagPolicy chooses the newest acceptable tag; its digest is the candidate.
	// +optional
	TagPolicy *TagPolicy `json:"tagPolicy,omitempty"`

	// Digest pins the source to one digest instead of following tags.
	// +optional
	// +kubebuilder:validation:Pattern=`^sha256:[a-f0-9]{64}$`
	Digest string `json:"digest,omitempty"`

	// Registry holds how to reach the source registry: credentials and trust.
	// +optional
	Registry RegistryAccess `json:"registry,omitempty"`
}

// RegistryAccess holds the credentials and trust used to talk to one registry.
type RegistryAccess struct {
	// SecretRef names a Secret of type kubernetes.io/dockerconfigjson (key .dockerconfigjson) with credentials for
	// the registry. Without it the registry is used anonymously.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// CABundleRef names a ConfigMap or Secret key holding PEM certificates to trust for this registry, in addition
	// to the system roots. The key defaults to "ca.crt".
	// +optional
	CABundleRef *KeyReference `json:"caBundleRef,omitempty"`

	// Insecure allows plain HTTP to this registry. Loopback registries (localhost, 127.0.0.1) never need it.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
}

// TagPolicy chooses a candidate tag: a semantic-version range, or a regular expression and an order.
// +kubebuilder:validation:XValidation:rule="has(self.semver) != has(self.regex)",message="spec.source.tagPolicy: set exactly one of semver or regex",reason="FieldValueInvalid"
type TagPolicy struct {
	// Semver picks the highest tag within a semantic-version range.
	// +optional
	Semver *SemverPolicy `json:"semver,omitempty"`

	// Regex picks the newest tag that matches a regular expression.
	// +optional
	Regex *RegexPolicy `json:"regex,omitempty"`
}

// SemverPolicy picks the highest tag within a semantic-version range.
type SemverPolicy struct {
	// Range is a semantic-version constraint such as ">=1.4.0 <2.0.0" or "~1.4". Pre-release versions
	// (1.5.0-rc.1) are candidates only when the range names a pre-release, for example ">=1.5.0-0".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Range string `json:"range"`
}

// TagOrder says how tags that match a regular expression are ordered to find the newest.
// +kubebuilder:validation:Enum=Semver;Lexical
type TagOrder string

// Orders for RegexPolicy.
const (
	TagOrderSemver  TagOrder = "Semver"
	TagOrderLexical TagOrder = "Lexical"
)

// RegexPolicy picks the newest tag that matches a regular expression.
type RegexPolicy struct {
	// Pattern is an RE2 regular expression the whole tag must match, for example "^main-[0-9]+$".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Pattern string `json:"pattern"`

	// Order decides which matching tag is the newest.
	// +optional
	// +kubebuilder:default=Lexical
	Order TagOrder `json:"order,omitempty"`
}

// VerificationSpec is the signature and attestation policy: who must have signed a digest and which attestations
// it must carry. At least one key or keyless identity is required.
// +kubebuilder:validation:XValidation:rule="size(self.keys) + size(self.keyless) >= 1",message="spec.verification: at least one key or keyless identity is required; signature checks cannot be skipped",reason="FieldValueRequired"
// +kubebuilder:validation:XValidation:rule="size(self.keyless) == 0 || has(self.trustedRootRef)",message="spec.verification.trustedRootRef: required when keyless identities are set",fieldPath=".trustedRootRef",reason="FieldValueRequired"
// +kubebuilder:validation:XValidation:rule="self.threshold <= size(self.keys) + size(self.keyless)",message="spec.verification.threshold: cannot exceed the number of keys plus keyless identities",fieldPath=".threshold",reason="FieldValueInvalid"
type VerificationSpec struct {
	// Keys are cosign public keys; a signature made by any of them counts as one signer.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:default={}
	Keys []PublicKeySource `json:"keys,omitempty"`

	// Keyless are accepted Fulcio certificate identities (OIDC issuer and subject), verified offline against
	// TrustedRootRef.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:default={}
	Keyless []KeylessIdentity `json:"keyless,omitempty"`

	// TrustedRootRef names a ConfigMap or Secret key holding a Sigstore trusted root JSON (certificate authorities,
	// transparency logs, timestamp authorities). It is used offline; nothing is fetched. The key defaults to
	// "trusted_root.json".
	// +optional
	TrustedRootRef *KeyReference `json:"trustedRootRef,omitempty"`

	// RequiredAttestations are in-toto predicate types that must be attached to the digest and signed by an
	// accepted signer, such as "https://slsa.dev/provenance/v1", "https://spdx.dev/Document" or
	// "https://cyclonedx.org/bom".
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	RequiredAttestations []AttestationRequirement `json:"requiredAttestations,omitempty"`

	// Threshold is how many distinct signers (keys or identities) must have signed the digest.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	Threshold int32 `json:"threshold,omitempty"`

	// SignatureGracePeriod is how long a digest that carries no signature yet is waited for, counted from when
	// Ferry first saw it (status.candidate.discoveredAt), before it is rejected: CI often pushes an image and
	// signs it moments later. Meanwhile one Normal AwaitingSignature event says so, Ready is not set to False,
	// and the source is asked again every few seconds. A signature that is present but invalid, or made by a
	// signer the policy does not accept, is rejected at once. "0s" rejects an unsigned digest at once; at most 1h.
	// +optional
	// +kubebuilder:default="2m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="spec.verification.signatureGracePeriod: must be between 0s and 1h",reason="FieldValueInvalid"
	SignatureGracePeriod *metav1.Duration `json:"signatureGracePeriod,omitempty"`
}

// PublicKeySource is a cosign public key held in a Secret.
type PublicKeySource struct {
	// Name identifies the signer in status and events, for example "release-team".
	// +required
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// SecretRef names the Secret key holding the PEM public key; the key defaults to "cosign.pub".
	// +required
	SecretRef SecretKeyReference `json:"secretRef"`
}

// KeylessIdentity is an accepted certificate identity: an OIDC issuer and a subject, exact or as a pattern.
// +kubebuilder:validation:XValidation:rule="has(self.subject) != has(self.subjectRegex)",message="spec.verification.keyless: set exactly one of subject or subjectRegex",reason="FieldValueInvalid"
type KeylessIdentity struct {
	// Issuer is the OIDC issuer URL, for example "https://token.actions.githubusercontent.com".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Issuer string `json:"issuer"`

	// Subject is the exact certificate subject (an email or a workflow URI).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Subject string `json:"subject,omitempty"`

	// SubjectRegex is an RE2 regular expression the whole certificate subject must match.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	SubjectRegex string `json:"subjectRegex,omitempty"`
}

// AttestationRequirement is one predicate type that must be attested for a digest.
type AttestationRequirement struct {
	// PredicateType is the in-toto predicate type URI.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[a-zA-Z][-a-zA-Z0-9+.]*:\S+$`
	PredicateType string `json:"predicateType"`
}

// GitSpec is the repository that declares what runs in each stage.
type GitSpec struct {
	// URL of the repository: https://, http:// (loopback only), ssh:// or scp-like git@host:path.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^(https?://|ssh://|[a-zA-Z0-9._-]+@[a-zA-Z0-9.-]+:)\S+$`
	URL string `json:"url"`

	// Branch that Ferry commits pins to (and pull requests target).
	// +optional
	// +kubebuilder:default=main
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[^\s~^:?*\[\\]+$`
	Branch string `json:"branch,omitempty"`

	// SecretRef names a Secret with credentials: "username" and "password" (or a token as password) for HTTPS,
	// or "identity" (a private key) and optional "known_hosts" for SSH.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// Author of Ferry's commits.
	// +optional
	// +kubebuilder:default={}
	Author GitAuthor `json:"author,omitempty"`

	// CommitMessageTemplate is a Go text/template for the commit subject and body. Fields: .Promotion, .Stage,
	// .Image, .Digest, .PreviousDigest, .Source, .Rollback, .RollbackBy. Ferry always appends machine-readable trailers
	// (Ferry-Promotion, Ferry-Stage, Ferry-Digest, Ferry-Previous-Digest, Ferry-Source, Ferry-Rollback).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	CommitMessageTemplate string `json:"commitMessageTemplate,omitempty"`

	// Signing signs Ferry's commits with a GPG or SSH key.
	// +optional
	Signing *CommitSigning `json:"signing,omitempty"`
}

// GitAuthor is the name and email on Ferry's commits.
type GitAuthor struct {
	// Name of the author.
	// +optional
	// +kubebuilder:default=Ferry
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name,omitempty"`

	// Email of the author.
	// +optional
	// +kubebuilder:default="ferry@ferry.dev"
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+$`
	Email string `json:"email,omitempty"`
}

// SigningFormat is the kind of key used to sign commits.
// +kubebuilder:validation:Enum=GPG;SSH
type SigningFormat string

// Commit signing formats.
const (
	SigningGPG SigningFormat = "GPG"
	SigningSSH SigningFormat = "SSH"
)

// CommitSigning signs commits with a private key held in a Secret.
type CommitSigning struct {
	// Format of the key.
	// +required
	Format SigningFormat `json:"format"`

	// SecretRef names the Secret key holding the armored private key; the key defaults to "signing.key".
	// A passphrase, if any, is read from the key "passphrase" of the same Secret.
	// +required
	SecretRef SecretKeyReference `json:"secretRef"`
}
