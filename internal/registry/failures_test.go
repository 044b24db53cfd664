package registry

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

func TestCopyRefusesBadInputAndWritesNothing(t *testing.T) {
	srcHost := startRegistry(t, false)
	src := mustRepo(t, srcHost+"/app")
	d := pushImage(t, src, 1024, 1)
	dstHost := startRegistry(t, false)
	dst := mustRepo(t, dstHost+"/app")
	closed := closedPort(t)
	c := newTestClient(t, Options{})

	for _, tc := range []struct {
		name, src, dst string
		is             error
		contains       string
	}{
		{"tag where a digest is required", src.Tag("v1").String(), dst.String(), ErrDigestRequired, "source"},
		{"image not found", src.Digest(absentDigest(t).String()).String(), dst.String(), ErrNotFound, "not found"},
		{"repository not found", srcHost + "/nope@" + d.String(), dst.String(), ErrNotFound, "not found"},
		{"source registry not listening", closed + "/app@" + d.String(), dst.String(), nil, "connection refused"},
		{"empty source", "", dst.String(), nil, "source: a reference is required"},
		{"short digest", src.String() + "@sha256:abc", dst.String(), nil, "source"},
		{"unknown algorithm", src.String() + "@md5:d41d8cd98f00b204e9800998ecf8427e", dst.String(), nil, "source"},
		{"upper-case repository", srcHost + "/App@" + d.String(), dst.String(), nil, "source"},
		{"whitespace", " " + src.Digest(d.String()).String(), dst.String(), nil, "whitespace"},
		{"destination with tag", src.Digest(d.String()).String(), dst.String() + ":v1", nil, "destination"},
		{"destination with digest", src.Digest(d.String()).String(), dst.Digest(d.String()).String(), nil, "destination"},
		{"empty destination", src.Digest(d.String()).String(), "", nil, "destination: a reference is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Copy(context.Background(), tc.src, tc.dst)
			if err == nil {
				t.Fatal("copy succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not mention %q", err, tc.contains)
			}
			assertNothingAt(t, dst, d)
		})
	}

	t.Run("destination registry not listening", func(t *testing.T) {
		_, err := c.Copy(context.Background(), src.Digest(d.String()).String(), closed+"/app")
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("error = %v, want connection refused", err)
		}
	})
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// flakyRegistry sits in front of a real registry and breaks blob uploads: fail decides, per upload PUT, whether
// to answer 500, reset the connection, or pass it through.
type flakyRegistry struct {
	backend string
	mu      sync.Mutex
	puts    int
	fail    func(n int, digest string) string // "500", "reset" or ""
}

func startFlaky(t *testing.T, fail func(n int, digest string) string) (*flakyRegistry, string) {
	t.Helper()
	f := &flakyRegistry{backend: startRegistry(t, false), fail: fail}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: f.backend})
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			f.mu.Lock()
			f.puts++
			mode := f.fail(f.puts, r.URL.Query().Get("digest"))
			f.mu.Unlock()
			switch mode {
			case "500":
				_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 512))
				http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}`, http.StatusInternalServerError)
				return
			case "reset":
				_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 512))
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					if tc, ok := conn.(*net.TCPConn); ok {
						_ = tc.SetLinger(0) // RST instead of FIN
					}
					conn.Close()
				}
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

func TestCopyRetriesTransientFailures(t *testing.T) {
	for _, mode := range []string{"500", "reset"} {
		t.Run(mode, func(t *testing.T) {
			src := newSignedImage(t, startRegistry(t, true))
			// The first three upload PUTs fail; retries must complete the copy.
			flaky, host := startFlaky(t, func(n int, _ string) string {
				if n <= 3 {
					return mode
				}
				return ""
			})
			res, err := newTestClient(t, Options{}).Copy(context.Background(), src.repo.Digest(src.digest.String()).String(), host+"/app")
			if err != nil {
				t.Fatalf("copy did not recover from transient failures: %v", err)
			}
			if flaky.puts <= 3 {
				t.Fatalf("only %d upload PUTs seen; the failures were not exercised", flaky.puts)
			}
			backend := mustRepo(t, flaky.backend+"/app")
			if got := descriptorOf(t, backend.Digest(src.digest.String())).Digest; got != src.digest {
				t.Errorf("destination serves %s, want %s", got, src.digest)
			}
			if res.Digest != src.digest.String() {
				t.Errorf("result digest %s", res.Digest)
			}
		})
	}
}

func TestCopyNeverReportsAPartialCopy(t *testing.T) {
	srcRepo := mustRepo(t, startRegistry(t, false)+"/app")
	d := pushImage(t, srcRepo, 4096, 4)
	var poisoned string
	flaky, host := startFlaky(t, func(n int, digest string) string {
		// One blob fails on every attempt, alternately with a 500 and a reset; the others go through.
		if poisoned == "" {
			poisoned = digest
		}
		if digest == poisoned {
			return map[bool]string{true: "500", false: "reset"}[n%2 == 0]
		}
		return ""
	})
	res, err := newTestClient(t, Options{}).Copy(context.Background(), srcRepo.Digest(d.String()).String(), host+"/app")
	if err == nil {
		t.Fatalf("copy reported success with a blob that never arrived: %+v", res)
	}
	if !strings.Contains(err.Error(), poisoned) || !strings.Contains(err.Error(), "giving up after 5 attempts") {
		t.Errorf("error %q does not name the failing blob and the attempts", err)
	}
	assertNothingAt(t, mustRepo(t, flaky.backend+"/app"), d)
}

// tlsRegistry serves a registry over TLS on loopback and returns its host and CA certificate (PEM).
func tlsRegistry(t *testing.T) (string, []byte) {
	t.Helper()
	srv := httptest.NewUnstartedServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return strings.TrimPrefix(srv.URL, "https://"), caPEM
}

func TestCopyOverTLSWithCABundle(t *testing.T) {
	host, ca := tlsRegistry(t)
	// Seed the TLS registry through Ferry itself: plain source, TLS destination.
	srcRepo := mustRepo(t, startRegistry(t, false)+"/app")
	d := pushImage(t, srcRepo, 1024, 2)

	if _, err := newTestClient(t, Options{}).Copy(context.Background(), srcRepo.Digest(d.String()).String(), host+"/app"); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("copy to an untrusted TLS registry: error = %v, want a certificate error", err)
	}
	c := newTestClient(t, Options{CABundle: ca})
	if _, err := c.Copy(context.Background(), srcRepo.Digest(d.String()).String(), host+"/app"); err != nil {
		t.Fatal(err)
	}
	got, err := c.Resolve(context.Background(), host+"/app@"+d.String())
	if err != nil || got != d.String() {
		t.Fatalf("Resolve over TLS = %q, %v", got, err)
	}

	if _, err := NewClient(Options{CABundle: []byte("not pem")}); err == nil || !strings.Contains(err.Error(), "CA bundle") {
		t.Errorf("invalid CA bundle accepted: %v", err)
	}
}

func TestPlainHTTPOnlyForLoopbackOrInsecure(t *testing.T) {
	o := Options{Insecure: []string{"registry.internal:5000"}}
	if !o.plainHTTPAllowed("registry.internal:5000") || o.plainHTTPAllowed("registry.internal:5001") {
		t.Error("Insecure must allow exactly the listed host:port")
	}
	// The policy transport refuses before dialing: no packet leaves for a non-loopback host.
	pt := policyTransport{opts: Options{}, inner: roundTripFunc(func(*http.Request) (*http.Response, error) {
		t.Fatal("request reached the network")
		return nil, nil
	})}
	req, _ := http.NewRequest(http.MethodGet, "http://registry.example.com/v2/", nil)
	if _, err := pt.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "refusing plain HTTP") {
		t.Errorf("plain HTTP to a remote host: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// basicAuthRegistry puts HTTP basic authentication in front of a registry.
func basicAuthRegistry(t *testing.T, user, pass string) string {
	t.Helper()
	backend := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="ferry-test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestCopyWithDockerConfigJSONCredentials(t *testing.T) {
	const user, pass = "robot", "s3cret-Pa55"
	host := basicAuthRegistry(t, user, pass)
	srcRepo := mustRepo(t, startRegistry(t, false)+"/app")
	d := pushImage(t, srcRepo, 1024, 2)
	pushArtifact(t, srcRepo, nil, simpleSignType, []byte(`{}`), legacyTag(d, "sig"))

	_, err := newTestClient(t, Options{}).Copy(context.Background(), srcRepo.Digest(d.String()).String(), host+"/app")
	if err == nil || !strings.Contains(err.Error(), "denied access") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("anonymous copy to an authenticated registry: %v", err)
	}

	cfg := fmt.Sprintf(`{"auths":{"http://%s/v2/":{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	kc, err := KeychainFromDockerConfigJSON([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, Options{Keychain: kc})
	res, err := c.Copy(context.Background(), srcRepo.Digest(d.String()).String(), host+"/app")
	if err != nil {
		t.Fatal(err)
	}
	if res.TagsCopied != 1 {
		t.Errorf("signature tag not copied: %+v", res)
	}
	if got, err := c.Resolve(context.Background(), host+"/app:"+legacyTag(d, "sig")); err != nil || !strings.HasPrefix(got, "sha256:") {
		t.Errorf("Resolve with credentials = %q, %v", got, err)
	}
}

// Clients share a transport only with the same trust: a Client with a CA bundle never lends it to one without.
func TestTransportsSharedOnlyWithTheSameTrust(t *testing.T) {
	host, ca := tlsRegistry(t)
	srcRepo := mustRepo(t, startRegistry(t, false)+"/app")
	d := pushImage(t, srcRepo, 512, 1)
	trusted := newTestClient(t, Options{CABundle: ca})
	if _, err := trusted.Copy(context.Background(), srcRepo.Digest(d.String()).String(), host+"/app"); err != nil {
		t.Fatal(err)
	}
	if _, err := newTestClient(t, Options{}).Resolve(context.Background(), host+"/app@"+d.String()); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client without the CA bundle reached the TLS registry after one with it: %v", err)
	}
	again := newTestClient(t, Options{CABundle: ca})
	if again.pool != trusted.pool {
		t.Error("two clients with the same CA bundle got different transports")
	}
	if other := newTestClient(t, Options{CABundle: ca, Jobs: 9}); other.pool == trusted.pool {
		t.Error("clients with different pool sizes share a transport")
	}
}

func TestSharedTransportsAreBounded(t *testing.T) {
	c := &transportCache{byKey: map[transportKey]*http.Transport{}}
	first := transportKey{jobs: 1}
	c.put(first, &http.Transport{})
	for i := 2; i <= maxSharedTransports; i++ {
		c.put(transportKey{jobs: i}, &http.Transport{})
	}
	if _, ok := c.get(first); !ok { // now the most recently used
		t.Fatal("the first transport is gone before the bound is reached")
	}
	c.put(transportKey{jobs: maxSharedTransports + 1}, &http.Transport{})
	if len(c.byKey) != maxSharedTransports || len(c.order) != maxSharedTransports {
		t.Fatalf("%d transports kept (%d in order), want %d", len(c.byKey), len(c.order), maxSharedTransports)
	}
	if _, ok := c.get(first); !ok {
		t.Error("the most recently used transport was evicted")
	}
	if _, ok := c.get(transportKey{jobs: 2}); ok {
		t.Error("the least recently used transport was kept")
	}
}
