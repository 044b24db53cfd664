package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// countingTransport counts every request that leaves Ferry, handshakes and retries included, so that results
// can report how hard a copy leaned on the registries.
type countingTransport struct {
	inner http.RoundTripper
	n     *atomic.Int64
}

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.inner.RoundTrip(req)
}

// conn is one registry as seen by one operation. Authentication is lazy: requests go out bare until the registry
// answers 401, and only then is the challenge handshake (ping, token) done once and the request replayed. An
// anonymous registry therefore costs no handshake at all.
type conn struct {
	reg    name.Registry
	opts   Options
	base   http.RoundTripper // policy + counting + connection pool
	scopes []string

	mu            sync.Mutex
	scheme        string // "https", or "http" for hosts allowed plain HTTP until they prove to speak TLS
	schemeSettled bool
	authed        http.RoundTripper // set after the first challenge
}

func newConn(reg name.Registry, opts Options, base http.RoundTripper, scopes []string) *conn {
	scheme := "https"
	if opts.plainHTTPAllowed(reg.RegistryStr()) {
		scheme = "http"
	}
	return &conn{reg: reg, opts: opts, base: base, scopes: scopes, scheme: scheme}
}

func (c *conn) url(path string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.scheme + "://" + c.reg.RegistryStr() + path
}

// do sends one request built by build (called again if the request has to be replayed) and returns the response
// if its status is one of ok; any other status becomes a *transport.Error carrying the registry's message.
func (c *conn) do(ctx context.Context, build func(url string) (*http.Request, error), path string, ok ...int) (*http.Response, error) {
	resp, err := c.send(ctx, build, path)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, ok...); err != nil {
		resp.Body.Close()
		var te *transport.Error
		if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
			return nil, fmt.Errorf("registry %s denied access (credentials missing or refused): %w", c.reg.RegistryStr(), err)
		}
		return nil, err
	}
	return resp, nil
}

func (c *conn) send(ctx context.Context, build func(url string) (*http.Request, error), path string) (*http.Response, error) {
	resp, err := c.roundTrip(ctx, build, path)
	if err != nil {
		return nil, err
	}
	if c.switchedToTLS(ctx, resp) {
		resp.Body.Close()
		return c.roundTrip(ctx, build, path)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return resp, nil
	}
	// Only the first challenge builds the authenticated transport; later 401s are answered by it (token refresh).
	drain(resp)
	c.mu.Lock()
	already := c.authed != nil
	c.mu.Unlock()
	if !already {
		if err := c.authenticate(ctx); err != nil {
			return nil, err
		}
	}
	return c.roundTrip(ctx, build, path)
}

// roundTrip sends one request; path is either a registry path ("/v2/...") or an absolute URL the registry gave
// (an upload location). Redirects are followed; credentials never follow them to another host.
func (c *conn) roundTrip(ctx context.Context, build func(url string) (*http.Request, error), path string) (*http.Response, error) {
	u := path
	if strings.HasPrefix(path, "/") {
		u = c.url(path)
	}
	req, err := build(u)
	if err != nil {
		return nil, err
	}
	req = req.WithContext(ctx)
	req.Header.Set("User-Agent", c.opts.userAgent())
	c.mu.Lock()
	t := c.authed
	c.mu.Unlock()
	if t == nil {
		t = c.base
	}
	return (&http.Client{Transport: t}).Do(req)
}

// switchedToTLS recognises a TLS server's answer to a plain-HTTP request (hosts allowed plain HTTP are tried
// without TLS first) and switches this registry to HTTPS. Only the first answers of a registry are examined:
// once it answered anything but 400 over plain HTTP, it speaks plain HTTP.
func (c *conn) switchedToTLS(ctx context.Context, resp *http.Response) bool {
	c.mu.Lock()
	settled := c.schemeSettled
	c.mu.Unlock()
	if settled || resp.Request == nil || resp.Request.URL.Scheme != "http" {
		return false
	}
	if resp.StatusCode != http.StatusBadRequest {
		c.mu.Lock()
		c.schemeSettled = true
		c.mu.Unlock()
		return false
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.Request.Method == http.MethodHead {
		// A HEAD answer has no body to tell why; ask the API root, whose answer does.
		probe, err := c.roundTrip(ctx, newRequest(http.MethodGet, nil, nil), "/v2/")
		if err != nil {
			return false
		}
		defer probe.Body.Close()
		if probe.StatusCode != http.StatusBadRequest {
			return false
		}
		body, _ = io.ReadAll(io.LimitReader(probe.Body, 4096))
	}
	if !strings.Contains(strings.ToLower(string(body)), "https") {
		return false
	}
	c.mu.Lock()
	c.scheme, c.schemeSettled = "https", true
	c.mu.Unlock()
	return true
}

// authenticate runs go-containerregistry's challenge handshake once for this registry, requesting every scope
// this operation needs up front.
func (c *conn) authenticate(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.authed != nil {
		return nil
	}
	auth, err := authn.Resolve(ctx, c.opts.keychain(), c.reg)
	if err != nil {
		return fmt.Errorf("resolving credentials for %s: %w", c.reg.RegistryStr(), err)
	}
	t, err := transport.NewWithContext(ctx, c.reg, auth, c.base, c.scopes)
	if err != nil {
		return fmt.Errorf("authenticating to %s: %w", c.reg.RegistryStr(), err)
	}
	c.authed = t
	return nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

// isNotFound reports a registry 404 (unknown manifest, blob or repository).
func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// newRequest returns a request builder; a body is given as bytes so that a replayed request sends it again.
func newRequest(method string, body []byte, header map[string]string) func(string) (*http.Request, error) {
	return func(u string) (*http.Request, error) {
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, err := http.NewRequest(method, u, r)
		if err != nil {
			return nil, err
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		return req, nil
	}
}
