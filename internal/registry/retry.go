package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// retry runs op until it succeeds, fails permanently, or the policy's attempts are spent, sleeping an
// exponentially growing, jittered backoff between tries. what describes op for the final error.
func retry(ctx context.Context, p RetryPolicy, what string, op func() error) error {
	p = p.withDefaults()
	backoff := p.Initial
	var err error
	for attempt := 1; ; attempt++ {
		if err = op(); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if !retryable(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if attempt >= p.Attempts {
			return fmt.Errorf("%s: giving up after %d attempts: %w", what, attempt, err)
		}
		// Full jitter in [backoff/2, backoff) keeps parallel blob copies from retrying in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, p.Max)
	}
}

// retryable separates transient failures (server errors, throttling, dropped connections, timeouts) from answers
// that will not change on a second try (not found, denied, invalid).
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode >= 500 || te.StatusCode == http.StatusTooManyRequests || te.StatusCode == http.StatusRequestTimeout
	}
	var perm permanentError
	if errors.As(err, &perm) {
		return false
	}
	if errors.Is(err, errUploadReplay) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	// A connection that breaks after it was established (reset, closed mid-body) is transient; one that cannot
	// be established (refused, unknown host) is an answer about where the registry is.
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op != "dial" {
		return true
	}
	if errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// permanentError marks a failure that retrying cannot fix (a digest mismatch, a malformed manifest).
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }
