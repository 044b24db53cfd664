package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// bearerRegistry fronts a registry with the token flow most public registries use: 401 with a Bearer challenge,
// a token endpoint (on the same host) that exchanges basic credentials for a token, and the token on requests.
func bearerRegistry(t *testing.T, user, pass string) (host string, tokens *atomic.Int64) {
	t.Helper()
	const token = "opaque-registry-token"
	tokens = &atomic.Int64{}
	backend := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				http.Error(w, "bad credentials", http.StatusUnauthorized)
				return
			}
			tokens.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]string{"token": token})
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="ferry-test"`, srv.URL))
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}`, http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), tokens
}

func TestCopyWithBearerTokenRegistry(t *testing.T) {
	const user, pass = "ci", "t0ken-pass"
	host, tokens := bearerRegistry(t, user, pass)
	srcRepo := mustRepo(t, startRegistry(t, true)+"/app")
	d := pushImage(t, srcRepo, 2048, 3)
	pushArtifact(t, srcRepo, nil, simpleSignType, []byte(`{}`), legacyTag(d, "sig"))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	kc, err := KeychainFromDockerConfigJSON([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, Options{Keychain: kc})
	res, err := c.Copy(context.Background(), srcRepo.Digest(d.String()).String(), host+"/app")
	if err != nil {
		t.Fatal(err)
	}
	if res.TagsCopied != 1 || res.BlobsCopied != 5 { // 3 layers + config; the signature payload and its config are both "{}"
		t.Errorf("result %+v", res)
	}
	// One handshake for the whole copy, whatever the number of parallel uploads.
	if n := tokens.Load(); n != 1 {
		t.Errorf("%d token exchanges, want 1", n)
	}
	// The copy came back through the token flow intact.
	if got, err := c.Resolve(context.Background(), host+"/app@"+d.String()); err != nil || got != d.String() {
		t.Errorf("Resolve = %q, %v", got, err)
	}

	wrong, _ := KeychainFromDockerConfigJSON([]byte(fmt.Sprintf(`{"auths":{%q:{"username":"ci","password":"nope"}}}`, host)))
	_, err = newTestClient(t, Options{Keychain: wrong}).Copy(context.Background(), srcRepo.Digest(d.String()).String(), host+"/other")
	if err == nil || strings.Contains(err.Error(), "nope") {
		t.Fatalf("copy with a wrong password: %v", err)
	}
}
