package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// SignatureHeader carries the HMAC-SHA256 of the request body as "sha256=<hex>", the way GitHub-style
// webhooks sign (registries and adapters that sign use the same header).
const SignatureHeader = "X-Hub-Signature-256"

// MinSecretBytes is the shortest token or HMAC secret accepted: anything shorter can be guessed.
const MinSecretBytes = 16

// credentials are the shared secrets a caller may prove. Only the token's SHA-256 is kept, so that comparing it
// takes the same time whatever the presented token's length; the HMAC secret has to be kept to sign bodies.
type credentials struct {
	tokenSum   *[sha256.Size]byte
	hmacSecret []byte
}

func newCredentials(token, hmacSecret []byte) (credentials, error) {
	var c credentials
	if len(token) == 0 && len(hmacSecret) == 0 {
		return c, ErrNoCredentials
	}
	if len(token) > 0 {
		if len(token) < MinSecretBytes {
			return c, fmt.Errorf("the webhook token is %d bytes; use at least %d random bytes (openssl rand -hex 32)", len(token), MinSecretBytes)
		}
		sum := sha256.Sum256(token)
		c.tokenSum = &sum
	}
	if len(hmacSecret) > 0 {
		if len(hmacSecret) < MinSecretBytes {
			return c, fmt.Errorf("the webhook HMAC secret is %d bytes; use at least %d random bytes (openssl rand -hex 32)", len(hmacSecret), MinSecretBytes)
		}
		c.hmacSecret = append([]byte(nil), hmacSecret...)
	}
	return c, nil
}

// tokenOK reports whether r presents the token, as "Authorization: Bearer <token>" or, for registries that can
// set no header, as the query parameter "token".
func (c credentials) tokenOK(r *http.Request) bool {
	if c.tokenSum == nil {
		return false
	}
	got, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		got = r.URL.Query().Get("token")
	}
	if got == "" {
		return false
	}
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], c.tokenSum[:]) == 1
}

// bearer returns the credentials of an "Authorization: Bearer" header; the scheme is case-insensitive.
func bearer(header string) (string, bool) {
	const scheme = "bearer "
	if len(header) < len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(header[len(scheme):]), true
}

// signatureOK reports whether header is the HMAC-SHA256 of body under the secret, as "sha256=<hex>".
func (c credentials) signatureOK(header string, body []byte) bool {
	if c.hmacSecret == nil {
		return false
	}
	return validSignature(c.hmacSecret, header, body)
}

func validSignature(secret []byte, header string, body []byte) bool {
	hexSum, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok || len(hexSum) != 2*sha256.Size {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	return hmac.Equal(got, mac(secret, body))
}

func mac(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

// Signature returns the value of SignatureHeader for body signed with secret, as a registry that signs sends it.
func Signature(secret, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, body))
}

// ValidateCredentials reports what NewHandler would refuse in a token and an HMAC secret: neither set, or one
// too short. Errors never contain a credential.
func ValidateCredentials(token, hmacSecret []byte) error {
	_, err := newCredentials(token, hmacSecret)
	return err
}

// Headers forges authenticate their events with.
const (
	// GiteaSignatureHeader carries the hex HMAC-SHA256 of the body under the webhook's secret, without a prefix.
	GiteaSignatureHeader = "X-Gitea-Signature"
	// GitLabTokenHeader carries the webhook's secret token itself.
	GitLabTokenHeader = "X-Gitlab-Token"
)

// forgeSecret is the shared secret of forge webhooks. Its SHA-256 is kept to compare GitLab's token in constant
// time whatever its length; the secret itself signs bodies for Gitea and GitHub.
type forgeSecret struct {
	secret []byte
	sum    [sha256.Size]byte
}

func newForgeSecret(secret []byte) (*forgeSecret, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("the forge webhook secret is %d bytes; use at least %d random bytes (openssl rand -hex 32)", len(secret), MinSecretBytes)
	}
	return &forgeSecret{secret: append([]byte(nil), secret...), sum: sha256.Sum256(secret)}, nil
}

// authentic reports whether a forge's event proves the secret, the way that forge proves it.
func (s *forgeSecret) authentic(forge Forge, h http.Header, body []byte) bool {
	switch forge {
	case ForgeGitea:
		return validHexMAC(s.secret, h.Get(GiteaSignatureHeader), body)
	case ForgeGitHub:
		return validSignature(s.secret, h.Get(SignatureHeader), body)
	case ForgeGitLab:
		token := h.Get(GitLabTokenHeader)
		if token == "" {
			return false
		}
		sum := sha256.Sum256([]byte(token))
		return subtle.ConstantTimeCompare(sum[:], s.sum[:]) == 1
	}
	return false
}

// validHexMAC reports whether header is the bare hex HMAC-SHA256 of body under secret, as Gitea signs.
func validHexMAC(secret []byte, header string, body []byte) bool {
	hexSum := strings.TrimSpace(header)
	if len(hexSum) != 2*sha256.Size {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	return hmac.Equal(got, mac(secret, body))
}

// ValidateForgeSecret reports what the forge endpoints would refuse in a secret (too short). Errors never
// contain the secret.
func ValidateForgeSecret(secret []byte) error {
	_, err := newForgeSecret(secret)
	return err
}
