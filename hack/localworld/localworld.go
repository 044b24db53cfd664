// Package localworld runs, on loopback addresses of this machine, the outside world Ferry talks to: OCI
// registries (go-containerregistry's, with the referrers API) and a Git server (git's own smart-HTTP backend).
// `make demo` and the controller benchmark use it; tests use their own test servers (internal/gitserver,
// internal/signature/signaturetest). Everything it starts ends with Stop.
package localworld

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// World is a set of servers on 127.0.0.1 and the folder they keep their state in.
type World struct {
	// Dir holds the Git repositories and scratch space.
	Dir string
	// SourceRegistry and StageRegistry are host:port of two registries: where CI pushes, and where the stages
	// run from.
	SourceRegistry, StageRegistry string
	// GitURL is the Git server's base URL; GitRoot is the folder of its bare repositories.
	GitURL, GitRoot string
	stops           []func()
}

// New returns a World keeping its state in dir; nothing runs until Start.
func New(dir string) *World { return &World{Dir: dir} }

// Start starts the two registries and the Git server.
func (w *World) Start() error {
	quiet := ggcrregistry.Logger(log.New(io.Discard, "", 0))
	var err error
	if w.SourceRegistry, err = w.Serve(ggcrregistry.New(quiet, ggcrregistry.WithReferrersSupport(true))); err != nil {
		return err
	}
	if w.StageRegistry, err = w.Serve(ggcrregistry.New(quiet, ggcrregistry.WithReferrersSupport(true))); err != nil {
		return err
	}
	return w.startGit()
}

// OnStop runs fn when the World stops, after everything started later has stopped.
func (w *World) OnStop(fn func()) { w.stops = append(w.stops, fn) }

// Stop stops everything, last started first.
func (w *World) Stop() {
	for i := len(w.stops) - 1; i >= 0; i-- {
		w.stops[i]()
	}
	w.stops = nil
}

// Serve runs handler on a free loopback port until the World stops, and returns host:port.
func (w *World) Serve(handler http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listening on loopback: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	w.OnStop(func() { _ = srv.Close() })
	return l.Addr().String(), nil
}

// startGit serves the bare repositories under GitRoot with git's smart-HTTP backend, in a home of its own so
// that no configuration of this machine's user leaks in.
func (w *World) startGit() error {
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return fmt.Errorf("git is needed for the Git server: %w", err)
	}
	w.GitRoot = filepath.Join(w.Dir, "git")
	home := filepath.Join(w.Dir, "git-home")
	for _, d := range []string{w.GitRoot, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + w.GitRoot, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + home,
			"GIT_CONFIG_NOSYSTEM=1", "PATH=" + os.Getenv("PATH")},
	}
	addr, err := w.Serve(backend)
	if err != nil {
		return err
	}
	w.GitURL = "http://" + addr
	return nil
}

// RepoDir is the bare repository at path (for example "acme/deploy.git") on disk.
func (w *World) RepoDir(path string) string {
	return filepath.Join(w.GitRoot, filepath.FromSlash(path))
}

// RepoURL is how clients reach the repository at path.
func (w *World) RepoURL(path string) string { return w.GitURL + "/" + path }

// CreateRepo creates the bare repository at path with files as the first commit of main, pushable over HTTP.
func (w *World) CreateRepo(path string, files map[string]string) error {
	work, err := os.MkdirTemp(w.Dir, "seed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	for name, content := range files {
		full := filepath.Join(work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return err
		}
	}
	bare := w.RepoDir(path)
	for _, args := range [][]string{
		{"-C", work, "init", "-q", "-b", "main"},
		{"-C", work, "add", "-A"},
		{"-C", work, "-c", "user.name=Platform Team", "-c", "user.email=platform@example.com", "commit", "-q", "-m", "Stages"},
		{"clone", "-q", "--bare", work, bare},
		{"-C", bare, "config", "http.receivepack", "true"},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}
