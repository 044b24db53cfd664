package registry

import (
	"context"
	"crypto/rand"
	"os"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// benchImage pushes a ~50 MB image of five incompressible 10 MiB layers, signed with a cosign-style .sig tag,
// and, when withReferrer is set, a sigstore bundle referrer too.
func benchImage(b *testing.B, repo name.Repository, withReferrer bool) v1.Hash {
	b.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i := 0; i < 5; i++ {
		buf := make([]byte, 10<<20)
		if _, err := rand.Read(buf); err != nil {
			b.Fatal(err)
		}
		var err error
		if img, err = mutate.AppendLayers(img, static.NewLayer(buf, types.OCILayer)); err != nil {
			b.Fatal(err)
		}
	}
	if err := remote.Write(repo.Tag("1.0.0"), img); err != nil {
		b.Fatal(err)
	}
	d, _ := img.Digest()
	pushArtifact(b, repo, nil, simpleSignType, []byte(`{"critical":{"image":{"docker-manifest-digest":"`+d.String()+`"}}}`), legacyTag(d, "sig"))
	if withReferrer {
		subject := descriptorOf(b, repo.Digest(d.String()))
		pushArtifact(b, repo, &subject, bundleType, []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`), "")
	}
	return d
}

// BenchmarkCopy compares Ferry's copy (image + signature) with crane.Copy (image only, what `crane copy` runs)
// between two loopback registries, alternating which goes first. Reports ferry/crane, the speed target (≤ 1.1).
func BenchmarkCopy(b *testing.B) {
	src := mustRepo(b, startRegistry(b, true)+"/bench/app")
	d := benchImage(b, src, false)
	ref := src.Digest(d.String()).String()
	c := newTestClient(b, Options{})
	ctx := context.Background()
	var ferry, craneT time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runFerry := func() {
			dst := startRegistry(b, false) + "/app"
			start := time.Now()
			if _, err := c.Copy(ctx, ref, dst); err != nil {
				b.Fatal(err)
			}
			ferry += time.Since(start)
		}
		runCrane := func() {
			dst := startRegistry(b, false) + "/app@" + d.String()
			start := time.Now()
			if err := crane.Copy(ref, dst); err != nil {
				b.Fatal(err)
			}
			craneT += time.Since(start)
		}
		if i%2 == 0 {
			runFerry()
			runCrane()
		} else {
			runCrane()
			runFerry()
		}
	}
	b.ReportMetric(float64(ferry.Milliseconds())/float64(b.N), "ferry-ms/op")
	b.ReportMetric(float64(craneT.Milliseconds())/float64(b.N), "crane-ms/op")
	b.ReportMetric(float64(ferry)/float64(craneT), "ferry/crane")
}

// BenchmarkRecopy copies a digest the destination already holds: targets are 0 blob bytes and ≤ 6 requests for
// the .sig-signed image; the variant with a bundle referrer shows the price of checking referrers too.
func BenchmarkRecopy(b *testing.B) {
	for _, tc := range []struct {
		name     string
		referrer bool
	}{{"sig-tag", false}, {"sig-tag+bundle-referrer", true}} {
		b.Run(tc.name, func(b *testing.B) {
			src := mustRepo(b, startRegistry(b, true)+"/bench/app")
			d := benchImage(b, src, tc.referrer)
			ref := src.Digest(d.String()).String()
			dst := startRegistry(b, false) + "/app"
			c := newTestClient(b, Options{})
			if _, err := c.Copy(context.Background(), ref, dst); err != nil {
				b.Fatal(err)
			}
			var res CopyResult
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var err error
				if res, err = c.Copy(context.Background(), ref, dst); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(res.BytesMoved), "bytes-moved")
			b.ReportMetric(float64(res.Requests), "requests")
		})
	}
}

// BenchmarkCrossRepositoryCopy copies between two repositories of one distribution registry: every blob must be
// mounted, so the target is 0 bytes moved.
func BenchmarkCrossRepositoryCopy(b *testing.B) {
	if os.Getenv("FERRY_DOCKER_REGISTRY") == "" && os.Getenv("FERRY_REQUIRE_TOOLS") != "1" {
		b.Skip("FERRY_DOCKER_REGISTRY is not set; run hack/registry.sh and export its output (make bench does)")
	}
	host := startDistribution(b)
	src := mustRepo(b, host+"/bench/app")
	d := benchImage(b, src, true)
	ref := src.Digest(d.String()).String()
	c := newTestClient(b, Options{})
	var res CopyResult
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		if res, err = c.Copy(context.Background(), ref, host+"/copy"+string(rune('a'+i%26))+"/app"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(res.BytesMoved), "bytes-moved")
	b.ReportMetric(float64(res.BlobsMounted), "blobs-mounted")
	b.ReportMetric(float64(res.BlobsCopied), "blobs-copied")
}
