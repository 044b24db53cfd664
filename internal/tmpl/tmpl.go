// Package tmpl parses and renders the Go text/templates that tenants write (commit messages, pull request
// titles, analysis queries) with bounded memory and time, since one controller renders them for every tenant.
//
// A template is refused when it is parsed if it could loop, recurse or build strings without bound:
//
//   - range, template, define and block are not allowed (a template can only go forward, so rendering takes
//     time linear in its length); if, with, variables, pipelines and the builtin functions are;
//   - printf's format must be a quoted string, with widths and precisions of at most MaxVerbWidth and no *;
//   - no string-building call (print, printf, println, html, js, urlquery) may be able to build a string of
//     more than MaxCopies copies of the values it is given or more than MaxBuilt bytes of other text, counted
//     from the template's text alone: a string doubled into a variable forty times is refused before it runs;
//   - the template's text is at most Options.MaxText bytes.
//
// Execute then renders into a buffer that stops at Options.MaxOutput bytes with a *LimitError naming the cap,
// and returns nothing on any error, so a caller never uses a partial result. The string-building builtins are
// replaced by versions with the same results that fail instead of building a string longer than the cap, and
// the strings they build in one execution are at most BuiltFactor × MaxOutput bytes in all.
//
// The data a template is executed with is the caller's own (Ferry's values, not the tenant's): its values are
// assumed to be of modest size, and it should hold no functions a template could call.
package tmpl

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
)

// Bounds that apply to every template.
const (
	// DefaultMaxText is Options.MaxText when it is zero: room for the 4096 characters the CRD allows a template
	// field, in any UTF-8.
	DefaultMaxText = 16 << 10
	// DefaultMaxOutput is Options.MaxOutput when it is zero.
	DefaultMaxOutput = 16 << 10
	// MaxVerbWidth bounds a printf width or precision: fmt allows a million.
	MaxVerbWidth = 64
	// MaxCopies bounds how many copies of the values given to it a string-building call may produce, counted
	// from the template's text: `printf "%s%s" $a $a` makes two copies of $a, js up to six of its argument.
	MaxCopies = 1024
	// MaxBuilt bounds the bytes other than copied values (literal text, numbers, padding) a string-building
	// call may produce, counted from the template's text.
	MaxBuilt = 1 << 20
	// BuiltFactor bounds the strings the builtins build in one execution to BuiltFactor × MaxOutput bytes.
	BuiltFactor = 4
)

// Options bound one kind of template. The zero value uses the defaults.
type Options struct {
	// What the template renders, for errors: "query" gives "rendered query is longer than 16 KiB" and
	// "query template is longer than 64 KiB".
	What string
	// MaxText bounds the template's text in bytes (DefaultMaxText when 0).
	MaxText int
	// MaxOutput bounds the rendered output in bytes (DefaultMaxOutput when 0). No string a builtin builds may
	// be longer either.
	MaxOutput int
}

func (o Options) withDefaults() Options {
	if o.MaxText <= 0 {
		o.MaxText = DefaultMaxText
	}
	if o.MaxOutput <= 0 {
		o.MaxOutput = DefaultMaxOutput
	}
	return o
}

func (o Options) templateNoun() string {
	if o.What == "" {
		return "template"
	}
	return o.What + " template"
}

func (o Options) outputNoun() string {
	if o.What == "" {
		return "rendered output"
	}
	return "rendered " + o.What
}

func (o Options) tooLong() *LimitError { return &LimitError{What: o.outputNoun(), Limit: o.MaxOutput} }

func (o Options) transientLimit() int { return max(8*o.MaxOutput, 64<<10) }

// LimitError says that a template, its output or the strings it builds would pass a bound. Execute returns it
// unwrapped.
type LimitError struct {
	What  string // e.g. "rendered query", "query template"
	Limit int    // the bound in bytes
}

func (e *LimitError) Error() string { return e.What + " is longer than " + formatSize(e.Limit) }

func formatSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Parse parses text as a template named name and refuses it unless its rendering is bounded (see the package
// documentation). The template has missingkey=error and the bounded builtins. Run it with Execute, which caps
// its output: its own Execute method would not.
//
// A template's text longer than opts.MaxText is a *LimitError; syntax errors are text/template's; the other
// refusals say what is not allowed and where.
func Parse(name, text string, opts Options) (*template.Template, error) {
	o := opts.withDefaults()
	if len(text) > o.MaxText {
		return nil, &LimitError{What: o.templateNoun(), Limit: o.MaxText}
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(builtins(o, nil)).Parse(text)
	if err != nil {
		return nil, err
	}
	if err := checkDefinitions(text); err != nil {
		return nil, err
	}
	if err := check(t); err != nil {
		return nil, err
	}
	return t, nil
}

// Execute renders t, which Parse returned, over data and returns the output, or an error and no output. Output
// longer than opts.MaxOutput, or builtins building too much, stop rendering with a *LimitError. t is checked
// again as Parse checks it, so that a template from elsewhere is bounded too. t is not modified, and may be
// executed concurrently.
func Execute(t *template.Template, data any, opts Options) (string, error) {
	o := opts.withDefaults()
	if err := check(t); err != nil {
		return "", err
	}
	run, err := t.Clone()
	if err != nil {
		return "", err
	}
	run.Option("missingkey=error").Funcs(builtins(o, &budget{left: BuiltFactor * o.MaxOutput}))
	w := &cappedWriter{limit: o.MaxOutput, err: o.tooLong()}
	if err := run.Execute(w, data); err != nil {
		var le *LimitError
		if errors.As(err, &le) {
			return "", le
		}
		return "", err
	}
	return w.b.String(), nil
}

// cappedWriter keeps at most limit bytes and fails the write that would pass it, which stops the template.
type cappedWriter struct {
	b     strings.Builder
	limit int
	err   error
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if len(p) > w.limit-w.b.Len() {
		return 0, w.err
	}
	return w.b.Write(p)
}
