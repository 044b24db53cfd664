package analysis

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

// maxRendered bounds a rendered query. Templates are written by tenants; rendering stops writing at the bound.
const maxRendered = 16 << 10

// QueryVars are the fields a metric's query template may use, e.g. {{.Namespace}}.
type QueryVars struct {
	Namespace string
	Stage     string
	Promotion string
	Digest    string
	Track     string
	Interval  string // a Prometheus duration, e.g. "1m" or "30s" (see PromDuration)
}

var errTooLong = fmt.Errorf("rendered query is longer than %d KiB", maxRendered>>10)

// maxTemplate bounds a template's own text.
const maxTemplate = 64 << 10

// RenderQuery renders a metric's PromQL template (Go text/template, no custom functions, missingkey=error).
//
// Rendering is bounded in memory and time, since templates are written by tenants. Output stops at 16 KiB with
// an error. The actions that can loop or recurse without writing a byte — range, and template/block/define — are
// refused: `{{range 100000000000}}{{end}}` would spin a worker for hours. The builtins that build strings (print,
// printf, println, html, js, urlquery) are replaced by equivalents that fail past 16 KiB and refuse printf widths
// and precisions over 64, because a string doubled into a variable forty times would exhaust memory before
// anything was written. Values that could break out of a PromQL string (quotes, backslashes, control
// characters) are refused too.
func RenderQuery(tmpl string, v QueryVars) (string, error) {
	if len(tmpl) > maxTemplate {
		return "", fmt.Errorf("query template is longer than %d KiB", maxTemplate>>10)
	}
	if err := checkVars(v); err != nil {
		return "", err
	}
	t, err := template.New("query").Option("missingkey=error").Funcs(boundedBuiltins).Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("query template: %w", err)
	}
	if err := checkTemplate(t); err != nil {
		return "", err
	}
	w := &boundedWriter{limit: maxRendered}
	if err := t.Execute(w, v); err != nil {
		if errors.Is(err, errTooLong) {
			return "", errTooLong
		}
		return "", fmt.Errorf("query template: %w", err)
	}
	out := strings.TrimSpace(w.b.String())
	if out == "" {
		return "", errors.New("query template renders an empty query")
	}
	return out, nil
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

// checkTemplate allows one template made of text, pipelines, if and with.
func checkTemplate(t *template.Template) error {
	if len(t.Templates()) > 1 {
		return errors.New("query template: define and block are not allowed")
	}
	if t.Tree == nil {
		return nil
	}
	return checkNode(t.Tree.Root)
}

func checkNode(n parse.Node) error {
	switch n := n.(type) {
	case nil:
		return nil
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkNode(c); err != nil {
				return err
			}
		}
		return nil
	case *parse.IfNode:
		return checkBranch(&n.BranchNode)
	case *parse.WithNode:
		return checkBranch(&n.BranchNode)
	case *parse.TextNode, *parse.ActionNode, *parse.CommentNode:
		return nil
	case *parse.RangeNode:
		return errors.New("query template: range is not allowed")
	case *parse.TemplateNode:
		return errors.New("query template: template is not allowed")
	default:
		return fmt.Errorf("query template: %T is not allowed", n)
	}
}

func checkBranch(b *parse.BranchNode) error {
	if err := checkNode(b.List); err != nil {
		return err
	}
	return checkNode(b.ElseList)
}

// boundedWriter keeps at most limit bytes and fails the write that would pass it, which stops the template.
type boundedWriter struct {
	b     strings.Builder
	limit int
}

func (w *boundedWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > w.limit {
		return 0, errTooLong
	}
	return w.b.Write(p)
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
