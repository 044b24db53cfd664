package registry

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrycd/ferry/internal/signature/signaturetest"
)

// startDistribution runs the CNCF distribution registry (Debian's docker-registry) on a free loopback port with
// filesystem storage in a temporary folder, and returns its host once /v2/ answers.
func startDistribution(t testing.TB) string {
	t.Helper()
	return signaturetest.StartDistribution(t).Host
}

func TestInteropWithDistribution(t *testing.T) {
	dist := startDistribution(t)
	ctx := context.Background()
	c := newTestClient(t, Options{})

	// ggcr (referrers API) → distribution 2.8 (no referrers API): referrers land in the fallback tag.
	src := newSignedImage(t, startRegistry(t, true))
	res, err := c.Copy(ctx, src.repo.Digest(src.digest.String()).String(), dist+"/mirror/app")
	if err != nil {
		t.Fatal(err)
	}
	mirror := mustRepo(t, dist+"/mirror/app")
	if refs := referrerDigests(t, mirror.Digest(src.digest.String())); refs[src.bundle.Digest] != bundleType || refs[src.sbom.Digest] != spdxType {
		t.Errorf("distribution referrers of the image = %v", refs)
	}
	if refs := referrerDigests(t, mirror.Digest(src.sbom.Digest.String())); refs[src.sbomSig.Digest] != bundleType {
		t.Errorf("distribution referrers of the SBOM = %v", refs)
	}
	if res.TagsCopied != 2 || res.ReferrersCopied != 3 {
		t.Errorf("result %+v", res)
	}

	// Same registry, another repository: every blob is mounted, no byte moves.
	res, err = c.Copy(ctx, mirror.Digest(src.digest.String()).String(), dist+"/prod/app")
	if err != nil {
		t.Fatal(err)
	}
	if res.BytesMoved != 0 || res.BlobsMounted == 0 || res.BlobsCopied != 0 {
		t.Errorf("cross-repository copy inside distribution: %+v", res)
	}
	prod := mustRepo(t, dist+"/prod/app")
	if refs := referrerDigests(t, prod.Digest(src.digest.String())); len(refs) != 2 {
		t.Errorf("referrers after the mount copy = %v", refs)
	}

	// Re-copy of a digest already present: nothing moves, few requests.
	res, err = c.Copy(ctx, mirror.Digest(src.digest.String()).String(), dist+"/prod/app")
	if err != nil {
		t.Fatal(err)
	}
	if res.BytesMoved != 0 || res.ManifestsCopied != 0 {
		t.Errorf("re-copy moved something: %+v", res)
	}

	// distribution (no API, fallback tags) → ggcr with the API.
	back := mustRepo(t, startRegistry(t, true)+"/back/app")
	if _, err := c.Copy(ctx, prod.Digest(src.digest.String()).String(), back.String()); err != nil {
		t.Fatal(err)
	}
	if refs := referrerDigests(t, back.Digest(src.digest.String())); len(refs) != 2 {
		t.Errorf("referrers copied back = %v", refs)
	}
	if _, err := remote.Head(back.Tag(src.sigOfSig)); err != nil {
		t.Errorf("signature of the signature not copied back: %v", err)
	}
}
