package scm

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestNewRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"unknown provider", Config{Provider: "bitbucket", APIURL: "https://x", Token: "t"}, "provider"},
		{"empty provider", Config{Token: "t"}, "provider"},
		{"missing token", Config{Provider: "github"}, "token"},
		{"blank token", Config{Provider: "gitlab", Token: "  "}, "token"},
		{"token with newline", Config{Provider: "github", Token: "a\nb"}, "token"},
		{"gitea without URL", Config{Provider: "gitea", Token: "t"}, "api URL"},
		{"not a URL", Config{Provider: "gitea", APIURL: "://nope", Token: "t"}, "api URL"},
		{"relative URL", Config{Provider: "gitea", APIURL: "gitea.example.com", Token: "t"}, "api URL"},
		{"ftp scheme", Config{Provider: "github", APIURL: "ftp://ghe.example.com", Token: "t"}, "api URL"},
		{"credentials in URL", Config{Provider: "gitlab", APIURL: "https://u:p@gitlab.example.com", Token: "t"}, "api URL"},
		{"query in URL", Config{Provider: "gitlab", APIURL: "https://gitlab.example.com/?x=1", Token: "t"}, "api URL"},
		{"plain http remote", Config{Provider: "gitea", APIURL: "http://gitea.example.com", Token: "t"}, "api URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := New(c.cfg)
			var ie *InputError
			if p != nil || !errors.As(err, &ie) || ie.Field != c.field {
				t.Fatalf("New(%v) = %v, %v; want an InputError on %q", c.cfg, p, err, c.field)
			}
		})
	}
}

func TestNewAccepts(t *testing.T) {
	for _, cfg := range []Config{
		{Provider: "github", Token: "t"},
		{Provider: "github", APIURL: "https://ghe.example.com/api/v3/", Token: "t"},
		{Provider: "gitlab", Token: "t"},
		{Provider: "gitlab", APIURL: "https://gitlab.example.com", Token: "t"},
		{Provider: "gitea", APIURL: "http://127.0.0.1:3000", Token: "t"},
		{Provider: "gitea", APIURL: "http://gitea.internal", Token: "t", AllowInsecureHTTP: true},
	} {
		p, err := New(cfg)
		if err != nil {
			t.Errorf("New(%v): %v", cfg, err)
			continue
		}
		if p.Name() != cfg.Provider {
			t.Errorf("Name() = %q, want %q", p.Name(), cfg.Provider)
		}
	}
}

func TestProviderBaseURLs(t *testing.T) {
	gh, _ := newGitHub("", "t", http.DefaultClient)
	if got := gh.c.BaseURL(); got != "https://api.github.com/" {
		t.Errorf("github default base = %q", got)
	}
	ghe, _ := newGitHub("https://ghe.example.com", "t", http.DefaultClient)
	if got := ghe.c.BaseURL(); got != "https://ghe.example.com/api/v3/" {
		t.Errorf("github enterprise base = %q", got)
	}
	gl, _ := newGitLab("", "t", http.DefaultClient)
	if got := gl.c.BaseURL().String(); got != "https://gitlab.com/api/v4/" {
		t.Errorf("gitlab default base = %q", got)
	}
	self, _ := newGitLab("https://gitlab.example.com/", "t", http.DefaultClient)
	if got := self.c.BaseURL().String(); got != "https://gitlab.example.com/api/v4/" {
		t.Errorf("gitlab self-managed base = %q", got)
	}
}

func TestConfigNeverPrintsToken(t *testing.T) {
	cfg := Config{Provider: "github", Token: "ghp_supersecret"}
	for _, s := range []string{cfg.String(), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, "supersecret") {
			t.Fatalf("token printed: %s", s)
		}
	}
}
