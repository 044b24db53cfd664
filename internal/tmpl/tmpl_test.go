package tmpl

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"
)

type data struct {
	S, Long string
	Lt      string
	List    []string
	N       int
	B       bool
}

func (d data) Method() string { return "m:" + d.S }

var (
	testData  = data{S: "sha256:0123abcd", Long: strings.Repeat("L", 1<<20), List: []string{"a", "<b>"}, N: 42, B: true}
	smallData = data{S: "sha256:0123abcd", Long: "long", List: []string{"a", "<b>"}, N: 42, B: true}
)

func doubled(times int, step string) string {
	return `{{$a := .S}}` + strings.Repeat(step, times) + `{{$a}}`
}

// The template bombs are refused when parsed, before anything runs.
func TestParseRefusesBombs(t *testing.T) {
	tests := []struct{ name, text, err string }{
		{"range over a huge number", `{{range 100000000000}}x{{end}}`, "range is not allowed (line 1, column"},
		{"empty range", `{{range 100000000000}}{{end}}`, "range is not allowed"},
		{"range in a branch", `{{if .B}}{{else}}{{range .List}}{{end}}{{end}}`, "range is not allowed"},
		{"define recursion", `{{define "a"}}{{template "a" .}}{{end}}{{template "a" .}}`, "define and block are not allowed"},
		{"define named like the template", `{{define "t"}}{{.S}}{{end}}`, "define and block are not allowed"},
		{"empty define", `{{define "x"}}{{end}}hello`, "define and block are not allowed"},
		{"block", `{{block "b" .}}x{{end}}`, "define and block are not allowed"},
		{"template", `{{template "t"}}`, "template is not allowed"},
		{"huge width", `{{printf "%0999999d" 0}}`, "widths and precisions over 64"},
		{"nested width bombs", `{{printf "%0999999d" (printf "%0999999d" (printf "%0999999d" 0))}}`, "widths and precisions over 64"},
		{"huge precision", `{{printf "%.100f" 1.0}}`, "widths and precisions over 64"},
		{"width after an index", `{{printf "%[1]99999d" 1}}`, "widths and precisions over 64"},
		{"precision after an index", `{{printf "%[1].99999d" 1}}`, "widths and precisions over 64"},
		{"width overflowing int", `{{printf "%99999999999999999999999d" 1}}`, "widths and precisions over 64"},
		{"star width", `{{printf "%*d" 1000000 0}}`, "* widths are not allowed"},
		{"star precision", `{{printf "%.*d" 1000000 0}}`, "* widths are not allowed"},
		{"printf in a pipeline", `{{.S | printf "%0100s"}}`, "widths and precisions over 64"},
		{"variable doubled 40 times by printf", doubled(40, `{{$a = printf "%s%s" $a $a}}`), "must not be doubled"},
		{"variable doubled 40 times by print", doubled(40, `{{$a = print $a $a}}`), "must not be doubled"},
		{"variable doubled by piping", doubled(40, `{{$a = $a | printf "%s%s" $a}}`), "must not be doubled"},
		{"doubling in branches", doubled(40, `{{if .B}}{{$a = printf "%s%s" $a $a}}{{end}}`), "must not be doubled"},
		{"doubling in else branches", doubled(40, `{{if .B}}{{else}}{{$a = printf "%s%s" $a $a}}{{end}}`), "must not be doubled"},
		{"doubling through fresh variables", func() string {
			s := `{{$a0 := .S}}`
			for i := 1; i <= 40; i++ {
				s += fmt.Sprintf(`{{$a%d := printf "%%s%%s" $a%d $a%d}}`, i, i-1, i-1)
			}
			return s
		}(), "must not be doubled"},
		{"doubling through with", strings.Repeat(`{{with printf "%s%s" . .}}`, 40) + strings.Repeat(`{{end}}`, 40), "must not be doubled"},
		{"doubling through and", doubled(40, `{{$a = and .B (printf "%s%s" $a $a)}}`), "must not be doubled"},
		{"escaper growth", doubled(40, `{{$a = js $a}}`), "must not be doubled"},
		{"escaper and print growth", doubled(40, `{{$a = html (print $a $a)}}`), "must not be doubled"},
		{"a literal doubled", `{{$a := "` + strings.Repeat("x", 1000) + `"}}` + strings.Repeat(`{{$a = printf "%s%s" $a $a}}`, 40), "must not be doubled"},
		{"argument index reuse", `{{printf "` + strings.Repeat("%[1]s", 2000) + `" .Long}}`, "must not be doubled"},
		{"format from the data", `{{printf .S 1}}`, "printf's format must be a quoted string"},
		{"format piped", `{{"%s" | printf}}`, "printf's format must be a quoted string"},
		{"format built", `{{printf (print "%" "s") 1}}`, "printf's format must be a quoted string"},
		{"text too long", strings.Repeat("x", DefaultMaxText+1), "template is longer than 16 KiB"},
		{"unknown function", `{{sprig .S}}`, `function "sprig" not defined`},
		{"syntax", `{{.S`, "unclosed action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			got, err := Parse("t", tt.text, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Parse = %v, %v; want an error containing %q", got, err, tt.err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("refusing took %s", d)
			}
		})
	}
}

// What the rules allow renders exactly as text/template renders it.
func TestExecuteMatchesTextTemplate(t *testing.T) {
	for _, text := range []string{
		"",
		"plain text",
		`{{.S}} {{.N}} {{.B}} {{.List}} {{.Method}} {{$.S}}`,
		`{{if eq .S "x"}}a{{else if .B}}b{{else}}c{{end}}`,
		`{{with .List}}{{index . 1}}{{else}}none{{end}}{{with $x := .N}}{{$x}}{{end}}`,
		`{{printf "%q %x % #x %08.3f|%[1]v|%%|%-5d|%+q" .S .S .S 1.5 .N "é"}}`,
		`{{printf "%d %s"}} {{printf "%s" 1 2}} {{printf "%[3]s" 1}} {{printf "%!"}} {{printf "%"}}`,
		`{{print .S 1 2 "x"}} {{println .N}} {{html .List}} {{js "<'\"&>"}} {{urlquery "a b&c"}}`,
		`{{.S | printf "%s!" | js}} {{len .S}} {{slice .S 0 6}} {{and .B .S}} {{or "" .N}} {{not .B}}`,
		`{{$a := .S}}{{$a = printf "%s%s" $a $a}}{{$a = printf "%s%s" $a $a}}{{$a}} {{len $a}}`,
		`{{printf "%#v" .}}`,
		`{{/* comment */}}{{- .S -}}  `,
	} {
		t.Run(text, func(t *testing.T) {
			tp, err := Parse("t", text, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Execute(tp, smallData, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var want strings.Builder
			if err := template.Must(template.New("t").Option("missingkey=error").Parse(text)).Execute(&want, smallData); err != nil {
				t.Fatal(err)
			}
			if got != want.String() {
				t.Fatalf("got %q, want %q", got, want.String())
			}
		})
	}
}

func TestExecuteErrors(t *testing.T) {
	tp, err := Parse("t", `{{.Nope}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := Execute(tp, testData, Options{}); err == nil || out != "" || !strings.Contains(err.Error(), "can't evaluate field Nope") {
		t.Fatalf("Execute = %q, %v", out, err)
	}
	tp, err = Parse("t", `{{.k}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := Execute(tp, map[string]string{}, Options{}); err == nil || out != "" || !strings.Contains(err.Error(), "map has no entry") {
		t.Fatalf("missingkey: Execute = %q, %v", out, err)
	}
}

// A capped render never exceeds its cap, whatever a template that follows the rules writes, and fails with an
// error naming the cap and no output.
func TestCappedRender(t *testing.T) {
	for _, limit := range []int{256, 8 << 10, 16 << 10} {
		opts := Options{What: "thing", MaxText: 64 << 10, MaxOutput: limit}
		wantErr := "rendered thing is longer than " + formatSize(limit)
		tests := []struct{ name, text, err string }{
			{"printf of a long field", `{{printf "%s" .Long}}`, wantErr},
			{"printf of a long field, piped", `{{.Long | printf "%q"}}`, wantErr},
			{"a long field", `{{.Long}}`, wantErr},
			{"an escaped long field", `{{js .Long}}`, wantErr},
			{"a field printed many times", strings.Repeat(`{{.S}}`, limit/10+1), wantErr},
			{"a variable printed many times", `{{$a := printf "%s%s%s%s" .S .S .S .S}}` + strings.Repeat(`{{$a}}`, limit/50+1), wantErr},
			{"doubling within the rules", `{{$a := "` + strings.Repeat("x", 100) + `"}}` + strings.Repeat(`{{$a = printf "%s%s" $a $a}}`, 8) + `{{len $a}}`, wantErr},
			{"argument index reuse", `{{printf "` + strings.Repeat("%[1]s", 8) + `" (slice .Long 0 ` + fmt.Sprint(limit/2) + `)}}`, wantErr},
			{"argument index reuse past the estimate", `{{printf "` + strings.Repeat("%[1]s", 100) + `" (slice .Long 0 ` + fmt.Sprint(limit) + `)}}`, wantErr},
			{"text", strings.Repeat("x", limit+1), wantErr},
			{"strings built in all", func() string {
				var b strings.Builder
				for i := range 64 {
					fmt.Fprintf(&b, `{{$v%d := printf "%%s" (slice .Long 0 %d)}}`, i, limit)
				}
				return b.String()
			}(), "text built by the functions of the thing template is longer than " + formatSize(BuiltFactor*limit)},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%d", tt.name, limit), func(t *testing.T) {
				tp, err := Parse("t", tt.text, opts)
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				out, err := Execute(tp, testData, opts)
				var le *LimitError
				if out != "" || !errors.As(err, &le) || err != error(le) || err.Error() != tt.err {
					t.Fatalf("Execute = %d bytes, %v; want no output and %q", len(out), err, tt.err)
				}
			})
		}
		t.Run(fmt.Sprintf("just fits/%d", limit), func(t *testing.T) {
			text := strings.Repeat("x", limit-10) + `{{printf "%10s" "y"}}`
			tp, err := Parse("t", text, opts)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := Execute(tp, testData, opts); err != nil || len(out) != limit {
				t.Fatalf("Execute = %d bytes, %v", len(out), err)
			}
		})
	}
}

func TestLimitErrorNamesTheCap(t *testing.T) {
	for limit, want := range map[int]string{256: "256 bytes", 8 << 10: "8 KiB", 1 << 20: "1 MiB", 1500: "1500 bytes"} {
		if got := (&LimitError{What: "x", Limit: limit}).Error(); got != "x is longer than "+want {
			t.Errorf("%d: %q", limit, got)
		}
	}
	_, err := Parse("t", strings.Repeat("x", 101), Options{What: "commit message", MaxText: 100})
	if err == nil || err.Error() != "commit message template is longer than 100 bytes" {
		t.Errorf("Parse: %v", err)
	}
}

// Execute checks what it runs, so a template that did not come from Parse is bounded too.
func TestExecuteChecksTemplatesFromElsewhere(t *testing.T) {
	for text, want := range map[string]string{
		`{{range 100000000000}}x{{end}}`:            "range is not allowed",
		`{{define "a"}}x{{end}}`:                    "define and block are not allowed",
		doubled(40, `{{$a = printf "%s%s" $a $a}}`): "must not be doubled",
	} {
		tp := template.Must(template.New("t").Parse(text))
		if out, err := Execute(tp, testData, Options{}); out != "" || err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40q: Execute = %q, %v; want %q", text, out, err, want)
		}
	}
	// Its builtins are replaced by bounded ones.
	tp := template.Must(template.New("t").Parse(`{{printf "%s" .Long}}`))
	if _, err := Execute(tp, testData, Options{}); err == nil || err.Error() != "rendered output is longer than 16 KiB" {
		t.Errorf("unbounded printf: %v", err)
	}
}

// One parsed template is executed by many reconciles at once; each has its own budget.
func TestConcurrentExecute(t *testing.T) {
	opts := Options{MaxOutput: 1 << 10}
	tp, err := Parse("t", `{{$a := printf "%s" (slice .Long 0 700)}}{{len $a}}`, opts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if out, err := Execute(tp, testData, opts); err != nil || out != "700" {
					t.Errorf("Execute = %q, %v", out, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
