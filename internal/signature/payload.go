package signature

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// simpleSigning is the "critical" part of a cosign simple-signing payload; only it is covered by the policy.
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
}

// signedImageDigest returns the image digest a simple-signing payload vouches for. It accepts cosign's type and the
// containers/image "atomic" type, which share the format.
func signedImageDigest(payload []byte) (v1.Hash, error) {
	if len(payload) > maxPayloadBytes {
		return v1.Hash{}, fmt.Errorf("simple-signing payload is %d bytes, more than %d", len(payload), maxPayloadBytes)
	}
	var ss simpleSigning
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&ss); err != nil {
		return v1.Hash{}, fmt.Errorf("simple-signing payload is not JSON: %w", err)
	}
	if dec.More() {
		return v1.Hash{}, errors.New("simple-signing payload has trailing data")
	}
	switch strings.ToLower(ss.Critical.Type) {
	case "cosign container image signature", "atomic container signature":
	default:
		return v1.Hash{}, fmt.Errorf("simple-signing payload has type %q, not a container image signature", ss.Critical.Type)
	}
	h, err := v1.NewHash(ss.Critical.Image.DockerManifestDigest)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("simple-signing payload docker-manifest-digest %q: %w", ss.Critical.Image.DockerManifestDigest, err)
	}
	return h, nil
}

// dsseEnvelope mirrors the DSSE JSON envelope; parsed here so that malformed input gets a precise error before any
// signature check.
type dsseEnvelope struct {
	PayloadType string          `json:"payloadType"`
	Payload     string          `json:"payload"`
	Signatures  []dsseSignature `json:"signatures"`
}

type dsseSignature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

const inTotoPayloadType = "application/vnd.in-toto+json"

// parseEnvelope decodes a DSSE envelope carrying an in-toto statement.
func parseEnvelope(raw []byte) (*dsseEnvelope, error) {
	if len(raw) > maxPayloadBytes {
		return nil, fmt.Errorf("DSSE envelope is %d bytes, more than %d", len(raw), maxPayloadBytes)
	}
	var env dsseEnvelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("DSSE envelope is not JSON: %w", err)
	}
	if env.PayloadType != inTotoPayloadType {
		return nil, fmt.Errorf("DSSE envelope payload type %q is not %s", env.PayloadType, inTotoPayloadType)
	}
	if len(env.Signatures) != 1 {
		return nil, fmt.Errorf("DSSE envelope has %d signatures, want exactly 1", len(env.Signatures))
	}
	if _, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig); err != nil {
		return nil, fmt.Errorf("DSSE envelope signature is not base64: %w", err)
	}
	if _, err := decodeStatement(env.Payload); err != nil {
		return nil, err
	}
	return &env, nil
}

// statement is the part of an in-toto statement (v0.1 or v1) that policy decisions use.
type statement struct {
	Type          string `json:"_type"`
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	// Predicate is kept raw: only an accepted attestation's predicate is read, for its summary.
	Predicate json.RawMessage `json:"predicate"`
}

var statementTypes = map[string]bool{
	"https://in-toto.io/Statement/v0.1": true,
	"https://in-toto.io/Statement/v1":   true,
}

// decodeStatement decodes the base64 payload of a DSSE envelope into an in-toto statement.
func decodeStatement(b64 string) (*statement, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("DSSE payload is not base64: %w", err)
	}
	var st statement
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("in-toto statement is not JSON: %w", err)
	}
	if !statementTypes[st.Type] {
		return nil, fmt.Errorf("in-toto statement type %q is not supported", st.Type)
	}
	if st.PredicateType == "" {
		return nil, errors.New("in-toto statement has no predicate type")
	}
	if len(st.Subject) == 0 {
		return nil, errors.New("in-toto statement has no subject")
	}
	return &st, nil
}

// coversDigest reports whether the statement names the image digest among its subjects. Only the sha256 entry is
// compared, since that is the algorithm of the image digest; a subject with another sha256 does not count.
func (st *statement) coversDigest(d v1.Hash) bool {
	for _, s := range st.Subject {
		if strings.EqualFold(s.Digest[d.Algorithm], d.Hex) {
			return true
		}
	}
	return false
}

// subjectDigests lists the statement's sha256 subjects for error messages.
func (st *statement) subjectDigests() string {
	var out []string
	for _, s := range st.Subject {
		if h, ok := s.Digest["sha256"]; ok {
			out = append(out, "sha256:"+h)
		}
	}
	if len(out) == 0 {
		return "no sha256 subject"
	}
	return strings.Join(out, ", ")
}

// mustHex decodes a digest hex that v1.NewHash already validated.
func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(fmt.Sprintf("digest hex %q was validated but does not decode: %v", s, err))
	}
	return b
}
