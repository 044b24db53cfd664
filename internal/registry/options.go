package registry

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrycd/ferry/internal/netaddr"
)

// Options are the plain inputs every registry conversation needs. The zero value talks anonymously over HTTPS
// with the system trust roots (plain HTTP only to loopback hosts).
type Options struct {
	// Keychain resolves credentials per registry; nil means anonymous.
	Keychain authn.Keychain
	// CABundle holds extra PEM certificates trusted in addition to the system roots.
	CABundle []byte
	// Insecure lists registry hosts (host or host:port) that may be reached over plain HTTP. Loopback hosts
	// (localhost, 127.0.0.0/8, ::1) never need to be listed.
	Insecure []string
	// Jobs bounds how many blobs are copied at once; zero means 4.
	Jobs int
	// Retry controls how transient failures are retried; the zero value retries 5 times from 200ms.
	Retry RetryPolicy
	// UserAgent is sent with every request; empty means "ferry".
	UserAgent string
	// MaxTags bounds the tags read from one repository (zero means DefaultMaxTags, 10,000). A repository with more
	// is refused with ErrLimitExceeded, never listed in part: a partial list could make a tag policy pick an
	// older tag as the newest. Each page of the listing is bounded to what that many tags can take.
	MaxTags int
	// MaxReferrers bounds the artifacts attached to one digest (legacy sha256-<hex>.* tags and OCI referrers)
	// that a copy reads (zero means DefaultMaxReferrers, 256), and the whole copy to 16 times as many. A digest
	// with more is refused with ErrLimitExceeded.
	MaxReferrers int
	// MaxManifestBytes bounds each manifest, index and referrers page read, and every response body read through
	// RemoteOptions (zero means DefaultMaxManifestBytes, 8 MiB).
	MaxManifestBytes int64
}

// RetryPolicy bounds the retries of transient registry failures (5xx, 429, connection resets, timeouts).
type RetryPolicy struct {
	// Attempts is the total number of tries of one operation; zero means 5.
	Attempts int
	// Initial is the first backoff; it doubles on each retry up to Max. Zero means 200ms.
	Initial time.Duration
	// Max caps one backoff; zero means 5s.
	Max time.Duration
}

func (o Options) jobs() int {
	if o.Jobs <= 0 {
		return 4
	}
	return o.Jobs
}

func (o Options) userAgent() string {
	if o.UserAgent == "" {
		return "ferry"
	}
	return o.UserAgent
}

func (o Options) keychain() authn.Keychain {
	if o.Keychain == nil {
		return anonymousKeychain{}
	}
	return o.Keychain
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 5
	}
	if p.Initial <= 0 {
		p.Initial = 200 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 5 * time.Second
	}
	return p
}

type anonymousKeychain struct{}

func (anonymousKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.Anonymous, nil
}

// plainHTTPAllowed says whether the registry host may be spoken to without TLS.
func (o Options) plainHTTPAllowed(host string) bool {
	if netaddr.IsLoopback(host) {
		return true
	}
	for _, h := range o.Insecure {
		if strings.EqualFold(strings.TrimSpace(h), host) {
			return true
		}
	}
	return false
}

// httpTransport returns the connection-pooling transport trusting the system roots plus the CA bundle. Clients
// with the same trust share one transport, so a controller that opens a Client per reconcile reuses connections
// and loads the system roots once instead of holding a copy of them, and a pool of idle connections, per Client.
func (o Options) httpTransport() (*http.Transport, error) {
	key := transportKey{ca: sha256.Sum256(o.CABundle), jobs: o.jobs()}
	if t, ok := sharedTransports.get(key); ok {
		return t, nil
	}
	roots, err := systemRoots()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	pool := roots.Clone()
	if len(o.CABundle) > 0 && !pool.AppendCertsFromPEM(o.CABundle) {
		return nil, errors.New("CA bundle: no PEM certificate could be parsed")
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   2 * o.jobs(),
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return sharedTransports.put(key, t), nil
}

// systemRoots loads the system trust roots once; x509.SystemCertPool returns a fresh copy on every call.
var systemRoots = sync.OnceValues(x509.SystemCertPool)

// transportKey identifies a transport's trust and pool size.
type transportKey struct {
	ca   [sha256.Size]byte
	jobs int
}

// maxSharedTransports bounds the shared transports (one per distinct CA bundle in use); the least recently used
// one is closed beyond it.
const maxSharedTransports = 32

var sharedTransports = &transportCache{byKey: map[transportKey]*http.Transport{}}

// transportCache is a small least-recently-used set of shared transports.
type transportCache struct {
	mu    sync.Mutex
	byKey map[transportKey]*http.Transport
	order []transportKey // least recently used first
}

func (c *transportCache) get(k transportKey) (*http.Transport, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.byKey[k]
	if ok {
		c.touch(k)
	}
	return t, ok
}

// put stores t unless another caller stored one for k first, and returns the one stored.
func (c *transportCache) put(k transportKey, t *http.Transport) *http.Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	if existing, ok := c.byKey[k]; ok {
		c.touch(k)
		return existing
	}
	c.byKey[k] = t
	c.order = append(c.order, k)
	if len(c.order) > maxSharedTransports {
		oldest := c.order[0]
		c.order = c.order[1:]
		c.byKey[oldest].CloseIdleConnections()
		delete(c.byKey, oldest)
	}
	return t
}

func (c *transportCache) touch(k transportKey) {
	i := slices.Index(c.order, k)
	c.order = append(slices.Delete(c.order, i, i+1), k)
}

// policyTransport refuses plain-HTTP requests to hosts that are neither loopback nor marked insecure, whoever
// builds the request (Ferry's copier or go-containerregistry's remote package).
type policyTransport struct {
	opts  Options
	inner http.RoundTripper
}

func (p policyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !p.opts.plainHTTPAllowed(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("refusing plain HTTP to %s: only loopback hosts or registries marked insecure may skip TLS", req.URL.Host)
	}
	return p.inner.RoundTrip(req)
}

// RemoteOptions returns go-containerregistry remote options that follow the same credentials, trust and
// plain-HTTP policy as Ferry's copier, for engines (signature discovery, the controller) that use remote directly.
// Parse their references with ParseReference so that insecure registries are marked as such. They are for
// manifests, indexes and signature material, never image layers: every response body is cut at
// MaxManifestBytes, so that a hostile registry cannot make remote read a 100 MiB "manifest".
func RemoteOptions(ctx context.Context, o Options) ([]remote.Option, error) {
	t, err := o.httpTransport()
	if err != nil {
		return nil, err
	}
	bounded := limitedBodies{inner: policyTransport{opts: o, inner: t}, limit: o.maxManifestBytes()}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.keychain()),
		remote.WithTransport(bounded),
		remote.WithUserAgent(o.userAgent()),
		remote.WithJobs(o.jobs()),
	}, nil
}

// registryName builds the go-containerregistry registry name, marking it insecure when plain HTTP is allowed so
// that the authentication handshake may fall back to HTTP.
func (o Options) registryName(host string) (name.Registry, error) {
	var nopts []name.Option
	if o.plainHTTPAllowed(host) {
		nopts = append(nopts, name.Insecure)
	}
	return name.NewRegistry(host, append(nopts, name.StrictValidation)...)
}
