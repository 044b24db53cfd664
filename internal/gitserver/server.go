package gitserver

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// GitBinEnv names the environment variable that may point at the git binary; by default git is looked up in PATH.
const GitBinEnv = "FERRY_GIT_BIN"

// Interceptor sees every request before git does. Returning handled=true means it has written the response and
// git never sees the request; it is how tests inject failures that a hook cannot express (HTTP errors, outages).
type Interceptor func(w http.ResponseWriter, r *http.Request) (handled bool)

// Server is a Git smart-HTTP server on loopback backed by `git http-backend`.
type Server struct {
	// URL is the base URL; repositories live at URL + "/" + name + ".git".
	URL string

	t       testing.TB
	git     string
	root    string // GIT_PROJECT_ROOT: the bare repositories
	backend http.Handler
	home    string // HOME for every git process, so no user configuration leaks in
	srv     *httptest.Server

	mu          sync.Mutex
	user, pass  string
	intercept   Interceptor
	pushes      map[string]int // successful receive-pack POSTs per repository
	requestLogs []string
}

// Start runs a server until the test ends. It skips the test when git is missing, unless FERRY_REQUIRE_TOOLS=1.
func Start(t testing.TB) *Server {
	t.Helper()
	git := gitBinary(t)
	s := &Server{t: t, git: git, root: t.TempDir(), home: t.TempDir(), pushes: map[string]int{}}
	backend := &cgi.Handler{
		Path: git,
		Args: []string{"http-backend"},
		Dir:  s.root,
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.root,
			"GIT_HTTP_EXPORT_ALL=1",
			"HOME=" + s.home,
			"GIT_CONFIG_NOSYSTEM=1",
			"PATH=" + os.Getenv("PATH"),
		},
	}
	s.backend = backend
	s.srv = httptest.NewServer(s.handler(backend)) // httptest listens on 127.0.0.1 only
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

func gitBinary(t testing.TB) string {
	if p := os.Getenv(GitBinEnv); p != "" {
		return p
	}
	p, err := exec.LookPath("git")
	if err != nil {
		if os.Getenv("FERRY_REQUIRE_TOOLS") == "1" {
			t.Fatalf("git binary not found in PATH (apt-get install git, or set %s)", GitBinEnv)
		}
		t.Skipf("git binary not found in PATH; install git (apt) or set %s", GitBinEnv)
	}
	return p
}

func (s *Server) handler(backend http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		user, pass, intercept := s.user, s.pass, s.intercept
		s.mu.Unlock()
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="gitserver"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		if intercept != nil && intercept(w, r) {
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		backend.ServeHTTP(rec, r)
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") && rec.status == http.StatusOK {
			s.mu.Lock()
			s.pushes[repoFromPath(r.URL.Path)]++
			s.mu.Unlock()
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func repoFromPath(p string) string {
	p = strings.TrimPrefix(p, "/")
	if i := strings.Index(p, ".git/"); i >= 0 {
		p = p[:i]
	}
	return p
}

// RequireBasicAuth makes every request need these credentials (a token is a password with any user name).
func (s *Server) RequireBasicAuth(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.pass = user, password
}

// Intercept installs fn in front of git (nil removes it).
func (s *Server) Intercept(fn Interceptor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.intercept = fn
}

// PushRequests counts receive-pack POSTs that git answered with 200, whatever their ref outcome.
func (s *Server) PushRequests(repo string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pushes[repo]
}

// RepoDir is the bare repository's folder on disk.
func (s *Server) RepoDir(repo string) string { return filepath.Join(s.root, repo+".git") }

// RepoURL is the clone URL of a repository.
func (s *Server) RepoURL(repo string) string { return s.URL + "/" + repo + ".git" }

// Git runs git with the server's clean environment in dir and returns its trimmed standard output.
func (s *Server) Git(dir string, args ...string) string {
	s.t.Helper()
	out, err := s.run(dir, nil, args...)
	if err != nil {
		s.t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (s *Server) command(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(s.git, args...)
	cmd.Dir = dir
	cmd.Env = s.Env()
	return cmd
}

func (s *Server) run(dir string, stdin []byte, args ...string) (string, error) {
	cmd := s.command(dir, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Env is a clean environment for git commands run by tests and benchmarks (no user or system configuration).
func (s *Server) Env() []string {
	return []string{
		"HOME=" + s.home,
		"GIT_CONFIG_NOSYSTEM=1",
		"PATH=" + os.Getenv("PATH"),
		"GIT_AUTHOR_NAME=Test Human", "GIT_AUTHOR_EMAIL=human@example.com",
		"GIT_COMMITTER_NAME=Test Human", "GIT_COMMITTER_EMAIL=human@example.com",
		"GIT_TERMINAL_PROMPT=0",
	}
}

// GitBin is the path of the git binary the server runs.
func (s *Server) GitBin() string { return s.git }

// ServeGit lets an Interceptor hand a request to git itself, e.g. to let a push land and then answer the client
// with an error, as when a connection drops after the server committed.
func (s *Server) ServeGit(w http.ResponseWriter, r *http.Request) { s.backend.ServeHTTP(w, r) }

// Discard is a ResponseWriter that throws the response away (for ServeGit).
type Discard struct{ h http.Header }

func (d *Discard) Header() http.Header {
	if d.h == nil {
		d.h = http.Header{}
	}
	return d.h
}
func (d *Discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *Discard) WriteHeader(int)             {}
