package scm

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferrycd/ferry/internal/netaddr"
)

// Config selects and authenticates a provider. Token is a secret: it is only ever placed in request
// headers, never in errors, logs or the String form.
type Config struct {
	// Provider is "gitea", "github" or "gitlab".
	Provider string
	// APIURL is the forge's address. Gitea: the server root (required; Gitea 1.22 or newer).
	// GitHub: empty for github.com, else the Enterprise root or its ".../api/v3/". GitLab: empty for
	// gitlab.com, else the instance root or its ".../api/v4".
	APIURL string
	Token  string
	// AllowInsecureHTTP permits plain http to a host other than loopback.
	AllowInsecureHTTP bool
	// HTTPClient carries custom TLS roots or proxies; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
}

// String describes the configuration without the token.
func (c Config) String() string {
	return fmt.Sprintf("scm.Config{Provider:%q, APIURL:%q, Token:<redacted>}", c.Provider, c.APIURL)
}

// GoString keeps %#v from printing the token.
func (c Config) GoString() string { return c.String() }

var providerNames = []string{"gitea", "github", "gitlab"}

// Providers lists the names New accepts.
func Providers() []string { return slices.Clone(providerNames) }

// New validates cfg and returns its provider. It contacts no server: a wrong token shows up as
// ErrUnauthorized on the first call.
func New(cfg Config) (Provider, error) {
	if !slices.Contains(providerNames, cfg.Provider) {
		return nil, inputErr("provider", "%q is not one of %s", cfg.Provider, strings.Join(providerNames, ", "))
	}
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, inputErr("token", "%s needs an API token", cfg.Provider)
	}
	if strings.ContainsAny(cfg.Token, "\r\n") {
		return nil, inputErr("token", "contains a line break")
	}
	if cfg.Provider == "gitea" && cfg.APIURL == "" {
		return nil, inputErr("api URL", "gitea needs the server's URL")
	}
	if cfg.APIURL != "" {
		if err := checkAPIURL(cfg.APIURL, cfg.AllowInsecureHTTP); err != nil {
			return nil, err
		}
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	var (
		b   backend
		err error
	)
	switch cfg.Provider {
	case "gitea":
		b = newGitea(cfg.APIURL, cfg.Token, hc)
	case "github":
		b, err = newGitHub(cfg.APIURL, cfg.Token, hc)
	case "gitlab":
		b, err = newGitLab(cfg.APIURL, cfg.Token, hc)
	}
	if err != nil {
		return nil, fmt.Errorf("creating %s client: %w", cfg.Provider, err)
	}
	return &provider{b: b}, nil
}

// checkAPIURL requires an absolute http(s) URL without credentials, query or fragment, and https
// unless the host is loopback or insecure HTTP was asked for explicitly.
func checkAPIURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return inputErr("api URL", "%v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return inputErr("api URL", "%q must start with https:// (or http:// for loopback)", raw)
	case u.Host == "" || u.Hostname() == "":
		return inputErr("api URL", "%q has no host", raw)
	case u.User != nil:
		return inputErr("api URL", "must not carry credentials; pass the token separately")
	case u.RawQuery != "" || u.Fragment != "":
		return inputErr("api URL", "%q must not have a query or fragment", raw)
	case u.Scheme == "http" && !allowHTTP && !netaddr.IsLoopback(u.Hostname()):
		return inputErr("api URL", "%q uses plain http to a non-loopback host; use https or mark it insecure", raw)
	}
	return nil
}

// backend is one forge's raw API calls; provider holds the logic that is the same for all of them.
type backend interface {
	name() string
	allowGroups() bool // GitLab projects live in nested groups
	find(ctx context.Context, repo, base, head string) (*PullRequest, error)
	get(ctx context.Context, repo string, number int) (PullRequest, error)
	// create returns errExists when the forge refuses because a pull request for head is open.
	create(ctx context.Context, repo, base, head, title, body string) (PullRequest, error)
	addLabels(ctx context.Context, repo string, number int, labels []string) error
	requestReviewers(ctx context.Context, repo string, number int, reviewers []string) error
	// reviewedBy lists who already submitted a review: GitHub drops those people from the requested
	// reviewers, and asking them again would ping them on every reconcile.
	reviewedBy(ctx context.Context, repo string, number int) ([]string, error)
	comment(ctx context.Context, repo string, number int, body string) error
	close(ctx context.Context, repo string, number int) error
	// editBody replaces the description of a pull request.
	editBody(ctx context.Context, repo string, number int, body string) error
	// listComments lists a pull request's comments by people (no system notes), oldest first, at most limit.
	listComments(ctx context.Context, repo string, number, limit int) ([]Comment, error)
	editComment(ctx context.Context, repo string, number int, id int64, body string) error
	// setStatus sets a commit status; setting the state a commit already has must not fail.
	setStatus(ctx context.Context, repo, sha string, status CommitStatus) error
}

// errExists is a backend's signal that another writer opened the pull request first.
var errExists = errors.New("a pull request for this head branch already exists")

type provider struct {
	b backend
	// heads serialises EnsurePullRequest per repository and head branch. Gitea does not refuse a
	// second pull request for the same head, so two concurrent callers in one process would both
	// open one; GitHub and GitLab refuse and the loser adopts the winner's (errExists). A fixed set
	// of stripes keeps memory bounded however many digests pass through.
	heads [64]sync.Mutex
}

func (p *provider) lockHead(repo, head string) func() {
	h := fnv.New32a()
	h.Write([]byte(repo + "\x00" + head))
	mu := &p.heads[h.Sum32()%uint32(len(p.heads))]
	mu.Lock()
	return mu.Unlock
}

func (p *provider) Name() string { return p.b.name() }

func (p *provider) EnsurePullRequest(ctx context.Context, spec PullRequestSpec) (PullRequest, error) {
	title, body, err := spec.render(p.b.allowGroups())
	if err != nil {
		return PullRequest{}, err
	}
	defer p.lockHead(spec.Repo, spec.Head)()
	existing, err := p.b.find(ctx, spec.Repo, spec.Base, spec.Head)
	if err != nil {
		return PullRequest{}, p.wrap(err, "looking for the pull request from %s in %s", spec.Head, spec.Repo)
	}
	if existing != nil {
		return p.complete(ctx, spec, *existing, body)
	}
	created, err := p.b.create(ctx, spec.Repo, spec.Base, spec.Head, title, body)
	if errors.Is(err, errExists) {
		// Lost a race with another writer (or a crash between create and a status write): adopt theirs.
		existing, err = p.b.find(ctx, spec.Repo, spec.Base, spec.Head)
		if err == nil && existing == nil {
			err = fmt.Errorf("forge reports a pull request for %s but none is listed", spec.Head)
		}
		if err != nil {
			return PullRequest{}, p.wrap(err, "looking for the pull request from %s in %s", spec.Head, spec.Repo)
		}
		return p.complete(ctx, spec, *existing, body)
	}
	if err != nil {
		return PullRequest{}, p.wrap(err, "opening a pull request from %s into %s in %s", spec.Head, spec.Base, spec.Repo)
	}
	return p.decorate(ctx, spec, created, true)
}

// complete brings an existing open pull request up to date: its description is rewritten when the rendered body
// changed (the evidence it states may have), then it is decorated.
func (p *provider) complete(ctx context.Context, spec PullRequestSpec, pr PullRequest, body string) (PullRequest, error) {
	if pr.State == StateOpen && !sameText(pr.Body, body) {
		if err := p.b.editBody(ctx, spec.Repo, pr.Number, body); err != nil {
			return pr, p.wrap(err, "updating the description of pull request #%d in %s", pr.Number, spec.Repo)
		}
		pr.Body = body
	}
	return p.decorate(ctx, spec, pr, false)
}

// decorate adds the spec's missing labels and asks each of its reviewers who has neither been asked
// nor reviewed yet, so running it again (after a crash, or on every reconcile) completes an unfinished
// pull request without pinging anyone twice.
func (p *provider) decorate(ctx context.Context, spec PullRequestSpec, pr PullRequest, fresh bool) (PullRequest, error) {
	if pr.State != StateOpen {
		return pr, nil
	}
	changed := false
	if missing := without(spec.Labels, pr.Labels); len(missing) > 0 {
		if err := p.b.addLabels(ctx, spec.Repo, pr.Number, missing); err != nil {
			return pr, p.wrap(err, "labelling pull request #%d in %s", pr.Number, spec.Repo)
		}
		changed = true
	}
	missing := without(spec.Reviewers, pr.Reviewers)
	if len(missing) > 0 && !fresh {
		done, err := p.b.reviewedBy(ctx, spec.Repo, pr.Number)
		if err != nil {
			return pr, p.wrap(err, "listing reviews of pull request #%d in %s", pr.Number, spec.Repo)
		}
		missing = without(missing, done)
	}
	if len(missing) > 0 {
		if err := p.b.requestReviewers(ctx, spec.Repo, pr.Number, missing); err != nil {
			return pr, p.wrap(err, "requesting reviewers on pull request #%d in %s", pr.Number, spec.Repo)
		}
		changed = true
	}
	if !changed {
		return pr, nil
	}
	return p.GetPullRequest(ctx, spec.Repo, pr.Number)
}

func (p *provider) GetPullRequest(ctx context.Context, repo string, number int) (PullRequest, error) {
	if _, err := validateRepo(repo, p.b.allowGroups()); err != nil {
		return PullRequest{}, err
	}
	if err := wantNumber(number); err != nil {
		return PullRequest{}, err
	}
	pr, err := p.b.get(ctx, repo, number)
	if err != nil {
		return PullRequest{}, p.wrap(err, "reading pull request #%d in %s", number, repo)
	}
	return pr, nil
}

func (p *provider) FindPullRequest(ctx context.Context, repo, base, head string) (*PullRequest, error) {
	if _, err := validateRepo(repo, p.b.allowGroups()); err != nil {
		return nil, err
	}
	if err := ValidateBranch("base branch", base); err != nil {
		return nil, err
	}
	if err := ValidateBranch("head branch", head); err != nil {
		return nil, err
	}
	pr, err := p.b.find(ctx, repo, base, head)
	if err != nil {
		return nil, p.wrap(err, "looking for the pull request from %s in %s", head, repo)
	}
	return pr, nil
}

func (p *provider) ClosePullRequest(ctx context.Context, repo string, number int, comment string) error {
	pr, err := p.GetPullRequest(ctx, repo, number)
	if err != nil {
		return err
	}
	switch pr.State {
	case StateMerged:
		return p.wrap(ErrMerged, "closing pull request #%d in %s", number, repo)
	case StateClosed:
		return nil
	}
	if strings.TrimSpace(comment) != "" {
		if err := p.b.comment(ctx, repo, number, comment); err != nil {
			return p.wrap(err, "commenting on pull request #%d in %s", number, repo)
		}
	}
	if err := p.b.close(ctx, repo, number); err != nil {
		return p.wrap(err, "closing pull request #%d in %s", number, repo)
	}
	return nil
}

func (p *provider) wrap(err error, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", p.b.name(), fmt.Sprintf(format, args...), err)
}

// SupersedeComment is the comment left on a pull request replaced by a newer digest's.
func SupersedeComment(newer PullRequest, digest string) string {
	return fmt.Sprintf("Superseded by #%d (%s), which promotes the newer digest %s. Closed by Ferry.",
		newer.Number, newer.URL, code(digest))
}

// without returns the items of want that are not in have, keeping want's order.
func without(want, have []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

// statusErr turns an HTTP status into the package's sentinel errors, keeping the forge's message.
func statusErr(status int, err error) error {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w (HTTP %d): %v", ErrUnauthorized, status, err)
	case http.StatusNotFound:
		return fmt.Errorf("%w (HTTP %d): %v", ErrNotFound, status, err)
	}
	return err
}
