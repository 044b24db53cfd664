package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
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

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	sigsig "github.com/sigstore/sigstore/pkg/signature"
)

// Cosign's legacy signature layout: a sha256-<hex>.sig tag whose layers are simple-signing payloads with the
// signature in an annotation.
const (
	mediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	annotationSignature    = "dev.cosignproject.cosign/signature"
)

// world is what the Promotions point at, all on loopback: a source registry CI pushes to, a stage registry the
// stages run from, a Git smart-HTTP server with one deploy repository per tenant, and the release key.
type world struct {
	dir      string
	srcReg   string // host:port
	stageReg string // host:port
	gitURL   string // http://host:port
	gitRoot  string // GIT_PROJECT_ROOT
	signer   *sigsig.ECDSASignerVerifier
	pubPEM   []byte
	stops    []func()
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
		return "", fmt.Errorf("listening on loopback: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	w.stops = append(w.stops, func() { _ = srv.Close() })
	return l.Addr().String(), nil
}

// start brings up the registries, the Git server and the release key.
func (w *world) start() error {
	quiet := ggcrregistry.Logger(log.New(io.Discard, "", 0))
	var err error
	if w.srcReg, err = w.serve(ggcrregistry.New(quiet, ggcrregistry.WithReferrersSupport(true))); err != nil {
		return err
	}
	if w.stageReg, err = w.serve(ggcrregistry.New(quiet, ggcrregistry.WithReferrersSupport(true))); err != nil {
		return err
	}
	if err := w.startGit(); err != nil {
		return err
	}
	return w.newKey()
}

// startGit serves the bare repositories under gitRoot with git's own smart-HTTP backend.
func (w *world) startGit() error {
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return fmt.Errorf("git is needed for the benchmark's Git server: %w", err)
	}
	w.gitRoot = filepath.Join(w.dir, "git")
	home := filepath.Join(w.dir, "git-home")
	for _, d := range []string{w.gitRoot, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + w.gitRoot, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + home,
			"GIT_CONFIG_NOSYSTEM=1", "PATH=" + os.Getenv("PATH")},
	}
	addr, err := w.serve(backend)
	if err != nil {
		return err
	}
	w.gitURL = "http://" + addr
	return nil
}

// newKey makes the release key pair (ECDSA P-256 with SHA-256, as `cosign generate-key-pair` does).
func (w *world) newKey() error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if w.signer, err = sigsig.LoadECDSASignerVerifier(priv, crypto.SHA256); err != nil {
		return fmt.Errorf("loading the release key: %w", err)
	}
	w.pubPEM, err = cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	return err
}

// repoDir is the bare repository of a tenant on disk.
func (w *world) repoDir(tenant string) string { return filepath.Join(w.gitRoot, tenant, "deploy.git") }

// repoURL is how the controller reaches a tenant's repository.
func (w *world) repoURL(tenant string) string { return w.gitURL + "/" + tenant + "/deploy.git" }

// seedRepo creates a tenant's deploy repository with files as its first commit on main.
func (w *world) seedRepo(tenant string, files map[string]string) error {
	work := filepath.Join(w.dir, "seed", tenant)
	for path, content := range files {
		full := filepath.Join(work, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return err
		}
	}
	bare := w.repoDir(tenant)
	for _, c := range [][]string{
		{"-C", work, "init", "-q", "-b", "main"},
		{"-C", work, "add", "-A"},
		{"-C", work, "-c", "user.name=Platform Team", "-c", "user.email=platform@example.com", "commit", "-q", "-m", "Stages of " + tenant},
		{"clone", "-q", "--bare", work, bare},
		{"-C", bare, "config", "http.receivepack", "true"},
	} {
		if out, err := exec.Command("git", c...).CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	return os.RemoveAll(work)
}

// release is what CI does for one application: push a small image under a version tag and sign its digest
// in cosign's legacy layout with the release key.
func (w *world) release(repo, version string) (name.Digest, error) {
	img, err := random.Image(4<<10, 2)
	if err != nil {
		return name.Digest{}, err
	}
	tag, err := name.NewTag(w.srcReg + "/" + repo + ":" + version)
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(tag, img); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", tag, err)
	}
	h, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	d := tag.Context().Digest(h.String())
	return d, w.sign(d)
}

// sign writes the legacy sha256-<hex>.sig tag for d, as `cosign sign --key` does.
func (w *world) sign(d name.Digest) error {
	payload := fmt.Appendf(nil, `{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`,
		d.Context().String(), d.DigestStr())
	sig, err := w.signer.SignMessage(strings.NewReader(string(payload)))
	if err != nil {
		return fmt.Errorf("signing %s: %w", d, err)
	}
	var img v1.Image = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:       static.NewLayer(payload, mediaTypeSimpleSigning),
		Annotations: map[string]string{annotationSignature: base64.StdEncoding.EncodeToString(sig)},
	})
	if err != nil {
		return err
	}
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
	if err := remote.Write(tag, img); err != nil {
		return fmt.Errorf("pushing the signature of %s: %w", d, err)
	}
	return nil
}
