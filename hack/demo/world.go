package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// world is everything the demo runs on this machine: two registries, a Git server, a cluster and the tools,
// each on a loopback address. Stop ends all of it.
type world struct {
	dir       string
	srcReg    string // host:port of the registry CI pushes to
	stageReg  string // host:port of the registry the stages run from
	gitURL    string
	gitRoot   string
	cosign    string
	cosignEnv []string
	stops     []func()
}

func (w *world) stop() {
	for i := len(w.stops) - 1; i >= 0; i-- {
		w.stops[i]()
	}
}

// serve runs handler on a free loopback port until the world stops and returns host:port.
func (w *world) serve(handler http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	w.stops = append(w.stops, func() { _ = srv.Close() })
	return l.Addr().String(), nil
}

// startRegistries starts two OCI registries (go-containerregistry's, with the referrers API).
func (w *world) startRegistries() error {
	var err error
	quiet := ggcrregistry.Logger(nullLogger())
	if w.srcReg, err = w.serve(ggcrregistry.New(quiet, ggcrregistry.WithReferrersSupport(true))); err != nil {
		return err
	}
	w.stageReg, err = w.serve(ggcrregistry.New(quiet, ggcrregistry.WithReferrersSupport(true)))
	return err
}

// startGit serves bare repositories under dir with git's own smart-HTTP backend, and creates acme/deploy.git
// with one folder per stage.
func (w *world) startGit(files map[string]string) error {
	w.gitRoot = filepath.Join(w.dir, "git")
	gitExec, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return fmt.Errorf("git is needed for the demo's Git server: %w", err)
	}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(gitExec)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + w.gitRoot, "GIT_HTTP_EXPORT_ALL=1"},
	}
	addr, err := w.serve(backend)
	if err != nil {
		return err
	}
	w.gitURL = "http://" + addr + "/acme/deploy.git"
	bare := filepath.Join(w.gitRoot, "acme", "deploy.git")
	if err := runIn("", "git", "init", "-q", "--bare", "-b", "main", bare); err != nil {
		return err
	}
	if err := runIn(bare, "git", "config", "http.receivepack", "true"); err != nil {
		return err
	}
	return w.seedGit(files)
}

// seedGit pushes the stages' manifests as the first commit of main.
func (w *world) seedGit(files map[string]string) error {
	work := filepath.Join(w.dir, "seed")
	if err := runIn("", "git", "clone", "-q", w.gitURL, work); err != nil {
		return err
	}
	for path, content := range files {
		full := filepath.Join(work, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return err
		}
	}
	for _, args := range [][]string{
		{"add", "-A"},
		{"-c", "user.name=Platform Team", "-c", "user.email=platform@example.com", "commit", "-q", "-m", "Stages of shop"},
		{"push", "-q", "origin", "HEAD:main"},
	} {
		if err := runIn(work, "git", args...); err != nil {
			return err
		}
	}
	return nil
}

// setUpCosign makes a key pair with the real cosign CLI, in a home of its own that reaches no network.
func (w *world) setUpCosign(bin string) error {
	home := filepath.Join(w.dir, "cosign")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	w.cosign = bin
	w.cosignEnv = []string{"HOME=" + home, "COSIGN_PASSWORD=demo", "PATH=" + os.Getenv("PATH"),
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=127.0.0.1,localhost"}
	return w.cosignRun("generate-key-pair")
}

func (w *world) cosignRun(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.cosign, args...)
	cmd.Dir, cmd.Env = filepath.Join(w.dir, "cosign"), w.cosignEnv
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cosign %s: %v\n%s", args[0], err, out)
	}
	return nil
}

func (w *world) publicKey() ([]byte, error) {
	return os.ReadFile(filepath.Join(w.dir, "cosign", "cosign.pub"))
}

// release is what CI does: build an image (random layers stand in for the app), push it with a version tag,
// and sign its digest with cosign.
func (w *world) release(version string, sign bool) (name.Digest, error) {
	img, err := random.Image(64<<10, 3)
	if err != nil {
		return name.Digest{}, err
	}
	tag, err := name.NewTag(w.srcReg + "/acme/shop:" + version)
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(tag, img); err != nil {
		return name.Digest{}, err
	}
	h, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	d := tag.Context().Digest(h.String())
	if sign {
		err = w.cosignRun("sign", "--key", "cosign.key", "--tlog-upload=false", "--use-signing-config=false",
			"--allow-http-registry", "--yes", d.String())
	}
	return d, err
}

// notify sends the registry push notification a registry would send to Ferry's webhook.
func notify(webhookURL, repository string) error {
	body := fmt.Sprintf(`{"repository":%q}`, repository)
	resp, err := http.Post(webhookURL, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

func runIn(dir, bin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return nil
}

// freePort picks a loopback port for a process the demo starts.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP waits until url answers, for processes the demo starts.
func waitHTTP(ctx context.Context, url string) error {
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
