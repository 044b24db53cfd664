package webhook

import (
	"net/http"
	"strings"
	"testing"
)

func FuzzSignature(f *testing.F) {
	f.Add([]byte(testSecret), []byte(distributionPush), Signature([]byte(testSecret), []byte(distributionPush)))
	f.Add([]byte(testSecret), []byte(`{}`), "sha256=")
	f.Add([]byte(testSecret), []byte(``), "sha256="+strings.Repeat("0", 64))
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		if len(secret) == 0 {
			return
		}
		good := Signature(secret, body)
		if !validSignature(secret, good, body) {
			t.Fatalf("the body's own signature %q is refused", good)
		}
		// Any other header is refused, unless it spells the same signature (hex case, surrounding blanks).
		if validSignature(secret, header, body) && !strings.EqualFold(strings.TrimSpace(header), good) {
			t.Fatalf("header %q accepted; the signature is %q", header, good)
		}
	})
}

func FuzzBearer(f *testing.F) {
	f.Add("Bearer " + testToken)
	f.Add("bearer x")
	f.Add("Basic abc")
	f.Add("")
	c, err := newCredentials([]byte(testToken), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r, _ := http.NewRequest(http.MethodPost, "http://ferry/registry", nil)
		r.Header.Set("Authorization", header)
		got, isBearer := bearer(header)
		if c.tokenOK(r) != (isBearer && got == testToken) {
			t.Fatalf("header %q: tokenOK %v, bearer %q %v", header, c.tokenOK(r), got, isBearer)
		}
	})
}
