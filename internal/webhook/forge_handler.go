package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ForgeHandler accepts forge events on ForgePathPrefix + forge: a pull request closed or merged, or a branch
// pushed to, wakes the Promotions that wait on it at once instead of at their next approval poll.
type ForgeHandler struct {
	*guard
	secret   *forgeSecret
	throttle *throttle[ForgeChange]
}

// NewForgeHandler returns a ForgeHandler, or an error when Config.ForgeSecret is missing or too short.
func NewForgeHandler(c Config) (*ForgeHandler, error) {
	if len(c.ForgeSecret) == 0 {
		return nil, errors.New("the forge webhook needs a secret")
	}
	secret, err := newForgeSecret(c.ForgeSecret)
	if err != nil {
		return nil, err
	}
	if c.ForgeChanged == nil {
		return nil, errors.New("webhook: Config.ForgeChanged is nil")
	}
	g := newGuard(c)
	return &ForgeHandler{guard: g, secret: secret, throttle: newThrottle(g.limits.PerRepository, c.ForgeChanged)}, nil
}

// eventHeaders name the header that says what a forge's event is.
var eventHeaders = map[Forge]string{
	ForgeGitea:  "X-Gitea-Event",
	ForgeGitHub: "X-GitHub-Event",
	ForgeGitLab: "X-Gitlab-Event",
}

// ServeHTTP answers:
//   - 202 when the change was taken (the same change wakes its Promotions at most once per interval);
//   - 200 for an authentic event Ferry does not act on (a ping, a pull request opened, a tag pushed);
//   - 404 for a forge Ferry does not know, 405 for anything but POST;
//   - 401 without the forge's proof of the secret (checked before the body is parsed);
//   - 413 for a body over the limit, 400 for one that cannot be read as the forge's event;
//   - 503 with Retry-After while this replica does not lead, or when the wake-up could not be queued.
func (h *ForgeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	forge := Forge(strings.TrimPrefix(r.URL.Path, ForgePathPrefix))
	header, known := eventHeaders[forge]
	if !known {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a "+string(forge)+" webhook event", http.StatusMethodNotAllowed)
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	if !h.secret.authentic(forge, r.Header, body) {
		h.logEvery(&h.lastRefusal, "refused a forge event without a valid signature or token (logged at most every 10s)",
			"forge", forge, "remote", r.RemoteAddr)
		http.Error(w, "missing or wrong signature or token", http.StatusUnauthorized)
		return
	}
	change, relevant, err := ParseForgeEvent(forge, r.Header.Get(header), body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !relevant {
		w.WriteHeader(http.StatusOK)
		_, _ = fmt.Fprintf(w, "ignored: Ferry acts on closed pull requests and branch pushes only\n")
		return
	}
	if !h.leadingOr503(w) {
		return
	}
	switch h.throttle.notify(change) {
	case folded:
		h.log.V(1).Info("forge event folded into the next wake-up", "repository", change.Repository,
			"branch", change.Branch, "pullRequest", change.PullRequest)
	case refused:
		h.logEvery(&h.lastFull, "answered 503: too many wake-ups waiting to queue a forge event (logged at most every 10s)",
			"repository", change.Repository)
		h.retryAfter(w)
		http.Error(w, "too many events waiting; retry", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// Close stops the wake-ups folded for later.
func (h *ForgeHandler) Close() { h.throttle.close() }
