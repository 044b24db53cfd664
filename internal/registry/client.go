package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrNotFound is returned when a manifest, tag or repository does not exist at the registry.
var ErrNotFound = errors.New("not found")

// ErrDigestMismatch is returned when content does not hash to the digest it was asked for or published under.
var ErrDigestMismatch = errors.New("digest mismatch")

// manifestAccept lists every manifest type Ferry can copy, so registries never down-convert.
var manifestAccept = strings.Join([]string{
	string(types.OCIManifestSchema1), string(types.OCIImageIndex),
	string(types.DockerManifestSchema2), string(types.DockerManifestList),
}, ", ")

// Client talks to registries with one set of Options. It is safe for concurrent use; each operation gets its own
// connections state and request counter, sharing only the connection pool.
type Client struct {
	opts Options
	pool *http.Transport
}

// NewClient validates the options (the CA bundle must parse) and builds the shared connection pool.
func NewClient(o Options) (*Client, error) {
	t, err := o.httpTransport()
	if err != nil {
		return nil, err
	}
	o.Retry = o.Retry.withDefaults()
	return &Client{opts: o, pool: t}, nil
}

// Close is kept for callers that scope a Client: the connection pool is shared by every Client with the same
// trust (idle connections close on their own after 90 s), so there is nothing of its own to release.
func (c *Client) Close() {}

// op is the state of one operation: its request counter and one conn per registry.
type op struct {
	c        *Client
	requests atomic.Int64
	base     http.RoundTripper

	mu    sync.Mutex
	conns map[string]*conn
}

func (c *Client) newOp() *op {
	o := &op{c: c, conns: map[string]*conn{}}
	o.base = policyTransport{opts: c.opts, inner: countingTransport{inner: c.pool, n: &o.requests}}
	return o
}

// conn returns the operation's conn to repo's registry, asking for scopes when it first authenticates.
func (o *op) conn(repo name.Repository, scopes ...string) (*conn, error) {
	host := repo.RegistryStr()
	o.mu.Lock()
	defer o.mu.Unlock()
	if c, ok := o.conns[host]; ok {
		c.mu.Lock()
		c.scopes = appendMissing(c.scopes, scopes...)
		c.mu.Unlock()
		return c, nil
	}
	reg, err := o.c.opts.registryName(host)
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w", host, err)
	}
	c := newConn(reg, o.c.opts, o.base, scopes)
	o.conns[host] = c
	return c, nil
}

func appendMissing(have []string, add ...string) []string {
	for _, a := range add {
		found := false
		for _, h := range have {
			found = found || h == a
		}
		if !found {
			have = append(have, a)
		}
	}
	return have
}

// manifestHead is what a HEAD of a manifest tells without its body.
type manifestHead struct {
	Digest    v1.Hash
	MediaType types.MediaType
	Size      int64
}

// headManifest HEADs repo's manifest ref (tag or digest). found is false on 404.
func headManifest(ctx context.Context, c *conn, repo name.Repository, ref string) (manifestHead, bool, error) {
	path := fmt.Sprintf("/v2/%s/manifests/%s", repo.RepositoryStr(), ref)
	resp, err := c.do(ctx, newRequest(http.MethodHead, nil, map[string]string{"Accept": manifestAccept}), path, http.StatusOK)
	if isNotFound(err) {
		return manifestHead{}, false, nil
	}
	if err != nil {
		return manifestHead{}, false, err
	}
	drain(resp)
	h, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		// A registry that omits the digest header forces a GET to learn it.
		raw, mt, d, gerr := getManifest(ctx, c, repo, ref)
		if gerr != nil {
			return manifestHead{}, false, gerr
		}
		return manifestHead{Digest: d, MediaType: mt, Size: int64(len(raw))}, true, nil
	}
	return manifestHead{Digest: h, MediaType: types.MediaType(resp.Header.Get("Content-Type")), Size: resp.ContentLength}, true, nil
}

// getManifest GETs a manifest and returns its exact bytes, media type and computed digest. When ref is a digest
// the content must hash to it.
func getManifest(ctx context.Context, c *conn, repo name.Repository, ref string) ([]byte, types.MediaType, v1.Hash, error) {
	path := fmt.Sprintf("/v2/%s/manifests/%s", repo.RepositoryStr(), ref)
	resp, err := c.do(ctx, newRequest(http.MethodGet, nil, map[string]string{"Accept": manifestAccept}), path, http.StatusOK)
	if err != nil {
		return nil, "", v1.Hash{}, err
	}
	defer resp.Body.Close()
	raw, err := readLimited(resp.Body, c.opts.maxManifestBytes(), fmt.Sprintf("manifest %s of %s", ref, repo), "MaxManifestBytes")
	if err != nil {
		return nil, "", v1.Hash{}, fmt.Errorf("reading manifest %s: %w", ref, err)
	}
	d, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, "", v1.Hash{}, err
	}
	if want, err := v1.NewHash(ref); err == nil && want != d {
		return nil, "", v1.Hash{}, permanentError{fmt.Errorf("manifest %s: content hashes to %s: %w", ref, d, ErrDigestMismatch)}
	}
	mt := manifestMediaType(raw, resp.Header.Get("Content-Type"))
	return raw, mt, d, nil
}

// manifestMediaType prefers the manifest's own mediaType field over the Content-Type a registry reported.
func manifestMediaType(raw []byte, contentType string) types.MediaType {
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if json.Unmarshal(raw, &m) == nil && m.MediaType != "" {
		return m.MediaType
	}
	if ct, _, _ := strings.Cut(contentType, ";"); ct != "" {
		return types.MediaType(strings.TrimSpace(ct))
	}
	return types.OCIManifestSchema1
}

// putManifest PUTs raw under ref and checks that the registry stored it under the expected digest. It reports
// whether the registry acknowledged a subject (OCI-Subject header), which proves it maintains referrers itself.
func putManifest(ctx context.Context, c *conn, repo name.Repository, ref string, raw []byte, mt types.MediaType, want v1.Hash) (subjectAcked bool, err error) {
	path := fmt.Sprintf("/v2/%s/manifests/%s", repo.RepositoryStr(), ref)
	resp, err := c.do(ctx, newRequest(http.MethodPut, raw, map[string]string{"Content-Type": string(mt)}), path,
		http.StatusOK, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		return false, err
	}
	drain(resp)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != want.String() {
		return false, permanentError{fmt.Errorf("registry stored manifest %s as %s: %w", want, got, ErrDigestMismatch)}
	}
	return resp.Header.Get("OCI-Subject") != "", nil
}

// listTags returns every tag of repo, following pagination; a repository the registry does not know has none.
// It asks for MaxTags+1 tags per page (1,000 at most) so that even a registry that ignores pagination shows
// when the repository holds too many.
func listTags(ctx context.Context, c *conn, repo name.Repository) ([]string, error) {
	n := min(c.opts.maxTags()+1, 1000)
	return listTagsFrom(ctx, c, repo, fmt.Sprintf("/v2/%s/tags/list?n=%d", repo.RepositoryStr(), n))
}

// listTagsFrom reads the tag list from the page at next on. More than MaxTags tags is an error, never a
// partial list: the newest tag could be in the part left out.
func listTagsFrom(ctx context.Context, c *conn, repo name.Repository, next string) ([]string, error) {
	maxTags := c.opts.maxTags()
	var all []string
	for pages := 0; next != ""; pages++ {
		// An honest page holds at least one tag, so more pages than MaxTags is a registry leading Ferry on.
		if pages > maxTags {
			return nil, overLimit("listing tags of %s: more than %d pages", repo, maxTags)
		}
		resp, err := c.do(ctx, newRequest(http.MethodGet, nil, nil), next, http.StatusOK)
		if isNotFound(err) && pages == 0 {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var tags []string
		tags, next, err = readTagPage(resp, repo, c.opts.tagPageBytes())
		if err != nil {
			return nil, err
		}
		if len(all)+len(tags) > maxTags {
			return nil, overLimit("%s has more than %d tags (Options.MaxTags); Ferry does not choose from a partial list", repo, maxTags)
		}
		all = append(all, tags...)
	}
	return all, nil
}

// readTagPage reads one page of a tag listing, at most limit bytes, and the link to the next page.
func readTagPage(resp *http.Response, repo name.Repository, limit int64) ([]string, string, error) {
	defer resp.Body.Close()
	raw, err := readLimited(resp.Body, limit, "a page of the tag list of "+repo.String(), "MaxTags")
	if err != nil {
		return nil, "", fmt.Errorf("reading tag list of %s: %w", repo, err)
	}
	var page struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		return nil, "", permanentError{fmt.Errorf("tag list of %s is not valid JSON: %w", repo, err)}
	}
	next, err := nextLink(resp)
	if err != nil {
		return nil, "", permanentError{fmt.Errorf("listing tags of %s: %w", repo, err)}
	}
	return page.Tags, next, nil
}

// nextLink returns the path of the next page named by an RFC 5988 Link header (rel="next"), or "" when the
// listing is complete. Only links to the same registry are followed.
func nextLink(resp *http.Response) (string, error) {
	return parseNextLink(resp.Header.Get("Link"), resp.Request.URL)
}

func parseNextLink(header string, base *url.URL) (string, error) {
	if header == "" {
		return "", nil
	}
	for _, part := range strings.Split(header, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
			continue
		}
		target = strings.TrimSpace(target)
		if !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
			return "", fmt.Errorf("malformed Link header target %q", target)
		}
		u, err := url.Parse(target[1 : len(target)-1])
		if err != nil {
			return "", fmt.Errorf("malformed Link header target %q: %w", target, err)
		}
		abs := base.ResolveReference(u)
		if abs.Host != base.Host {
			return "", fmt.Errorf("Link header points to another host %q", abs.Host)
		}
		if !strings.HasPrefix(abs.Path, "/v2/") {
			return "", fmt.Errorf("Link header points outside the registry API: %q", abs.Path)
		}
		return abs.RequestURI(), nil
	}
	return "", nil
}

// listReferrers asks the OCI 1.1 referrers API for the manifests whose subject is d. supported is false when the
// registry does not implement the API (404), in which case callers read the referrers tag instead. More than
// MaxReferrers referrers is an error.
func listReferrers(ctx context.Context, c *conn, repo name.Repository, d v1.Hash) (descs []v1.Descriptor, supported bool, err error) {
	maxRefs := c.opts.maxReferrers()
	next := fmt.Sprintf("/v2/%s/referrers/%s", repo.RepositoryStr(), d)
	for pages := 0; next != ""; pages++ {
		if pages > maxRefs {
			return nil, true, overLimit("listing referrers of %s: more than %d pages", d, maxRefs)
		}
		resp, err := c.do(ctx, newRequest(http.MethodGet, nil, map[string]string{"Accept": string(types.OCIImageIndex)}), next, http.StatusOK)
		if err != nil {
			var te *transport.Error
			if pages == 0 && errors.As(err, &te) && (te.StatusCode == http.StatusNotFound || te.StatusCode == http.StatusBadRequest || te.StatusCode == http.StatusMethodNotAllowed) {
				return nil, false, nil
			}
			return nil, true, err
		}
		var page []v1.Descriptor
		page, next, err = readReferrersPage(resp, c.opts.maxManifestBytes(), d)
		if err != nil {
			return nil, true, err
		}
		if len(descs)+len(page) > maxRefs {
			return nil, true, overLimit("%s@%s has more than %d referrers (Options.MaxReferrers)", repo, d, maxRefs)
		}
		descs = append(descs, page...)
	}
	return descs, true, nil
}

// readReferrersPage reads one page of a referrers listing, at most limit bytes, and the link to the next page.
func readReferrersPage(resp *http.Response, limit int64, d v1.Hash) ([]v1.Descriptor, string, error) {
	defer resp.Body.Close()
	raw, err := readLimited(resp.Body, limit, "a page of the referrers of "+d.String(), "MaxManifestBytes")
	if err != nil {
		return nil, "", fmt.Errorf("reading referrers of %s: %w", d, err)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, "", permanentError{fmt.Errorf("referrers of %s: not an image index: %w", d, err)}
	}
	next, err := nextLink(resp)
	if err != nil {
		return nil, "", permanentError{fmt.Errorf("listing referrers of %s: %w", d, err)}
	}
	return idx.Manifests, next, nil
}

// headBlob reports whether repo already holds blob d.
func headBlob(ctx context.Context, c *conn, repo name.Repository, d v1.Hash) (bool, error) {
	path := fmt.Sprintf("/v2/%s/blobs/%s", repo.RepositoryStr(), d)
	resp, err := c.do(ctx, newRequest(http.MethodHead, nil, nil), path, http.StatusOK)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	drain(resp)
	return true, nil
}

func jsonMarshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding JSON: %w", err)
	}
	return b, nil
}
