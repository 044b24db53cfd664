package tmpl

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"text/template"
	"time"
)

// FuzzTemplate: any text is refused, or renders within its cap and in little time, and when it renders, it
// renders what text/template renders.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		`Promote {{.S}} to {{.N}}{{if .B}} (rollback){{end}}`,
		`{{range 100000000000}}x{{end}}`,
		`{{define "a"}}{{template "a"}}{{end}}{{template "a"}}`,
		`{{printf "%0999999d" (printf "%0999999d" 0)}}`,
		`{{$a := .S}}{{$a = printf "%s%s" $a $a}}{{$a = printf "%s%s" $a $a}}{{$a}}`,
		`{{printf "%[1]s%[1]q%[2]x%-64.3v" .Long .S}}{{html .}}{{urlquery .S}}{{js .List}}`,
		`{{with $x := printf "%s" .S}}{{print . $x}}{{else}}{{println .N}}{{end}}`,
		`{{.S | printf "%s%s" .Long | len}} {{slice .Long 0 10}} {{index .List 1}}`,
	} {
		f.Add(s, "canary")
	}
	f.Add(`{{.S}}{{.S}}{{.S}}{{.S}}`, strings.Repeat("<", 300))
	const limit = 1 << 10
	opts := Options{What: "fuzz", MaxOutput: limit}
	f.Fuzz(func(t *testing.T, text, s string) {
		d := data{S: s, Long: strings.Repeat("L", 4<<10), List: []string{s, "x"}, N: 7, B: len(s)%2 == 0}
		start := time.Now()
		tp, err := Parse("t", text, opts)
		if err != nil {
			if e := time.Since(start); e > 2*time.Second {
				t.Fatalf("refusing took %s", e)
			}
			return
		}
		out, err := Execute(tp, d, opts)
		if e := time.Since(start); e > 2*time.Second {
			t.Fatalf("rendering took %s", e)
		}
		if len(out) > limit {
			t.Fatalf("output of %d bytes", len(out))
		}
		if err != nil {
			var le *LimitError
			if out != "" || errors.As(err, &le) && err != error(le) {
				t.Fatalf("output %q with error %v", out, err)
			}
			return
		}
		var want strings.Builder
		if err := template.Must(template.New("t").Option("missingkey=error").Parse(text)).Execute(&want, d); err != nil || want.String() != out {
			t.Fatalf("rendered %q; text/template renders %q, %v", out, want.String(), err)
		}
	})
}

// worstAccepted are templates Parse accepts that make Execute do the most it can, each within maxText bytes:
// build strings up to the total the builtins may build, write up to the cap, make a builtin build a string many
// times the cap before it is refused, call builtins thousands of times, nest as deep as the parser allows, and
// keep thousands of variables.
func worstAccepted(limit, maxText int) map[string]string {
	fill := func(unit string) string { return strings.Repeat(unit, maxText/len(unit)) }
	var vars strings.Builder
	for i := 0; vars.Len() < maxText-64; i++ {
		fmt.Fprintf(&vars, `{{$v%d := printf "%%s" (slice .Long 0 %d)}}`, i, limit)
	}
	var fresh strings.Builder
	for i := 0; fresh.Len() < maxText-64; i++ {
		fmt.Fprintf(&fresh, `{{$v%d := .S}}`, i)
	}
	return map[string]string{
		"builds up to the total":     vars.String(),
		"writes up to the cap":       fill(`{{.S}}`),
		"a printf up to its bound":   `{{printf "` + strings.Repeat("%[1]s", 7) + `" (slice .Long 0 ` + fmt.Sprint(limit) + `)}}`,
		"an escaper up to its bound": `{{js (slice .Lt 0 ` + fmt.Sprint(limit) + `)}}`,
		"builtin calls":              fill(`{{print 1}}`),
		"small printfs":              fill(`{{printf "%64d" 1}}`),
		"variables":                  fresh.String(),
		"nesting":                    strings.Repeat(`{{if .B}}`, maxText/16) + strings.Repeat(`{{end}}`, maxText/16),
		"doubling up to the rules":   `{{$a := slice .Long 0 16}}` + strings.Repeat(`{{$a = printf "%s%s" $a $a}}`, 8) + `{{$a}}`,
		"deep parentheses": func() string {
			depth := (maxText - 16) / 8
			return "{{" + strings.Repeat("print (", depth) + ".S" + strings.Repeat(")", depth) + "}}"
		}(),
	}
}

var worstData = data{S: "sha256:0123abcd", Long: strings.Repeat("L", 1<<20), Lt: strings.Repeat("<", 1<<20), List: []string{"a"}, B: true}

// bytesPerRun is the memory f allocates per run, averaged over runs.
func bytesPerRun(runs int, f func()) uint64 {
	f()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// Rendering the worst accepted templates allocates a small bound: the strings the builtins may build
// (BuiltFactor × the cap), the one string a builtin builds past the cap before it is refused (at most 8 × the
// cap), the output, and what text/template allocates per action, which the template's size bounds. Parsing
// allocates in proportion to the template's size. Measured for the default text bound (16 KiB, what the
// validator and commit messages and titles use) and analysis's (64 KiB).
func TestWorstAcceptedTemplateAllocatesLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("measures allocation")
	}
	d := worstData
	for _, maxText := range []int{DefaultMaxText, 64 << 10} {
		for _, limit := range []int{256, 8 << 10, 16 << 10} {
			opts := Options{MaxText: maxText, MaxOutput: limit}
			execBound, parseBound := uint64(24*maxText+32*limit), uint64(128*maxText)
			for name, text := range worstAccepted(limit, maxText) {
				tp, err := Parse("t", text, opts)
				if err != nil {
					t.Fatalf("%s/%d: not accepted: %v", name, limit, err)
				}
				var out string
				allocs := testing.AllocsPerRun(5, func() { out, err = Execute(tp, d, opts) })
				if len(out) > limit {
					t.Fatalf("%s/%d: %d bytes of output", name, limit, len(out))
				}
				b := bytesPerRun(5, func() { _, _ = Execute(tp, d, opts) })
				p := bytesPerRun(2, func() { _, _ = Parse("t", text, opts) })
				t.Logf("text %2d KiB, cap %5d, %-26s: execute %7d bytes in %5.0f allocations, parse %7d bytes (%v)",
					len(text)>>10, limit, name, b, allocs, p, err)
				if b > execBound {
					t.Errorf("%s/%d/%d: rendering allocates %d bytes, more than %d", name, maxText, limit, b, execBound)
				}
				if p > parseBound {
					t.Errorf("%s/%d/%d: parsing allocates %d bytes, more than %d", name, maxText, limit, p, parseBound)
				}
			}
		}
	}
}

// Before: text/template renders the template bomb variable doubled 20 times into 30 MiB (40 times would be
// 30 TiB). After: it is refused when parsed.
func TestDoublingBeforeAndAfter(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100 MiB")
	}
	text := doubled(20, `{{$a = printf "%s%s" $a $a}}`)
	stock := template.Must(template.New("t").Parse(text))
	b := bytesPerRun(1, func() { _ = stock.Execute(discard{}, worstData) })
	if _, err := Parse("t", text, Options{}); err == nil {
		t.Fatal("accepted")
	}
	t.Logf("text/template allocates %d MiB for a %d-byte template; tmpl refuses it when parsed", b>>20, len(text))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func BenchmarkExecuteWorstAccepted(b *testing.B) {
	d := worstData
	opts := Options{}
	for name, text := range worstAccepted(DefaultMaxOutput, DefaultMaxText) {
		tp, err := Parse("t", text, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.ReplaceAll(name, " ", "-"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Execute(tp, d, opts)
			}
		})
	}
}

func BenchmarkParseAndExecuteTypical(b *testing.B) {
	const text = `{{if .B}}Roll back{{else}}Promote{{end}} {{.S}} to {{printf "%q" .List}}{{if .N}} in {{.N}}{{end}}`
	b.ReportAllocs()
	for b.Loop() {
		tp, err := Parse("t", text, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Execute(tp, smallData, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
