package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DigestEvidence is what Ferry verified of one digest in a stage's registry: who signed it, under which policy,
// and what its attestations say. It is the evidence a release manager approves (docs/approval.md) and what a
// dashboard can show; everything in it is bounded, since attestations are written by whoever builds images.
type DigestEvidence struct {
	// Digest the evidence is about.
	// +required
	// +kubebuilder:validation:Pattern=`^sha256:[a-f0-9]{64}$`
	Digest string `json:"digest"`

	// Reference is where it was verified: the stage registry's repository@digest.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Reference string `json:"reference,omitempty"`

	// VerifiedAt is when it was verified.
	// +optional
	VerifiedAt *metav1.Time `json:"verifiedAt,omitempty"`

	// Signers are the distinct accepted signers of the digest.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Signers []SignerEvidence `json:"signers,omitempty"`

	// Policy is the verification policy that accepted them, as it was when the digest was verified.
	// +optional
	Policy *PolicyEvidence `json:"policy,omitempty"`

	// Attestations are the accepted attestations found, one per predicate type and content, summarised.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Attestations []AttestationEvidence `json:"attestations,omitempty"`
}

// SignerEvidence is one accepted signer: a key of spec.verification.keys, or a keyless certificate identity.
type SignerEvidence struct {
	// Key is the name spec.verification.keys gives the key that signed; empty for a keyless signer.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Key string `json:"key,omitempty"`

	// KeyFingerprint is the SHA-256 fingerprint of that key.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	KeyFingerprint string `json:"keyFingerprint,omitempty"`

	// Issuer is the OIDC issuer of a keyless signer's certificate.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Issuer string `json:"issuer,omitempty"`

	// Subject is the identity of a keyless signer's certificate (an email or a workflow URI).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Subject string `json:"subject,omitempty"`
}

// PolicyEvidence is the verification policy a digest was accepted under.
type PolicyEvidence struct {
	// Keys are the names of the accepted keys.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=63
	Keys []string `json:"keys,omitempty"`

	// Keyless are the accepted certificate identities.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Keyless []KeylessIdentity `json:"keyless,omitempty"`

	// Threshold is how many distinct signers were required.
	// +optional
	Threshold int32 `json:"threshold,omitempty"`

	// RequiredAttestations are the predicate types that had to be attested.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=512
	RequiredAttestations []string `json:"requiredAttestations,omitempty"`
}

// AttestationEvidence summarises one accepted attestation: for SLSA provenance who built the digest from which
// source, for an SBOM its format and size. Values are cut to their maximum length by Ferry.
type AttestationEvidence struct {
	// PredicateType of the in-toto statement.
	// +required
	// +kubebuilder:validation:MaxLength=512
	PredicateType string `json:"predicateType"`

	// Signer who signed the attestation: a key name or a certificate subject.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Signer string `json:"signer,omitempty"`

	// BuilderID is the SLSA builder's id.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	BuilderID string `json:"builderID,omitempty"`

	// SourceRepository is the source the build took, as the provenance records it.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	SourceRepository string `json:"sourceRepository,omitempty"`

	// SourceCommit is the commit of that source.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	SourceCommit string `json:"sourceCommit,omitempty"`

	// SBOMFormat is the SBOM's format and version, for example "SPDX-2.3" or "CycloneDX 1.5".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	SBOMFormat string `json:"sbomFormat,omitempty"`

	// Packages counts the SBOM's packages (SPDX) or components (CycloneDX); absent when it is no SBOM.
	// +optional
	Packages *int32 `json:"packages,omitempty"`
}
