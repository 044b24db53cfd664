package signature

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies why verification failed, so that a controller can decide between waiting for a signature to
// appear, stalling on bad input, and retrying a transient registry failure (an error with no Kind).
type Kind string

const (
	// KindUnsigned: the image exists but carries no signature in either layout.
	KindUnsigned Kind = "Unsigned"
	// KindUntrusted: signatures exist but fewer than the threshold come from accepted signers.
	KindUntrusted Kind = "Untrusted"
	// KindDigestMismatch: an accepted signer signed, but over another digest than the image's.
	KindDigestMismatch Kind = "DigestMismatch"
	// KindMissingAttestation: the image is signed, but a required attestation is absent or untrusted.
	KindMissingAttestation Kind = "MissingAttestation"
	// KindNotFound: the image digest does not exist in the repository.
	KindNotFound Kind = "NotFound"
	// KindMalformed: the reference, a key, the trusted root or another policy input cannot be used.
	KindMalformed Kind = "Malformed"
	// KindTooLarge: the registry holds more signature material for the digest than one verification reads (too
	// many referrers or layers, or too many bytes); nothing was trusted. It lasts until the repository is
	// cleaned up: retrying sooner reads the same.
	KindTooLarge Kind = "TooLarge"
)

// Error is a verification failure of a known kind. Reasons lists, per candidate signature or attestation, exactly
// why it was not accepted, e.g. "signature 2 (referrer sha256:…): key mismatch".
type Error struct {
	Kind    Kind
	Ref     string
	Message string
	Reasons []string
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Ref != "" {
		fmt.Fprintf(&b, "verifying %s: ", e.Ref)
	}
	b.WriteString(e.Message)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if len(e.Reasons) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(e.Reasons, "; "))
		b.WriteString(")")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of a verification error, or "" for errors of no known kind (such as a registry that
// could not be reached), which are worth retrying.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

func malformed(format string, args ...any) *Error {
	return &Error{Kind: KindMalformed, Message: fmt.Sprintf(format, args...)}
}
