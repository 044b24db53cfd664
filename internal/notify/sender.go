package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferrycd/ferry/internal/text"
	"github.com/ferrycd/ferry/internal/version"
)

// Limits of delivery, so that a receiver that is down, slow or chatty costs Ferry a known, small amount.
const (
	// DefaultAttempts is how many times a message is tried before Ferry gives up on it.
	// Eight tries wait 1, 2, 4, 8, 16, 30 and 30 s: a receiver restarting for a minute and a half misses nothing.
	DefaultAttempts = 8
	// DefaultBackoff is the wait before the first retry; each later wait doubles, up to DefaultMaxBackoff.
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = 30 * time.Second
	// DefaultTimeout bounds one attempt: connecting, sending and reading the answer.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxResponseBytes bounds how much of an answer is read; the rest is not read at all.
	DefaultMaxResponseBytes = 64 << 10
	// maxReasonBytes bounds the part of a refusal's body quoted in an error.
	maxReasonBytes = 200
)

// Policy is how hard a message is tried.
type Policy struct {
	Attempts         int
	Backoff          time.Duration
	MaxBackoff       time.Duration
	Timeout          time.Duration
	MaxResponseBytes int64
}

func (p Policy) withDefaults() Policy {
	if p.Attempts <= 0 {
		p.Attempts = DefaultAttempts
	}
	if p.Backoff <= 0 {
		p.Backoff = DefaultBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	if p.MaxResponseBytes <= 0 {
		p.MaxResponseBytes = DefaultMaxResponseBytes
	}
	return p
}

// Delay is the wait after failed attempt n (1 for the first): Backoff, doubled for each attempt after it, at most
// MaxBackoff.
func (p Policy) Delay(n int) time.Duration {
	p = p.withDefaults()
	d := p.Backoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// attemptError is a failed attempt; retry says whether another attempt may succeed.
type attemptError struct {
	err   error
	retry bool
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

// newClient is the HTTP client of deliveries: no redirects (a redirect would carry a signed body, or for Slack a
// credential, elsewhere), TLS 1.2 or newer, proxies from the environment.
func newClient() *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	transport.MaxIdleConnsPerHost = 4
	return &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// attempt posts m to r once, within the policy's timeout, and reads at most MaxResponseBytes of the answer.
// Errors name what went wrong, never the URL.
func attempt(ctx context.Context, client *http.Client, p Policy, r Receiver, m Message, now time.Time) error {
	body, err := Body(r.Type, m, now)
	if err != nil {
		return &attemptError{err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(body))
	if err != nil {
		return &attemptError{err: errors.New("the receiver URL is not usable")}
	}
	for k, v := range headers(r, m, body, now) {
		req.Header.Set(k, v)
	}
	req.Header.Set("User-Agent", "ferry/"+version.Get().Version)
	resp, err := client.Do(req)
	if err != nil {
		return &attemptError{err: withoutURL(ctx, err), retry: true}
	}
	defer resp.Body.Close()
	answer, readErr := io.ReadAll(io.LimitReader(resp.Body, p.MaxResponseBytes))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case readErr != nil:
		return &attemptError{err: fmt.Errorf("answered %d, then reading the answer failed: %w", resp.StatusCode, withoutURL(ctx, readErr)), retry: true}
	}
	retry := resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout
	return &attemptError{err: fmt.Errorf("answered %s%s", resp.Status, quoteAnswer(answer)), retry: retry}
}

// withoutURL drops the URL Go's HTTP client puts in its errors (url.Error), keeping what went wrong.
func withoutURL(ctx context.Context, err error) error {
	if ctx.Err() == context.DeadlineExceeded {
		return errors.New("timed out")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return fmt.Errorf("%s: %v", op.Op, op.Err)
	}
	return err
}

// quoteAnswer quotes the start of a refusal's body on one line, for the condition a person reads.
func quoteAnswer(b []byte) string {
	s := text.OneLine(strings.ToValidUTF8(string(b), "?"), maxReasonBytes)
	if s == "" {
		return ""
	}
	return fmt.Sprintf(": %q", s)
}
