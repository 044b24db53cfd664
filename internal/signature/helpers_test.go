package signature

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	st "github.com/ferrycd/ferry/internal/signature/signaturetest"
)

// keylessPolicy accepts the given identities (default: the test identity) under the offline Sigstore's root.
func keylessPolicy(k *st.Keyless, ids ...Identity) Policy {
	if len(ids) == 0 {
		ids = []Identity{{Issuer: st.Issuer, Subject: st.Subject}}
	}
	return Policy{Identities: ids, TrustedRoot: k.TrustedRootJSON}
}

func keyPolicy(keys ...*st.KeySigner) Policy {
	p := Policy{}
	for _, k := range keys {
		p.Keys = append(p.Keys, k.PublicKeyPEM)
	}
	return p
}

// verifyOK runs Verify and fails the test with the full error when it does not pass.
func verifyOK(t *testing.T, d name.Digest, p Policy) *Result {
	t.Helper()
	res, err := Verify(context.Background(), d.String(), p, nil)
	if err != nil {
		t.Fatalf("Verify(%s): %v", d, err)
	}
	return res
}

// verifyFails runs Verify and checks the error kind and that its text mentions each of want.
func verifyFails(t *testing.T, d string, p Policy, kind Kind, want ...string) *Error {
	t.Helper()
	_, err := Verify(context.Background(), d, p, nil)
	if err == nil {
		t.Fatalf("Verify(%s) passed, want a %s error", d, kind)
	}
	if got := KindOf(err); got != kind {
		t.Fatalf("Verify(%s) error kind = %q, want %q; error: %v", d, got, kind, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Verify(%s) error %q does not mention %q", d, err, w)
		}
	}
	var e *Error
	errors.As(err, &e)
	return e
}
