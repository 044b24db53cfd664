package webhook

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// ErrNoCredentials is returned when a webhook would accept notifications from anyone.
var ErrNoCredentials = errors.New("the registry webhook needs a bearer token or an HMAC secret")

// Config is what the webhook needs. Token or HMACSecret (or both) must be set.
type Config struct {
	// Token must be presented as "Authorization: Bearer <token>" (or "?token=<token>" by registries that can set
	// no header).
	Token []byte
	// HMACSecret signs each body: "X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>". A request proving
	// either credential is accepted.
	HMACSecret []byte
	// Pushed is told each repository ("host/path", normalised) that received a push, at most once per
	// Limits.PerRepository, and reports whether it took the wake-up. False (too many wake-ups waiting) answers the
	// notification 503 with Retry-After, so that the registry retries. It must not block.
	Pushed func(repository string) bool
	// ForgeSecret authenticates forge events (POST ForgePathPrefix + "gitea", "github" or "gitlab"): Gitea and
	// GitHub sign each body with it (HMAC-SHA256), GitLab sends it as its secret token. Empty: the forge endpoints
	// are not served. With a ForgeSecret, Token and HMACSecret may be empty: the registry endpoint is then not
	// served.
	ForgeSecret []byte
	// ForgeChanged is told each change a forge reports, at most once per Limits.PerRepository for the same
	// change, and reports whether it took the wake-up (false answers 503 with Retry-After). It must not block.
	ForgeChanged func(ForgeChange) bool
	// Leader is closed once this replica leads (the manager's Elected()). Until then notifications are refused
	// with 503 and Retry-After, so that the registry retries and reaches the leader through the Service. nil: this
	// replica always leads.
	Leader <-chan struct{}
	// Limits bound what callers can hold; zero fields take DefaultLimits' values.
	Limits Limits
	// Log receives refused requests (never a credential); the zero Logger discards.
	Log logr.Logger
}

// Limits bound the resources one caller of the webhook can hold.
type Limits struct {
	// MaxBodyBytes bounds a notification's body (413 beyond).
	MaxBodyBytes int64
	// MaxConnections bounds open connections; further connections wait in the listen queue.
	MaxConnections int
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the http.Server's timeouts.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// PerRepository is the least time between two wake-ups for one repository.
	PerRepository time.Duration
	// RetryAfter is what the registry is asked to wait when this replica does not lead or cannot queue the
	// notification.
	RetryAfter time.Duration
}

// DefaultLimits suit a registry's notifications: small bodies, a few at a time.
func DefaultLimits() Limits {
	return Limits{
		MaxBodyBytes:      1 << 20,
		MaxConnections:    64,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		PerRepository:     time.Second,
		RetryAfter:        5 * time.Second,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = d.MaxConnections
	}
	set(&l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	set(&l.ReadTimeout, d.ReadTimeout)
	set(&l.WriteTimeout, d.WriteTimeout)
	set(&l.IdleTimeout, d.IdleTimeout)
	set(&l.PerRepository, d.PerRepository)
	set(&l.RetryAfter, d.RetryAfter)
	return l
}

// Handler accepts registry notifications.
type Handler struct {
	*guard
	creds    credentials
	throttle *throttle[string]
}

// guard is what the registry and forge endpoints share: the leader gate, the limits, and logging of refusals
// that a flood cannot fill the log with.
type guard struct {
	leader <-chan struct{}
	limits Limits
	log    logr.Logger
	// lastRefusal and lastFull are when an unauthenticated request and a notification that could not be queued
	// were last logged (Unix nanoseconds).
	lastRefusal, lastFull atomic.Int64
}

func newGuard(c Config) *guard {
	return &guard{leader: c.Leader, limits: c.Limits.withDefaults(), log: c.Log}
}

// NewHandler returns a Handler, or ErrNoCredentials (or a credential's fault) when it would accept notifications
// from anyone.
func NewHandler(c Config) (*Handler, error) {
	creds, err := newCredentials(c.Token, c.HMACSecret)
	if err != nil {
		return nil, err
	}
	if c.Pushed == nil {
		return nil, errors.New("webhook: Config.Pushed is nil")
	}
	g := newGuard(c)
	return &Handler{guard: g, creds: creds, throttle: newThrottle(g.limits.PerRepository, c.Pushed)}, nil
}

// ServeHTTP answers:
//   - 202 when the notification was taken (each repository wakes its Promotions at most once per interval);
//   - 401 without a valid token or signature, 405 for anything but POST;
//   - 413 for a body over the limit, 400 for one that is unreadable or no notification;
//   - 503 with Retry-After (and the connection closed, so the retry may reach another replica) while this
//     replica does not lead;
//   - 503 with Retry-After when a repository's wake-up could not be queued (too many are waiting): nothing is
//     accepted and then dropped, the registry retries.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a registry notification", http.StatusMethodNotAllowed)
		return
	}
	byToken := h.creds.tokenOK(r)
	if !byToken && h.creds.hmacSecret == nil {
		h.unauthorized(w, r)
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	if !byToken && !h.creds.signatureOK(r.Header.Get(SignatureHeader), body) {
		h.unauthorized(w, r)
		return
	}
	repos, err := Parse(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !h.leadingOr503(w) {
		return
	}
	var notQueued []string
	for _, repo := range repos {
		switch h.throttle.notify(repo) {
		case folded:
			h.log.V(1).Info("notification folded into the repository's next wake-up", "repository", repo)
		case refused:
			notQueued = append(notQueued, repo)
		}
	}
	if len(notQueued) > 0 {
		// The repositories passed on before stay passed on; the retry folds them into one more wake-up.
		h.logEvery(&h.lastFull, "answered 503: too many wake-ups waiting to queue a notification (logged at most every 10s)",
			"repositories", notQueued)
		h.retryAfter(w)
		http.Error(w, "too many notifications waiting; retry", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// retryAfter asks the registry to wait Limits.RetryAfter (in whole seconds, rounded up) before retrying.
func (h *guard) retryAfter(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(int((h.limits.RetryAfter+time.Second-1)/time.Second)))
}

// refusalLogEvery spaces the log lines for refused requests, so that a flood cannot fill the log.
const refusalLogEvery = 10 * time.Second

// logEvery logs msg unless it was logged through last less than refusalLogEvery ago.
func (h *guard) logEvery(last *atomic.Int64, msg string, keysAndValues ...any) {
	now := time.Now().UnixNano()
	if prev := last.Load(); now-prev >= int64(refusalLogEvery) && last.CompareAndSwap(prev, now) {
		h.log.Info(msg, keysAndValues...)
	}
}

func (h *Handler) unauthorized(w http.ResponseWriter, r *http.Request) {
	h.logEvery(&h.lastRefusal, "refused a notification without a valid token or signature (logged at most every 10s)", "remote", r.RemoteAddr)
	if h.creds.tokenSum != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
	}
	http.Error(w, "missing or wrong token or signature", http.StatusUnauthorized)
}

func (h *guard) leading() bool {
	if h.leader == nil {
		return true
	}
	select {
	case <-h.leader:
		return true
	default:
		return false
	}
}

// Close stops the wake-ups folded for later.
func (h *Handler) Close() { h.throttle.close() }

// readBody reads the body up to Limits.MaxBodyBytes, answering 413 beyond and 400 when it cannot be read.
func (h *guard) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.limits.MaxBodyBytes))
	if err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("body larger than %d bytes", tooLarge.Limit), http.StatusRequestEntityTooLarge)
			return nil, false
		}
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return nil, false
	}
	return body, true
}

// leadingOr503 reports whether this replica leads; if not, it answers 503 with Retry-After and closes the
// connection, so that the retry may reach another replica.
func (h *guard) leadingOr503(w http.ResponseWriter) bool {
	if h.leading() {
		return true
	}
	h.retryAfter(w)
	w.Header().Set("Connection", "close")
	http.Error(w, "this replica is not the leader; retry", http.StatusServiceUnavailable)
	return false
}
