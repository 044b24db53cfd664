package analysis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// stubProm is a Prometheus HTTP API stub: each query string maps to a canned answer.
type stubProm struct {
	mu      sync.Mutex
	answers map[string]stubAnswer
	seen    []stubRequest
}

type stubAnswer struct {
	status int
	body   string
	block  bool // hold the request until the client gives up
	// age, when set, answers a freshness query: a sample this much older than the evaluation time.
	age time.Duration
}

type stubRequest struct {
	query, time, auth string
}

func newStub(t *testing.T, answers map[string]stubAnswer) (*stubProm, *httptest.Server) {
	s := &stubProm{answers: answers}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *stubProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" || r.ParseForm() != nil {
		http.NotFound(w, r)
		return
	}
	q := r.Form.Get("query")
	s.mu.Lock()
	s.seen = append(s.seen, stubRequest{query: q, time: r.Form.Get("time"), auth: r.Header.Get("Authorization")})
	a, ok := s.answers[q]
	s.mu.Unlock()
	if !ok {
		a = stubAnswer{status: 200, body: vector()} // a selector with no current sample
	}
	if a.age != 0 {
		evalTime, _ := strconv.ParseFloat(r.Form.Get("time"), 64)
		a = stubAnswer{status: 200, body: vector(strconv.FormatFloat(evalTime-a.age.Seconds(), 'f', 3, 64))}
	}
	if a.block {
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (s *stubProm) requests() []stubRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]stubRequest(nil), s.seen...)
}

func success(data string) string { return `{"status":"success","data":` + data + `}` }

// vector is an instant-vector result with one series per value.
func vector(values ...string) string {
	var rs []string
	for i, v := range values {
		rs = append(rs, fmt.Sprintf(`{"metric":{"pod":"p%d"},"value":[1777636800,%q]}`, i, v))
	}
	return success(`{"resultType":"vector","result":[` + strings.Join(rs, ",") + `]}`)
}

func apiError(typ, msg string) string {
	return fmt.Sprintf(`{"status":"error","errorType":%q,"error":%q}`, typ, msg)
}

func newClient(t *testing.T, cfg Config) *Prometheus {
	t.Helper()
	p, err := NewPrometheus(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestQueryStatusMapping(t *testing.T) {
	_, srv := newStub(t, map[string]stubAnswer{
		"ok":      {status: 200, body: vector("0.25")},
		"scalar":  {status: 200, body: success(`{"resultType":"scalar","result":[1777636800,"3"]}`)},
		"nan":     {status: 200, body: vector("NaN")},
		"empty":   {status: 200, body: vector()},
		"two":     {status: 200, body: vector("1", "2")},
		"matrix":  {status: 200, body: success(`{"resultType":"matrix","result":[{"metric":{},"values":[[1777636800,"1"]]}]}`)},
		"string":  {status: 200, body: success(`{"resultType":"string","result":[1777636800,"x"]}`)},
		"s500":    {status: 500, body: "boom"},
		"s502":    {status: 502, body: "<html>bad gateway</html>"},
		"s503":    {status: 503, body: apiError("unavailable", "Service Unavailable")},
		"s429":    {status: 429, body: "slow down"},
		"bad":     {status: 400, body: apiError("bad_data", `1:6: parse error: unexpected end of input`)},
		"bad422":  {status: 422, body: apiError("bad_data", "invalid parameter")},
		"exec":    {status: 422, body: apiError("execution", "many-to-many matching not allowed")},
		"timeout": {status: 503, body: apiError("timeout", "query timed out in expression evaluation")},
		"denied":  {status: 403, body: "forbidden"},
		"garbage": {status: 200, body: "{not json"},
		"huge":    {status: 200, body: success(`{"resultType":"vector","result":[],"pad":"` + strings.Repeat("x", 2<<20) + `"]}`)},
		"slow":    {block: true},
	})
	p := newClient(t, Config{Address: srv.URL, Timeout: 300 * time.Millisecond})
	tests := []struct {
		query   string
		want    error // nil: success
		value   string
		message string
	}{
		{"ok", nil, "0.25", ""},
		{"scalar", nil, "3", ""},
		{"nan", nil, "NaN", ""},
		{"empty", ErrNoData, "", ""},
		{"two", ErrBadQuery, "", "the result has 2 series"},
		{"matrix", ErrBadQuery, "", "the result is a matrix"},
		{"string", nil, "", `unexpected value type "string"`},
		{`"a string"`, ErrBadQuery, "", "the query returns a string"},
		{"x[5m]", ErrBadQuery, "", "the query returns a range vector"},
		{"s500", ErrUnavailable, "", "HTTP 500 Internal Server Error: boom"},
		{"s502", ErrUnavailable, "", "HTTP 502 Bad Gateway"},
		{"s503", ErrUnavailable, "", "HTTP 503 Service Unavailable"},
		{"s429", ErrUnavailable, "", "HTTP 429 Too Many Requests: slow down"},
		{"timeout", ErrUnavailable, "", "query timed out"},
		{"slow", ErrUnavailable, "", "deadline exceeded"},
		{"bad", ErrBadQuery, "", "parse error: unexpected end of input"},
		{"bad422", ErrBadQuery, "", "invalid parameter"},
		{"exec", nil, "", "many-to-many"},
		{"denied", nil, "", "client error: 403"},
		{"garbage", nil, "", "prometheus:"},
		{"huge", errTooLarge, "", "response larger than 1024 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			s, err := p.Query(context.Background(), tt.query, t0)
			if tt.value != "" {
				if err != nil || strconv.FormatFloat(s.Value, 'g', -1, 64) != tt.value {
					t.Fatalf("Query = %+v, %v; want value %s", s, err, tt.value)
				}
				return
			}
			if err == nil {
				t.Fatalf("Query = %+v; want an error", s)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v is not %v", err, tt.want)
			}
			if tt.want == nil && (errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBadQuery) || errors.Is(err, ErrNoData)) {
				t.Errorf("error %v should be neither an outage nor a bad query", err)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not say %q", err, tt.message)
			}
		})
	}
}

func TestQueryConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	p := newClient(t, Config{Address: addr})
	_, err := p.Query(context.Background(), "up", t0)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("error %v; want ErrUnavailable saying connection refused", err)
	}
	m, err := Measure(context.Background(), p, Check{Metric: "up", Query: "up"}, t0)
	if err != nil || m.Reason != ReasonUnavailable || !strings.HasPrefix(m.Message, "Prometheus unreachable: dial tcp ") {
		t.Fatalf("Measure = %+v, %v", m, err)
	}
}

func TestQueryConnectionReset(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	_, err := newClient(t, Config{Address: srv.URL}).Query(context.Background(), "up", t0)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error %v; want ErrUnavailable", err)
	}
}

func TestNewPrometheusCredentials(t *testing.T) {
	tests := []struct {
		cfg Config
		err string
	}{
		{Config{Address: "http://127.0.0.1:9090", BearerToken: "t"}, ""},
		{Config{Address: "http://localhost:9090/prom", Username: "u", Password: "p"}, ""},
		{Config{Address: "http://[::1]:9090", BearerToken: "t"}, ""},
		{Config{Address: "https://prometheus.example.com", BearerToken: "t"}, ""},
		{Config{Address: "http://prometheus.monitoring:9090"}, ""},
		{Config{Address: "http://prometheus.monitoring:9090", BearerToken: "t"}, "credentials are sent only over https or to a loopback host"},
		{Config{Address: "http://10.0.0.1:9090", Password: "p"}, "credentials are sent only over https"},
		{Config{Address: "https://a.example", BearerToken: "t", Username: "u"}, "not both"},
		{Config{Address: "https://u:secret@a.example"}, "not the URL"},
		{Config{Address: "ftp://a.example"}, "want an http or https URL"},
		{Config{Address: "prometheus:9090"}, "want an http or https URL"},
		{Config{Address: "http://a.example/?x=1"}, "want no query"},
		{Config{Address: "https://u:secret@a.example:port"}, "not a URL"},
	}
	for _, tt := range tests {
		_, err := NewPrometheus(tt.cfg)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%+v: %v", tt.cfg, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%+v: error %v, want %q", tt.cfg, err, tt.err)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("error %q shows the password", err)
		}
	}
}

func TestCredentialsSentOnlyToPrometheus(t *testing.T) {
	other, otherSrv := newStub(t, map[string]stubAnswer{"up": {status: 200, body: vector("1")}})
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherSrv.URL+r.URL.Path+"?"+r.URL.RawQuery, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)
	stub, srv := newStub(t, map[string]stubAnswer{"up": {status: 200, body: vector("1")}})

	if _, err := newClient(t, Config{Address: srv.URL, BearerToken: "tok"}).Query(context.Background(), "up", t0); err != nil {
		t.Fatal(err)
	}
	if got := stub.requests()[0].auth; got != "Bearer tok" {
		t.Errorf("Authorization = %q, want the bearer token", got)
	}
	if _, err := newClient(t, Config{Address: srv.URL, Username: "u", Password: "p"}).Query(context.Background(), "up", t0); err != nil {
		t.Fatal(err)
	}
	if got := stub.requests()[len(stub.requests())-1].auth; got != "Basic dTpw" {
		t.Errorf("Authorization = %q, want basic auth", got)
	}
	if _, err := newClient(t, Config{Address: redirect.URL, BearerToken: "tok"}).Query(context.Background(), "up", t0); err != nil {
		t.Fatal(err)
	}
	for _, r := range other.requests() {
		if r.auth != "" {
			t.Errorf("a redirect carried credentials to another host: %q", r.auth)
		}
	}
	if len(other.requests()) == 0 {
		t.Fatal("the redirect was not followed")
	}
}

// TestQueryFreshness checks which freshness queries Query asks and how it combines their answers.
func TestQueryFreshness(t *testing.T) {
	at := t0
	canary := `{track="canary",__name__="errors"}`
	stable := `{track="stable",__name__="errors"}`
	stub, srv := newStub(t, map[string]stubAnswer{
		`errors{track="canary"}`:                                       {status: 200, body: vector("1")},
		`errors{track="canary"} / errors{track="stable"}`:              {status: 200, body: vector("1")},
		`rate(errors{track="canary"}[5m] offset 1h)`:                   {status: 200, body: vector("1")},
		`errors{track="canary"} @ 1700000000`:                          {status: 200, body: vector("1")},
		`(errors{track="gone"} or vector(0)) + errors{track="canary"}`: {status: 200, body: vector("1")},
		`vector(1)`:                             {status: 200, body: vector("1")},
		`errors{track="canary"} offset (1h+1m)`: {status: 200, body: vector("1")},
		"max(timestamp(" + canary + "))":        {age: 2 * time.Minute},
		"max(timestamp(" + stable + "))":        {age: 5 * time.Second},
	})
	p := newClient(t, Config{Address: srv.URL})
	tests := []struct {
		name, query string
		newest      time.Time
		asked       []string // freshness queries, in order
	}{
		{"one selector", `errors{track="canary"}`, at.Add(-2 * time.Minute), []string{canary}},
		{"oldest input wins", `errors{track="canary"} / errors{track="stable"}`, at.Add(-2 * time.Minute), []string{canary, stable}},
		{"offset moves the time", `rate(errors{track="canary"}[5m] offset 1h)`, at.Add(-2 * time.Minute), []string{canary}},
		{"pinned selector skipped", `errors{track="canary"} @ 1700000000`, time.Time{}, nil},
		{"absent selector adds nothing", `(errors{track="gone"} or vector(0)) + errors{track="canary"}`, at.Add(-2 * time.Minute),
			[]string{`{track="gone",__name__="errors"}`, canary}},
		{"no selector", `vector(1)`, time.Time{}, nil},
		{"unparsable here", `errors{track="canary"} offset (1h+1m)`, time.Time{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(stub.requests())
			s, err := p.Query(context.Background(), tt.query, at)
			if err != nil {
				t.Fatal(err)
			}
			if !s.Newest.Equal(tt.newest) || s.Value != 1 || s.Series != 1 {
				t.Errorf("Query = %+v, want newest %s", s, tt.newest)
			}
			var asked []string
			for _, r := range stub.requests()[before+1:] {
				asked = append(asked, strings.TrimSuffix(strings.TrimPrefix(r.query, "max(timestamp("), "))"))
			}
			if strings.Join(asked, " ") != strings.Join(tt.asked, " ") {
				t.Errorf("asked %q, want %q", asked, tt.asked)
			}
		})
	}
	// The offset selector is asked an hour earlier.
	for _, r := range stub.requests() {
		if r.query == "max(timestamp("+canary+"))" && r.time == strconv.FormatInt(at.Add(-time.Hour).Unix(), 10) {
			return
		}
	}
	t.Error("the offset selector was not asked at at-1h")
}

func TestQueryFreshnessOutageIsAnError(t *testing.T) {
	_, srv := newStub(t, map[string]stubAnswer{
		`up`:                              {status: 200, body: vector("1")},
		`max(timestamp({__name__="up"}))`: {status: 503, body: "restarting"},
	})
	_, err := newClient(t, Config{Address: srv.URL}).Query(context.Background(), "up", t0)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error %v; want ErrUnavailable", err)
	}
}

func TestSelectors(t *testing.T) {
	tests := []struct {
		query string
		want  string // "matchers@offset" joined by spaces; "!" when unknown
	}{
		{`up`, `{__name__="up"}@0s`},
		{`sum(rate(http_requests_total{track="canary",code=~"5.."}[1m])) / sum(rate(http_requests_total{track="canary"}[1m]))`,
			`{track="canary",code=~"5..",__name__="http_requests_total"}@0s {track="canary",__name__="http_requests_total"}@0s`},
		{`x offset 5m`, `{__name__="x"}@5m0s`},
		{`max_over_time(rate(x[1m] offset 1m)[10m:1m] offset 1h)`, `{__name__="x"}@1h1m0s`},
		{`x @ 1700000000 + y`, `{__name__="y"}@0s`},
		{`max_over_time(x[5m:] @ 1700000000)`, ``},
		{`x @ end()`, `{__name__="x"}@0s`},
		{`{"http.requests", "service.name"="api"}`, `{__name__="http.requests","service.name"="api"}@0s`},
		{`x + x`, `{__name__="x"}@0s`},
		{`vector(1)`, ``},
		{`rate(`, `!`},
		{`x offset (1m+1m)`, `!`},
		{strings.Repeat("x + ", maxSelectors) + "x", `{__name__="x"}@0s`},
		{selectorsSum(maxSelectors + 1), `!`},
	}
	for _, tt := range tests {
		var sels []selector
		expr, err := promql.ParseExpr(tt.query)
		ok := err == nil
		if ok {
			sels, ok = selectors(expr)
		}
		var got []string
		for _, s := range sels {
			got = append(got, s.matchers+"@"+s.offset.String())
		}
		g := strings.Join(got, " ")
		if !ok {
			g = "!"
		}
		if g != tt.want {
			t.Errorf("selectors(%.60q) = %s, want %s", tt.query, g, tt.want)
		}
	}
}

func selectorsSum(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("m%d", i)
	}
	return strings.Join(parts, " + ")
}

// roundTripFunc serves HTTP in process, for fuzzing without sockets.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzQueryResponse: whatever Prometheus (or something pretending to be it) answers, Query returns a sample or
// an error, never panics, and reads no more than the response limit.
func FuzzQueryResponse(f *testing.F) {
	f.Add(200, []byte(vector("0.5")))
	f.Add(200, []byte(vector("1", "2")))
	f.Add(200, []byte(success(`{"resultType":"scalar","result":[1,"NaN"]}`)))
	f.Add(200, []byte(success(`{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"1","sum":"1"}]}]}`)))
	f.Add(400, []byte(apiError("bad_data", "x")))
	f.Add(422, []byte(`{"status":"success"}`))
	f.Add(503, []byte(""))
	f.Add(200, []byte(`{"status":"success","data":{"resultType":"vector","result":null}}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			status = 200
		}
		rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			b := body
			if strings.Contains(r.FormValue("query"), "timestamp(") {
				b = []byte(vector("1777636800"))
			}
			return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(b)),
				ContentLength: -1, Request: r}, nil
		})
		p, err := newPrometheus(Config{Address: "http://127.0.0.1:9090"}, rt)
		if err != nil {
			t.Fatal(err)
		}
		s, err := p.Query(context.Background(), `up{job="x"}`, t0)
		if err == nil && s.Series > 1 {
			t.Fatalf("%d series accepted", s.Series)
		}
	})
}
