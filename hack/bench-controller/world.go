package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	sigsig "github.com/sigstore/sigstore/pkg/signature"

	"github.com/ferrycd/ferry/hack/localworld"
)

// Cosign's legacy signature layout: a sha256-<hex>.sig tag whose layers are simple-signing payloads with the
// signature in an annotation.
const (
	mediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	annotationSignature    = "dev.cosignproject.cosign/signature"
)

// world is what the Promotions point at, all on loopback (localworld): a source registry CI pushes to, a stage
// registry the stages run from, a Git smart-HTTP server with one deploy repository per tenant; and the release key.
type world struct {
	*localworld.World
	signer *sigsig.ECDSASignerVerifier
	pubPEM []byte
}

// start brings up the registries, the Git server and the release key.
func (w *world) start() error {
	if err := w.World.Start(); err != nil {
		return err
	}
	return w.newKey()
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

// repoPath names a tenant's deploy repository on the Git server.
func repoPath(tenant string) string { return tenant + "/deploy.git" }

// repoDir is the bare repository of a tenant on disk.
func (w *world) repoDir(tenant string) string { return w.RepoDir(repoPath(tenant)) }

// repoURL is how the controller reaches a tenant's repository.
func (w *world) repoURL(tenant string) string { return w.RepoURL(repoPath(tenant)) }

// seedRepo creates a tenant's deploy repository with files as its first commit on main.
func (w *world) seedRepo(tenant string, files map[string]string) error {
	return w.CreateRepo(repoPath(tenant), files)
}

// release is what CI does for one application: push a small image under a version tag and sign its digest
// in cosign's legacy layout with the release key.
func (w *world) release(repo, version string) (name.Digest, error) {
	img, err := random.Image(4<<10, 2)
	if err != nil {
		return name.Digest{}, err
	}
	tag, err := name.NewTag(w.SourceRegistry + "/" + repo + ":" + version)
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
