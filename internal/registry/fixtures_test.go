package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
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
)

const (
	bundleType     = "application/vnd.dev.sigstore.bundle.v0.3+json"
	spdxType       = "application/spdx+json"
	simpleSignType = "application/vnd.dev.cosign.simplesigning.v1+json"
	emptyJSONType  = "application/vnd.oci.empty.v1+json"
)

// fastRetry keeps retry tests quick while still exercising backoff.
var fastRetry = RetryPolicy{Attempts: 5, Initial: time.Millisecond, Max: 10 * time.Millisecond}

// startRegistry runs go-containerregistry's in-memory registry on loopback, with or without the referrers API.
func startRegistry(t testing.TB, referrers bool) string {
	t.Helper()
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(referrers))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func mustRepo(t testing.TB, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newTestClient(t testing.TB, o Options) *Client {
	t.Helper()
	if o.Retry == (RetryPolicy{}) {
		o.Retry = fastRetry
	}
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// pushImage pushes a random image tagged "v1" and returns its digest.
func pushImage(t testing.TB, repo name.Repository, size int64, layers int64, opts ...remote.Option) v1.Hash {
	t.Helper()
	img, err := random.Image(size, layers)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if err := remote.Write(repo.Tag("v1"), img, opts...); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pushIndex pushes a random multi-platform index of n images and returns its digest and its children's.
func pushIndex(t testing.TB, repo name.Repository, n int64) (v1.Hash, []v1.Hash) {
	t.Helper()
	idx, err := random.Index(512, 2, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(repo.Tag("multi"), idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	im, _ := idx.IndexManifest()
	var children []v1.Hash
	for _, m := range im.Manifests {
		children = append(children, m.Digest)
	}
	return d, children
}

type rawTaggable struct {
	raw []byte
	mt  types.MediaType
}

func (r rawTaggable) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawTaggable) MediaType() (types.MediaType, error) { return r.mt, nil }

// pushArtifact pushes an OCI artifact (empty config, one payload layer) about subject. With subject set it is an
// OCI 1.1 referrer (go-containerregistry maintains the fallback tag on registries without the API); with tag set
// it is pushed under that tag (the legacy cosign layout).
func pushArtifact(t testing.TB, repo name.Repository, subject *v1.Descriptor, artifactType string, payload []byte, tag string) v1.Descriptor {
	t.Helper()
	cfg := static.NewLayer([]byte("{}"), emptyJSONType)
	layer := static.NewLayer(payload, types.MediaType(artifactType))
	for _, l := range []v1.Layer{cfg, layer} {
		if err := remote.WriteLayer(repo, l); err != nil {
			t.Fatal(err)
		}
	}
	desc := func(l v1.Layer) v1.Descriptor {
		d, _ := l.Digest()
		s, _ := l.Size()
		mt, _ := l.MediaType()
		return v1.Descriptor{MediaType: mt, Digest: d, Size: s}
	}
	ld := desc(layer)
	ld.Annotations = map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQ-test"}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIManifestSchema1,
		"artifactType":  artifactType,
		"config":        desc(cfg),
		"layers":        []v1.Descriptor{ld},
		"annotations":   map[string]string{"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
	}
	if subject != nil {
		m["subject"] = subject
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d, size, _ := v1.SHA256(bytes.NewReader(raw))
	var ref name.Reference = repo.Digest(d.String())
	if tag != "" {
		ref = repo.Tag(tag)
	}
	if err := remote.Put(ref, rawTaggable{raw: raw, mt: types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: d, Size: size, ArtifactType: artifactType}
}

func descriptorOf(t testing.TB, ref name.Reference) v1.Descriptor {
	t.Helper()
	d, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	return *d
}

func legacyTag(d v1.Hash, kind string) string { return "sha256-" + d.Hex + "." + kind }

// assertNoManifest checks the destination serves neither the digest nor any tag.
func assertNothingAt(t *testing.T, repo name.Repository, d v1.Hash) {
	t.Helper()
	if _, err := remote.Head(repo.Digest(d.String())); err == nil {
		t.Errorf("destination %s serves %s although the copy failed", repo, d)
	}
	tags, err := remote.List(repo)
	if err == nil && len(tags) > 0 {
		t.Errorf("destination %s has tags %v although the copy failed", repo, tags)
	}
}

func referrerDigests(t *testing.T, ref name.Digest) map[v1.Hash]string {
	t.Helper()
	idx, err := remote.Referrers(ref)
	if err != nil {
		t.Fatalf("listing referrers of %s: %v", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[v1.Hash]string{}
	for _, m := range im.Manifests {
		out[m.Digest] = m.ArtifactType
	}
	return out
}

// emptyIndexDigest is used where a digest that no registry holds is needed.
func absentDigest(t testing.TB) v1.Hash {
	d, err := empty.Index.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
