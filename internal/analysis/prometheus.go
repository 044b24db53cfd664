package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/ferrycd/ferry/internal/netaddr"
)

// Query errors. Each error a Querier returns wraps at most one of them; Measure turns ErrUnavailable and ErrNoData
// (and any other error) into Inconclusive measurements and returns ErrBadQuery to its caller.
var (
	// ErrUnavailable: Prometheus could not be asked or did not answer: connection refused or reset, a timeout or
	// deadline, HTTP 5xx or 429.
	ErrUnavailable = errors.New("Prometheus unavailable")
	// ErrBadQuery: Prometheus rejected the query as malformed (HTTP 400/422 bad_data), or its result is not one
	// number (several series, a range vector, a string, a histogram).
	ErrBadQuery = errors.New("bad query")
	// ErrNoData: the query returned an empty vector.
	ErrNoData = errors.New("no data")
)

// Querier evaluates instant queries.
type Querier interface {
	// Query evaluates an instant query at a time and returns its single number and the time of the newest raw
	// sample behind it.
	Query(ctx context.Context, query string, at time.Time) (Sample, error)
}

// Sample is the single number an instant query returned.
type Sample struct {
	Value float64
	// Newest is the time of the newest raw sample behind Value (see Prometheus.Query for queries that read
	// several selectors); zero when it is unknown.
	Newest time.Time
	// Series is the number of series in the result: 1 for an instant vector, 0 for a scalar.
	Series int
}

// Config says how to reach Prometheus.
type Config struct {
	Address            string // base URL, http or https
	BearerToken        string // optional
	Username, Password string // optional basic auth
	Timeout            time.Duration
}

const (
	defaultTimeout = 10 * time.Second
	// maxResponse bounds a response body: one number and its labels fit in far less.
	maxResponse = 1 << 20
)

// Prometheus queries a Prometheus server's HTTP API. It is safe for concurrent use.
type Prometheus struct {
	api     promv1.API
	timeout time.Duration
}

// NewPrometheus returns a client for the Prometheus at cfg.Address. Credentials are sent only over https or to
// this machine; asking to send them elsewhere in clear text is an error.
func NewPrometheus(cfg Config) (*Prometheus, error) {
	return newPrometheus(cfg, http.DefaultTransport.(*http.Transport).Clone())
}

// newPrometheus is NewPrometheus over the given HTTP transport.
func newPrometheus(cfg Config, base http.RoundTripper) (*Prometheus, error) {
	u, err := parseAddress(cfg.Address)
	if err != nil {
		return nil, err
	}
	hasCreds := cfg.BearerToken != "" || cfg.Username != "" || cfg.Password != ""
	if hasCreds && u.Scheme != "https" && !netaddr.IsLoopback(u.Host) {
		return nil, fmt.Errorf("prometheus address %s: credentials are sent only over https or to a loopback host", u.Redacted())
	}
	if cfg.BearerToken != "" && (cfg.Username != "" || cfg.Password != "") {
		return nil, errors.New("prometheus: set a bearer token or basic auth, not both")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	client, err := api.NewClient(api.Config{
		Address:      u.String(),
		RoundTripper: newTransport(base, u, cfg, maxResponse),
	})
	if err != nil {
		return nil, fmt.Errorf("prometheus address %s: %w", u.Redacted(), err)
	}
	return &Prometheus{api: promv1.NewAPI(client), timeout: timeout}, nil
}

// parseAddress accepts an absolute http(s) URL without user information (credentials have their own fields, which
// are never printed).
func parseAddress(addr string) (*url.URL, error) {
	u, err := url.Parse(addr)
	if err != nil {
		// Without the address itself: it may hold a password.
		return nil, fmt.Errorf("prometheus address is not a URL: %w", unwrapURL(err))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus address %q: want an http or https URL", u.Redacted())
	}
	if u.User != nil {
		return nil, fmt.Errorf("prometheus address %s: put credentials in the token or username/password, not the URL", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("prometheus address %s: want no query or fragment", u.Redacted())
	}
	return u, nil
}

// Query evaluates query at at (now when zero) and returns its single number and the time of the newest raw sample
// behind it.
//
// An instant query's result carries the evaluation time, not the time of the data, and Prometheus serves a series
// for up to its lookback delta after its source stopped when samples carry explicit timestamps. So Query parses
// the query and asks, for each selector in it, `max(timestamp(selector))` at the same time: timestamp() applied
// directly to a selector returns the raw samples' times, and max takes the freshest series, since one live pod is
// enough for a selector to be current. Across selectors Newest is the oldest of these: a value is only as fresh
// as its stalest input, and the inputs that matter most are compared with each other (canary against baseline,
// errors against requests), where a dead canary next to a live baseline must not look fresh. A selector with
// `offset d` is asked at at-d and its time moved forward by d; a selector pinned with `@ <time>` is skipped (it
// reads the past on purpose); a selector with no current sample adds nothing (e.g. the left side of
// `errors or vector(0)`). Newest is zero — unknown — when no selector has a current sample, when the query has
// no selector, or when this package cannot parse a query that Prometheus accepted.
//
// A query that returns a range vector or a string is ErrBadQuery before it is sent; one that returns several
// series is ErrBadQuery once they are seen.
func (p *Prometheus) Query(ctx context.Context, query string, at time.Time) (Sample, error) {
	if at.IsZero() {
		at = time.Now()
	}
	// Parsed here only to read the query; Prometheus decides what it accepts.
	expr, parseErr := promql.ParseExpr(query)
	if parseErr == nil {
		if err := checkType(expr); err != nil {
			return Sample{}, err
		}
	}
	v, err := p.instant(ctx, query, at)
	if err != nil {
		return Sample{}, err
	}
	s, err := single(v)
	if err != nil {
		return Sample{}, err
	}
	if parseErr != nil {
		return s, nil // Newest unknown
	}
	if s.Newest, err = p.newest(ctx, expr, at); err != nil {
		return Sample{}, err
	}
	return s, nil
}

// checkType refuses queries that cannot return one number whatever the data: range vectors and strings.
func checkType(expr parser.Expr) error {
	switch expr.Type() {
	case parser.ValueTypeMatrix:
		return &queryError{ErrBadQuery, errors.New("the query returns a range vector, want a single number")}
	case parser.ValueTypeString:
		return &queryError{ErrBadQuery, errors.New("the query returns a string, want a single number")}
	}
	return nil
}

// instant runs one instant query within the per-query timeout and classifies its errors.
func (p *Prometheus) instant(ctx context.Context, query string, at time.Time) (model.Value, error) {
	qctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	v, _, _, err := p.api.Query(qctx, query, at, promv1.WithTimeout(p.timeout))
	if err != nil {
		return nil, classify(err)
	}
	return v, nil
}

// single extracts the one number a check needs from a query result.
func single(v model.Value) (Sample, error) {
	switch r := v.(type) {
	case model.Vector:
		switch {
		case len(r) == 0:
			return Sample{}, ErrNoData
		case len(r) > 1:
			return Sample{}, &queryError{ErrBadQuery, fmt.Errorf("the result has %d series, want one (aggregate it, e.g. with sum)", len(r))}
		case r[0].Histogram != nil:
			return Sample{}, &queryError{ErrBadQuery, errors.New("the result is a native histogram, want a number")}
		}
		return Sample{Value: float64(r[0].Value), Series: 1}, nil
	case *model.Scalar:
		return Sample{Value: float64(r.Value)}, nil
	case nil:
		return Sample{}, &queryError{ErrBadQuery, errors.New("the result is empty")}
	default:
		return Sample{}, &queryError{ErrBadQuery, fmt.Errorf("the result is a %s, want a single number", v.Type())}
	}
}

// queryError is a classified query error: errors.Is finds both its kind and its cause.
type queryError struct {
	kind  error
	cause error
}

func (e *queryError) Error() string   { return e.kind.Error() + ": " + e.cause.Error() }
func (e *queryError) Unwrap() []error { return []error{e.kind, e.cause} }

// classify sorts an error from the API client into ErrBadQuery, ErrUnavailable or neither.
func classify(err error) error {
	var apiErr *promv1.Error
	switch {
	case errors.Is(err, errTooLarge):
		return err
	case errors.As(err, &apiErr):
		return classifyAPI(apiErr)
	default:
		// No HTTP answer at all: refused, reset, timed out, DNS, TLS. None says anything about the canary.
		return &queryError{ErrUnavailable, unwrapURL(err)}
	}
}

// classifyAPI sorts an error the Prometheus API (or something in front of it) answered with.
func classifyAPI(e *promv1.Error) error {
	switch e.Type {
	case promv1.ErrBadData:
		return &queryError{ErrBadQuery, errors.New(e.Msg)}
	case promv1.ErrServer, promv1.ErrTimeout, promv1.ErrCanceled:
		return &queryError{ErrUnavailable, errors.New(e.Msg)}
	default:
		// client errors (401, 403, 404), execution errors, undecodable responses: neither an outage nor a
		// malformed query, so Measure reports them as they are.
		return fmt.Errorf("prometheus: %s", e.Msg)
	}
}

// unwrapURL drops the method and URL that net/http puts in front of a transport error: the address is known.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// detail is the cause of a query error without its kind, for a sentence that names the kind itself.
func detail(err error) string {
	var qe *queryError
	if errors.As(err, &qe) {
		return qe.cause.Error()
	}
	msg := err.Error()
	for _, kind := range []error{ErrUnavailable, ErrBadQuery, ErrNoData} {
		msg = strings.TrimPrefix(msg, kind.Error()+": ")
	}
	return msg
}

// unixTime converts a Prometheus timestamp in seconds, as timestamp() returns it, to a time with millisecond
// precision (the precision Prometheus stores).
func unixTime(sec float64) (time.Time, bool) {
	if math.IsNaN(sec) || math.IsInf(sec, 0) || math.Abs(sec) > 1e11 {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(math.Round(sec * 1000))), true
}
