package scm

import (
	"errors"
	"strings"
	"testing"
)

func testChange() Change {
	return Change{
		Promotion: "shop-web",
		Stage:     "prod",
		Digest:    digestA,
		Source:    "registry.example.com/shop/web:1.4.2",
		Signer:    "https://github.com/shop/web/.github/workflows/release.yml@refs/tags/v1.4.2",
		Previous:  digestB,
		Files:     []string{"envs/prod/kustomization.yaml"},
	}
}

func TestRenderTitle(t *testing.T) {
	got, err := RenderTitle("", testChange())
	if err != nil {
		t.Fatal(err)
	}
	if want := "Promote shop-web to prod (0123456789ab)"; got != want {
		t.Fatalf("default title = %q, want %q", got, want)
	}
	got, err = RenderTitle("deploy {{.Source}} → {{.Stage | printf \"%q\"}}", testChange())
	if err != nil || got != `deploy registry.example.com/shop/web:1.4.2 → "prod"` {
		t.Fatalf("custom title = %q, %v", got, err)
	}
}

func TestRenderTitleFailures(t *testing.T) {
	for name, tmpl := range map[string]string{
		"parse error":   "Promote {{.Promotion",
		"unknown field": "Promote {{.Nope}}",
		"exec error":    `{{index .Files 5}}`,
		"empty":         "{{if false}}x{{end}}   ",
		"two lines":     "a\nb",
		"too long":      strings.Repeat("x", 300),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := RenderTitle(tmpl, testChange())
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != "title template" {
				t.Fatalf("RenderTitle(%q) error = %v, want an InputError on the title template", tmpl, err)
			}
		})
	}
}

func TestRenderBody(t *testing.T) {
	body := RenderBody(testChange())
	for _, want := range []string{"`shop-web`", "`prod`", digestA, "registry.example.com/shop/web:1.4.2",
		"release.yml@refs/tags/v1.4.2", "Replaces | `" + digestB, "- `envs/prod/kustomization.yaml`", "Merge this pull request to approve"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	c := testChange()
	c.Signer, c.Files, c.Previous = "", nil, ""
	body = RenderBody(c)
	if !strings.Contains(body, "not required by the verification policy") || !strings.Contains(body, "moves to `"+digestA) {
		t.Errorf("unsigned body:\n%s", body)
	}
}

// The source and signer come from outside; they must stay inside their code span and table cell.
func TestRenderBodyNeutralisesMarkup(t *testing.T) {
	c := testChange()
	c.Source = "evil`](http://x)|\n# injected"
	body := RenderBody(c)
	if strings.Contains(body, "\n# injected") || strings.Contains(body, "evil`]") || strings.Contains(body, "x)|") {
		t.Fatalf("markup escaped the code span:\n%s", body)
	}
}

func FuzzRenderBody(f *testing.F) {
	f.Add("registry/x:1", "signer@example.com", "a.yaml")
	f.Add("`|\n<!--", "\x00\x7f", "|||")
	f.Fuzz(func(t *testing.T, source, signer, file string) {
		c := testChange()
		c.Source, c.Signer, c.Files = source, signer, []string{file}
		body := RenderBody(c)
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "| Source |") || strings.HasPrefix(line, "| Signed by |") {
				if strings.Count(line, "`") > 2 || strings.Count(strings.ReplaceAll(line, `\|`, ""), "|") != 3 {
					t.Fatalf("value broke out of its cell: %q", line)
				}
			}
		}
	})
}

func TestSpecRenderRejects(t *testing.T) {
	good := PullRequestSpec{Repo: "o/r", Base: "main", Head: "ferry/shop-web/prod/0123456789ab", Change: testChange()}
	if _, _, err := good.render(false); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*PullRequestSpec){
		"repo":             func(s *PullRequestSpec) { s.Repo = "just-a-name" },
		"base branch":      func(s *PullRequestSpec) { s.Base = "" },
		"head branch":      func(s *PullRequestSpec) { s.Head = "ferry/" + strings.Repeat("a", MaxBranchLength) },
		"labels":           func(s *PullRequestSpec) { s.Labels = []string{"a", "a"} },
		"reviewers":        func(s *PullRequestSpec) { s.Reviewers = []string{""} },
		"title template":   func(s *PullRequestSpec) { s.TitleTemplate = "{{.Missing}}" },
		"change.source":    func(s *PullRequestSpec) { s.Change.Source = " " },
		"change.stage":     func(s *PullRequestSpec) { s.Change.Stage = "Prod" },
		"digest":           func(s *PullRequestSpec) { s.Change.Digest = "latest" },
		"change.promotion": func(s *PullRequestSpec) { s.Change.Promotion = "" },
	}
	for field, mutate := range cases {
		t.Run(field, func(t *testing.T) {
			s := good
			mutate(&s)
			_, _, err := s.render(false)
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != field {
				t.Fatalf("error = %v, want an InputError on %q", err, field)
			}
		})
	}
	s := good
	s.Head = s.Base
	if _, _, err := s.render(false); err == nil {
		t.Fatal("head equal to base was accepted")
	}
}

// Title template bombs are refused when parsed; a title template that follows the rules stops at 256 bytes.
func TestRenderTitleIsBounded(t *testing.T) {
	long := testChange()
	long.Source = strings.Repeat("s", 10<<10)
	for name, c := range map[string]struct {
		tmpl   string
		change Change
		want   string
	}{
		"range":           {`{{range 100000000000}}x{{end}}`, testChange(), "range is not allowed"},
		"define":          {`{{define "t"}}{{template "t"}}{{end}}{{template "t"}}`, testChange(), "define and block are not allowed"},
		"printf width":    {`{{printf "%0999999d" (printf "%0999999d" 0)}}`, testChange(), "widths and precisions over 64"},
		"doubling":        {`{{$a := .Stage}}` + strings.Repeat(`{{$a = printf "%s%s" $a $a}}`, 40) + `{{$a}}`, testChange(), "must not be doubled"},
		"printf of long":  {`{{printf "%s" .Source}}`, long, "rendered title is longer than 256 bytes"},
		"long field":      {`{{.Source}}`, long, "rendered title is longer than 256 bytes"},
		"padding":         {strings.Repeat(`{{printf "%64s" .Stage}}`, 5), testChange(), "rendered title is longer than 256 bytes"},
		"over the forges": {strings.Repeat("x", 256), testChange(), "renders 256 bytes, more than 255"},
	} {
		t.Run(name, func(t *testing.T) {
			title, err := RenderTitle(c.tmpl, c.change)
			var ie *InputError
			if title != "" || !errors.As(err, &ie) || ie.Field != "title template" || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("RenderTitle = %q, %v; want an InputError on the title template containing %q", title, err, c.want)
			}
		})
	}
	// The longest title, with the newline a YAML block scalar adds.
	if title, err := RenderTitle(strings.Repeat("x", maxTitleLength)+"\n", testChange()); err != nil || len(title) != maxTitleLength {
		t.Fatalf("RenderTitle = %d bytes, %v", len(title), err)
	}
}
