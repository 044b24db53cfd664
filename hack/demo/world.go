package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrycd/ferry/hack/localworld"
)

// world is everything the demo runs on this machine besides the cluster: two registries and a Git server
// (localworld), and the real cosign CLI with the release key.
type world struct {
	*localworld.World
	cosign    string
	cosignEnv []string
}

// repoPath is the demo's deploy repository on the Git server.
const repoPath = "acme/deploy.git"

// setUpCosign makes a key pair with the real cosign CLI, in a home of its own that reaches no network.
func (w *world) setUpCosign(bin string) error {
	home := filepath.Join(w.Dir, "cosign")
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
	cmd.Dir, cmd.Env = filepath.Join(w.Dir, "cosign"), w.cosignEnv
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cosign %s: %v\n%s", args[0], err, out)
	}
	return nil
}

func (w *world) publicKey() ([]byte, error) {
	return os.ReadFile(filepath.Join(w.Dir, "cosign", "cosign.pub"))
}

// release is what CI does: build an image (random layers stand in for the app), push it with a version tag,
// and sign its digest with cosign.
func (w *world) release(version string, sign bool) (name.Digest, error) {
	img, err := random.Image(64<<10, 3)
	if err != nil {
		return name.Digest{}, err
	}
	tag, err := name.NewTag(w.SourceRegistry + "/acme/shop:" + version)
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

// webhookToken is the token the demo's registry presents to Ferry's webhook (the controller gets it in
// $FERRY_WEBHOOK_TOKEN).
const webhookToken = "demo-webhook-token-0123456789abcdef"

// notify sends the registry push notification a registry would send to Ferry's webhook.
func notify(webhookURL, repository string) error {
	body := fmt.Sprintf(`{"repository":%q}`, repository)
	req, err := http.NewRequest(http.MethodPost, webhookURL, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+webhookToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("webhook answered %s", resp.Status)
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

// waitHTTP waits until url answers 200 OK, for processes the demo starts: a readiness endpoint that answers
// 500 is up, but not ready (the controller's /readyz fails until its registry webhook listens).
func waitHTTP(ctx context.Context, url string) error {
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %s", url, resp.Status)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
