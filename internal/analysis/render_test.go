package analysis

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/tmpl"
)

var vars = QueryVars{
	Namespace: "shop", Stage: "prod", Promotion: "shop", Digest: "sha256:0123abcd", Track: "canary", Interval: "1m",
}

func TestRenderQuery(t *testing.T) {
	tests := []struct {
		name, tmpl, want, err string
	}{
		{"fields", `sum(rate(http_requests_total{namespace="{{.Namespace}}",track="{{.Track}}",code=~"5.."}[{{.Interval}}]))`,
			`sum(rate(http_requests_total{namespace="shop",track="canary",code=~"5.."}[1m]))`, ""},
		{"all fields", `{{.Namespace}} {{.Stage}} {{.Promotion}} {{.Digest}} {{.Track}} {{.Interval}}`,
			`shop prod shop sha256:0123abcd canary 1m`, ""},
		{"if and builtins", `{{if eq .Stage "prod"}}{{printf "%q" .Track}}{{else}}x{{end}} {{len .Digest}}`, `"canary" 15`, ""},
		{"with", `{{with .Track}}track="{{.}}"{{end}}`, `track="canary"`, ""},
		{"trimmed", "\n  up{job=\"a\"}  \n", `up{job="a"}`, ""},
		{"missing field", `{{.Tenant}}`, "", "can't evaluate field Tenant"},
		{"syntax", `{{.Namespace`, "", "query template:"},
		{"empty", `{{/* nothing */}}  `, "", "renders an empty query"},
		{"range over a huge number", `{{range 100000000000}}x{{end}}`, "", "range is not allowed"},
		{"empty range", `{{range 100000000000}}{{end}}`, "", "range is not allowed"},
		{"define", `{{define "a"}}x{{end}}{{template "a"}}`, "", "define and block are not allowed"},
		{"template", `{{template "query"}}`, "", "template is not allowed"},
		{"block", `{{block "b" .}}x{{end}}`, "", "define and block are not allowed"},
		{"no custom funcs", `{{sprig .Namespace}}`, "", `function "sprig" not defined`},
		{"long text", strings.Repeat("x", maxRendered+1), "", "longer than 16 KiB"},
		{"just fits", strings.Repeat("x", maxRendered), strings.Repeat("x", maxRendered), ""},
		{"huge printf width", `{{printf "%0999999d" 0}}`, "", "widths and precisions over 64"},
		{"huge precision", `{{printf "%.100f" 1.0}}`, "", "widths and precisions over 64"},
		{"star width", `{{printf "%*d" 1000000 0}}`, "", "* widths are not allowed"},
		{"small width", `{{printf "%08.3f|%[1]v|%%" 1.5}}`, `0001.500|1.5|%`, ""},
		{"doubling variable", `{{$a := printf "%s%s" .Digest .Digest}}` + strings.Repeat(`{{$a = printf "%s%s" $a $a}}`, 40) + `{{$a}}`,
			"", "must not be doubled"},
		{"escaper growth", `{{$a := .Digest}}` + strings.Repeat(`{{$a = js (print $a $a)}}`, 40), "", "must not be doubled"},
		{"doubling within the parse rules", `{{$a := "` + strings.Repeat("x", 100) + `"}}` + strings.Repeat(`{{$a = printf "%s%s" $a $a}}`, 8) + `{{$a}}`,
			"", "rendered query is longer than 16 KiB"},
		{"printing too much", `{{$a := printf "%s%s%s%s" .Digest .Digest .Digest .Digest}}` + strings.Repeat(`{{$a}}`, 300),
			"", "rendered query is longer than 16 KiB"},
		{"argument index reuse", `{{printf "` + strings.Repeat("%[1]s", 2000) + `" .Digest}}`, "", "must not be doubled"},
		{"format not quoted", `{{printf .Digest}}`, "", "printf's format must be a quoted string"},
		{"template too long", strings.Repeat("{{/* */}}", maxTemplate), "", "query template is longer than 64 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RenderQuery(tt.tmpl, vars)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || got != "" {
					t.Fatalf("RenderQuery = %q, %v; want error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("RenderQuery = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestRenderQueryRefusesUnquotableValues(t *testing.T) {
	for _, track := range []string{`canary"} or vector(1) or {a="`, `a\b`, "a\nb", "a`b", "a'b"} {
		v := vars
		v.Track = track
		if got, err := RenderQuery(`up{track="{{.Track}}"}`, v); err == nil {
			t.Errorf("Track %q rendered %q; want an error", track, got)
		}
	}
}

func TestPromDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		90 * time.Second: "1m30s", time.Minute: "1m", 30 * time.Second: "30s", 0: "0s", -time.Second: "0s",
		1500 * time.Millisecond: "1s500ms", 2*time.Hour + 5*time.Second: "2h5s", 49 * time.Hour: "49h",
		time.Microsecond: "0s", 1234567 * time.Microsecond: "1s235ms",
	} {
		if got := PromDuration(d); got != want {
			t.Errorf("PromDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestPromDurationParsesBackInPromQL(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 90 * time.Second, 3*time.Hour + 7*time.Millisecond} {
		q := "rate(x[" + PromDuration(d) + "])"
		expr, err := promql.ParseExpr(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if !strings.Contains(expr.String(), "[") {
			t.Fatalf("%s parsed as %s", q, expr)
		}
	}
}

func FuzzRenderQuery(f *testing.F) {
	f.Add(`sum(rate(x{track="{{.Track}}"}[{{.Interval}}]))`, "canary")
	f.Add(`{{range 100000000000}}x{{end}}`, "x")
	f.Add(`{{$a := .Track}}{{$a = printf "%s%s" $a $a}}{{$a}}`, "ab")
	f.Add(`{{printf "%064d" 1}}{{html .}}{{urlquery .Track}}`, "a&b")
	f.Fuzz(func(t *testing.T, text, track string) {
		v := vars
		v.Track = track
		out, err := RenderQuery(text, v)
		if len(out) > maxRendered {
			t.Fatalf("output of %d bytes", len(out))
		}
		if err == nil && out == "" {
			t.Fatal("empty output without an error")
		}
		if err != nil && out != "" {
			t.Fatalf("output %q with error %v", out, err)
		}
		var le *tmpl.LimitError
		if errors.As(err, &le) && err != error(le) {
			t.Fatalf("the length error is returned plainly, got %v", err)
		}
	})
}
