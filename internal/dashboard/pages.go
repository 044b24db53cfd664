package dashboard

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed web/templates/*.html web/static/*
var webFS embed.FS

func staticFS() fs.FS {
	sub, err := fs.Sub(webFS, "web/static")
	if err != nil {
		panic(err) // the folder is embedded at build time
	}
	return sub
}

// pages holds one template set per page: the layout, the shared partials and the page's own templates.
type pages struct{ sets map[string]*template.Template }

var pageNames = []string{"list", "promotion", "confirm", "provenance", "error"}

var templateFuncs = template.FuncMap{
	"join": strings.Join,
}

func loadPages() (*pages, error) {
	p := &pages{sets: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(templateFuncs).ParseFS(webFS,
			"web/templates/layout.html", "web/templates/partials.html", "web/templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parsing the %s page: %w", name, err)
		}
		p.sets[name] = t
	}
	return p, nil
}

// page is what the layout needs around every page's content.
type page struct {
	Title     string
	User      string
	Scope     string // the namespaces listed: "namespace shop" or "all namespaces"
	CSRF      string
	Canonical string // the page's own URL, when it was answered to a POST
	Live      string // the fragment URL the page re-fetches when a change arrives
	Watch     string // "*" for every change, or "namespace/name"
	Nav       string // which navigation entry is current
	Notice    string // a request was made
	Content   any
}

// render writes a whole page, or the named fragment of it, rendered in full before anything is sent so that a
// template error never leaves half a page.
func (s *Server) render(w http.ResponseWriter, status int, set, tmpl string, data any) {
	var buf bytes.Buffer
	if err := s.pages.sets[set].ExecuteTemplate(&buf, tmpl, data); err != nil {
		fmt.Fprintf(s.opts.Log, "dashboard: rendering %s/%s: %v\n", set, tmpl, err)
		http.Error(w, "rendering the page failed; see the terminal that runs ferry dashboard", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

func (s *Server) newPage(title, nav string, content any) page {
	scope := "all namespaces"
	if s.opts.Namespace != "" {
		scope = "namespace " + s.opts.Namespace
	}
	return page{Title: title, User: s.opts.User, Scope: scope, CSRF: s.csrf, Nav: nav, Content: content}
}

// renderError shows a page that says what went wrong, with the status the error calls for.
func (s *Server) renderError(w http.ResponseWriter, status int, title, message string) {
	s.render(w, status, "error", "layout", s.newPage(title, "", errorView{Title: title, Message: message}))
}

type errorView struct{ Title, Message string }
