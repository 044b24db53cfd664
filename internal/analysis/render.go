package analysis

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferrycd/ferry/internal/tmpl"
)

// maxRendered bounds a rendered query. Templates are written by tenants; rendering stops writing at the bound.
const maxRendered = 16 << 10

// maxTemplate bounds a template's own text.
const maxTemplate = 64 << 10

// queryTemplate bounds query templates (see package tmpl).
var queryTemplate = tmpl.Options{What: "query", MaxText: maxTemplate, MaxOutput: maxRendered}

// QueryVars are the fields a metric's query template may use, e.g. {{.Namespace}}.
type QueryVars struct {
	Namespace string
	Stage     string
	Promotion string
	Digest    string
	Track     string
	Interval  string // a Prometheus duration, e.g. "1m" or "30s" (see PromDuration)
}

// RenderQuery renders a metric's PromQL template (Go text/template, no custom functions, missingkey=error).
//
// Rendering is bounded in memory and time, since templates are written by tenants: it is done by package tmpl,
// which refuses the actions that loop or recurse (range, template, define, block) and templates that could
// build strings without bound, stops output at 16 KiB, and replaces the string-building builtins with bounded
// equivalents. A bound that is passed is a *tmpl.LimitError, returned as it is. Values that could break out of
// a PromQL string (quotes, backslashes, control characters) are refused too.
func RenderQuery(text string, v QueryVars) (string, error) {
	t, err := tmpl.Parse("query", text, queryTemplate)
	if err != nil {
		return "", templateError(err)
	}
	if err := checkVars(v); err != nil {
		return "", err
	}
	out, err := tmpl.Execute(t, v, queryTemplate)
	if err != nil {
		return "", templateError(err)
	}
	if out = strings.TrimSpace(out); out == "" {
		return "", errors.New("query template renders an empty query")
	}
	return out, nil
}

// templateError names the query template in an error, except a length error, which names it already.
func templateError(err error) error {
	var le *tmpl.LimitError
	if errors.As(err, &le) {
		return le
	}
	return fmt.Errorf("query template: %w", err)
}

// checkVars refuses values that a template could not quote safely; Ferry's own values never contain these.
func checkVars(v QueryVars) error {
	for _, f := range []struct{ name, value string }{
		{"Namespace", v.Namespace}, {"Stage", v.Stage}, {"Promotion", v.Promotion},
		{"Digest", v.Digest}, {"Track", v.Track}, {"Interval", v.Interval},
	} {
		if i := strings.IndexFunc(f.value, unquotable); i >= 0 {
			return fmt.Errorf("query variable %s %q contains %q, which cannot be put in a PromQL string", f.name, f.value, f.value[i])
		}
	}
	return nil
}

func unquotable(r rune) bool {
	return r == '"' || r == '\\' || r == '`' || r == '\'' || r < ' ' || r == 0x7f
}

// PromDuration formats d as a Prometheus duration: 90s is "1m30s", 1m is "1m", 1.5s is "1s500ms". It rounds to
// milliseconds, the finest unit Prometheus reads; zero and negative durations are "0s".
func PromDuration(d time.Duration) string {
	d = d.Round(time.Millisecond)
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if n := d / u.unit; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10))
			b.WriteString(u.name)
			d -= n * u.unit
		}
	}
	return b.String()
}
