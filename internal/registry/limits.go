package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// One Ferry serves many teams, and any of their registries may be hostile or broken: everything read from a
// registry is bounded, and input over a bound is refused with ErrLimitExceeded rather than cut short, since a
// partial tag list or attachment set would silently change what Ferry decides.

// ErrLimitExceeded is returned when a registry serves more than Ferry reads: too many tags or attachments, or a
// manifest, index or tag-list page over its size limit. Retrying does not help; the error names the limit.
var ErrLimitExceeded = errors.New("limit exceeded")

// Defaults of the Options limits.
const (
	DefaultMaxTags          = 10_000
	DefaultMaxReferrers     = 256
	DefaultMaxManifestBytes = 8 << 20 // the distribution spec lets registries refuse manifests over 4 MiB
)

// maxTagLength is the longest tag the distribution spec's grammar allows ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}).
const maxTagLength = 128

// attachmentsPerCopyFactor bounds the attachments one Copy visits, attachments of attachments included, to this
// many times MaxReferrers: each digest is bounded on its own, and this bounds how far a registry inventing
// referrers of referrers can lead a copy.
const attachmentsPerCopyFactor = 16

func (o Options) maxTags() int {
	if o.MaxTags <= 0 {
		return DefaultMaxTags
	}
	return o.MaxTags
}

func (o Options) maxReferrers() int {
	if o.MaxReferrers <= 0 {
		return DefaultMaxReferrers
	}
	return o.MaxReferrers
}

func (o Options) maxManifestBytes() int64 {
	if o.MaxManifestBytes <= 0 {
		return DefaultMaxManifestBytes
	}
	return o.MaxManifestBytes
}

// tagPageBytes bounds one page of a tag listing: no page can honestly be larger than MaxTags tags of the longest
// legal length (quoted, with a comma) plus the repository name and JSON around them.
func (o Options) tagPageBytes() int64 {
	return min(int64(o.maxTags())*(maxTagLength+3)+64<<10, o.maxManifestBytes())
}

// overLimit is the permanent error for input over a limit; what names the input, limit the Options field.
func overLimit(format string, args ...any) error {
	return permanentError{fmt.Errorf("%w: "+format, append([]any{ErrLimitExceeded}, args...)...)}
}

// readLimited reads r whole unless it holds more than limit bytes; it reads limit+1 bytes at most to tell.
// what names the input and field the Options field that sets the limit, for the error.
func readLimited(r io.Reader, limit int64, what, field string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, overLimit("%s is larger than %d bytes (Options.%s)", what, limit, field)
	}
	return b, nil
}

// limitedBodies cuts every response body at limit bytes: the read past it fails, naming the URL and the limit,
// so that code that reads whole responses (go-containerregistry's remote package reads manifests up to 100 MiB)
// never holds more than limit bytes of one.
type limitedBodies struct {
	inner http.RoundTripper
	limit int64
}

func (l limitedBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.inner.RoundTrip(req)
	if err != nil || resp.Body == nil || req.Method == http.MethodHead {
		return resp, err
	}
	if resp.ContentLength > l.limit {
		resp.Body.Close()
		return nil, overLimit("response from %s declares %d bytes, more than %d (Options.MaxManifestBytes)", redactURL(req), resp.ContentLength, l.limit)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: l.limit, url: redactURL(req), limit: l.limit}
	return resp, nil
}

type limitedBody struct {
	rc    io.ReadCloser
	left  int64
	url   string
	limit int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, overLimit("response from %s is larger than %d bytes (Options.MaxManifestBytes)", b.url, b.limit)
	}
	// Reading one byte past the limit tells a body of exactly limit bytes from a longer one.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n - 1, overLimit("response from %s is larger than %d bytes (Options.MaxManifestBytes)", b.url, b.limit)
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// redactURL names a request's host and path for errors, without its query (which may carry a token).
func redactURL(req *http.Request) string {
	return req.URL.Host + req.URL.Path
}
