package analysis

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// errTooLarge: a response body over the limit is an error, never a reason to buffer without end.
var errTooLarge = fmt.Errorf("response larger than %d KiB", maxResponse>>10)

// transport adds credentials to requests for the configured Prometheus only, maps the HTTP answers that mean
// "not now" to errors, and bounds response bodies.
type transport struct {
	base   http.RoundTripper
	scheme string
	host   string
	auth   string // Authorization header value; "" sends none
	limit  int64
}

func newTransport(base http.RoundTripper, u *url.URL, cfg Config, limit int64) *transport {
	t := &transport{
		base:   base,
		scheme: u.Scheme,
		host:   u.Host,
		limit:  limit,
	}
	switch {
	case cfg.BearerToken != "":
		t.auth = "Bearer " + cfg.BearerToken
	case cfg.Username != "" || cfg.Password != "":
		t.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+cfg.Password))
	}
	return t
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Only the configured scheme and host get credentials, so that a redirect elsewhere (or to plain http)
	// never carries them.
	if t.auth != "" && req.URL.Scheme == t.scheme && req.URL.Host == t.host {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", t.auth)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if unavailableStatus(resp.StatusCode) {
		return nil, statusErrorFrom(resp)
	}
	if resp.ContentLength > t.limit {
		resp.Body.Close()
		return nil, errTooLarge
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.limit}
	return resp, nil
}

// unavailableStatus: 5xx and 429 mean the server cannot answer now. 501 is left to the API client, which answers
// it by retrying a POST as a GET.
func unavailableStatus(code int) bool {
	return code == http.StatusTooManyRequests || (code >= 500 && code <= 599 && code != http.StatusNotImplemented)
}

// statusError is an HTTP answer that says "not now", with the start of its body for people.
type statusError struct {
	code    int
	snippet string
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("HTTP %d %s", e.code, http.StatusText(e.code))
	if e.snippet != "" {
		msg += ": " + e.snippet
	}
	return msg
}

func statusErrorFrom(resp *http.Response) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	snippet := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "")), " ")
	for len(snippet) > 200 {
		_, size := utf8.DecodeLastRuneInString(snippet)
		snippet = snippet[:len(snippet)-size]
	}
	return &statusError{code: resp.StatusCode, snippet: snippet}
}

// limitedBody reads at most left bytes and fails, rather than truncating, when the body has more.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var probe [1]byte
		n, err := b.rc.Read(probe[:])
		if n > 0 {
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
