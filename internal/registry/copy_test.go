package registry

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// signedImage is a source image with every kind of attachment Ferry must carry.
type signedImage struct {
	repo      name.Repository
	digest    v1.Hash
	sigTag    string        // legacy cosign signature tag
	bundle    v1.Descriptor // sigstore bundle referrer of the image
	sbom      v1.Descriptor // SBOM referrer of the image
	sbomSig   v1.Descriptor // bundle referrer of the SBOM (a referrer of a referrer)
	sigOfSig  string        // legacy signature tag of the legacy signature manifest
	layersLen int
}

func newSignedImage(t *testing.T, host string) signedImage {
	t.Helper()
	repo := mustRepo(t, host+"/team/app")
	s := signedImage{repo: repo, layersLen: 3}
	s.digest = pushImage(t, repo, 4096, 3)
	subject := descriptorOf(t, repo.Digest(s.digest.String()))
	s.sigTag = legacyTag(s.digest, "sig")
	sig := pushArtifact(t, repo, nil, simpleSignType, []byte(`{"critical":{}}`), s.sigTag)
	s.sigOfSig = legacyTag(sig.Digest, "sig")
	pushArtifact(t, repo, nil, simpleSignType, []byte(`{"critical":{"sig":1}}`), s.sigOfSig)
	s.bundle = pushArtifact(t, repo, &subject, bundleType, []byte(`{"mediaType":"bundle"}`), "")
	s.sbom = pushArtifact(t, repo, &subject, spdxType, []byte(`{"spdxVersion":"SPDX-2.3"}`), "")
	sbomDesc := s.sbom
	s.sbomSig = pushArtifact(t, repo, &sbomDesc, bundleType, []byte(`{"mediaType":"bundle-of-sbom"}`), "")
	return s
}

func TestCopyCarriesEveryAttachment(t *testing.T) {
	for _, tc := range []struct{ srcReferrers, dstReferrers bool }{
		{true, true}, {true, false}, {false, true}, {false, false},
	} {
		t.Run(fmt.Sprintf("src-api=%v/dst-api=%v", tc.srcReferrers, tc.dstReferrers), func(t *testing.T) {
			src := newSignedImage(t, startRegistry(t, tc.srcReferrers))
			dstRepo := mustRepo(t, startRegistry(t, tc.dstReferrers)+"/prod/app")
			c := newTestClient(t, Options{})

			res, err := c.Copy(context.Background(), src.repo.Digest(src.digest.String()).String(), dstRepo.String())
			if err != nil {
				t.Fatal(err)
			}
			if want := dstRepo.Digest(src.digest.String()).String(); res.Destination != want {
				t.Errorf("Destination = %q, want %q", res.Destination, want)
			}
			if got := descriptorOf(t, dstRepo.Digest(src.digest.String())).Digest; got != src.digest {
				t.Errorf("destination digest %s, want %s", got, src.digest)
			}
			// Legacy tags, including the signature's own signature, point to the same manifests as at the source.
			for _, tag := range []string{src.sigTag, src.sigOfSig} {
				want := descriptorOf(t, src.repo.Tag(tag)).Digest
				if got := descriptorOf(t, dstRepo.Tag(tag)).Digest; got != want {
					t.Errorf("tag %s: destination %s, source %s", tag, got, want)
				}
			}
			// Referrers are discoverable at the destination whether or not it has the API.
			refs := referrerDigests(t, dstRepo.Digest(src.digest.String()))
			_, hasBundle := refs[src.bundle.Digest]
			_, hasSBOM := refs[src.sbom.Digest]
			if !hasBundle || !hasSBOM || len(refs) != 2 {
				t.Errorf("destination referrers of the image = %v, want the bundle and the SBOM", refs)
			}
			// Without the API the index is Ferry's own work, so it must say what each artifact is. (The test
			// registry's API reports the config media type instead, which is its own doing.)
			if !tc.dstReferrers && (refs[src.bundle.Digest] != bundleType || refs[src.sbom.Digest] != spdxType) {
				t.Errorf("destination referrers of the image = %v, want the bundle and the SBOM", refs)
			}
			if refs := referrerDigests(t, dstRepo.Digest(src.sbom.Digest.String())); len(refs) != 1 || refs[src.sbomSig.Digest] == "" {
				t.Errorf("destination referrers of the SBOM = %v, want its bundle", refs)
			}
			if res.TagsCopied != 2 || res.ReferrersCopied != 3 {
				t.Errorf("tags copied %d (want 2), referrers copied %d (want 3)", res.TagsCopied, res.ReferrersCopied)
			}
			if res.BlobsCopied == 0 || res.BytesMoved == 0 || res.Requests == 0 {
				t.Errorf("result does not account for the transfer: %+v", res)
			}

			// A second copy finds everything in place and moves nothing.
			again, err := c.Copy(context.Background(), src.repo.Digest(src.digest.String()).String(), dstRepo.String())
			if err != nil {
				t.Fatal(err)
			}
			if again.BytesMoved != 0 || again.BlobsCopied != 0 || again.ManifestsCopied != 0 || again.TagsCopied != 0 || again.ReferrersCopied != 0 {
				t.Errorf("re-copy moved something: %+v", again)
			}
			if again.TagsSkipped != 2 || again.ReferrersSkipped != 3 {
				t.Errorf("re-copy saw tags %d (want 2) referrers %d (want 3)", again.TagsSkipped, again.ReferrersSkipped)
			}
		})
	}
}

func TestRecopyOfSignedImageIsCheap(t *testing.T) {
	for _, srcAPI := range []bool{true, false} {
		t.Run(fmt.Sprintf("src-api=%v", srcAPI), func(t *testing.T) {
			srcRepo := mustRepo(t, startRegistry(t, srcAPI)+"/app")
			d := pushImage(t, srcRepo, 2048, 5)
			pushArtifact(t, srcRepo, nil, simpleSignType, []byte(`{}`), legacyTag(d, "sig"))
			dst := mustRepo(t, startRegistry(t, false)+"/app")
			c := newTestClient(t, Options{})
			ref := srcRepo.Digest(d.String()).String()
			if _, err := c.Copy(context.Background(), ref, dst.String()); err != nil {
				t.Fatal(err)
			}
			res, err := c.Copy(context.Background(), ref, dst.String())
			if err != nil {
				t.Fatal(err)
			}
			if res.BytesMoved != 0 || res.Requests > 6 {
				t.Errorf("re-copy moved %d bytes in %d requests, want 0 bytes in at most 6", res.BytesMoved, res.Requests)
			}
		})
	}
}

func TestCopyIndexWithPerPlatformAttachments(t *testing.T) {
	host := startRegistry(t, true)
	repo := mustRepo(t, host+"/multi")
	d, children := pushIndex(t, repo, 3)
	var atts []v1.Descriptor
	for _, child := range children {
		subject := descriptorOf(t, repo.Digest(child.String()))
		atts = append(atts, pushArtifact(t, repo, &subject, "application/vnd.in-toto+json", []byte(child.String()), ""))
	}
	pushArtifact(t, repo, nil, simpleSignType, []byte(`{}`), legacyTag(children[1], "att"))
	dst := mustRepo(t, startRegistry(t, false)+"/mirror/multi")

	res, err := newTestClient(t, Options{}).Copy(context.Background(), repo.Digest(d.String()).String(), dst.String())
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(dst.Digest(d.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := idx.Digest(); got != d {
		t.Errorf("index digest %s, want %s", got, d)
	}
	for i, child := range children {
		if _, err := remote.Image(dst.Digest(child.String())); err != nil {
			t.Errorf("child %s: %v", child, err)
		}
		if refs := referrerDigests(t, dst.Digest(child.String())); len(refs) != 1 || refs[atts[i].Digest] == "" {
			t.Errorf("child %s referrers = %v, want its attestation", child, refs)
		}
	}
	if _, err := remote.Head(dst.Tag(legacyTag(children[1], "att"))); err != nil {
		t.Errorf("child's legacy attestation tag missing: %v", err)
	}
	if res.ManifestsCopied < 4+3+1 || res.ReferrersCopied != 3 || res.TagsCopied != 1 {
		t.Errorf("unexpected result %+v", res)
	}
}

func TestCopyWithinOneRegistryAcrossRepositories(t *testing.T) {
	host := startRegistry(t, true)
	src := newSignedImage(t, host)
	dst := mustRepo(t, host+"/other/app")
	res, err := newTestClient(t, Options{}).Copy(context.Background(), src.repo.Digest(src.digest.String()).String(), dst.String())
	if err != nil {
		t.Fatal(err)
	}
	// go-containerregistry's registry shares blobs across repositories, so nothing needs to move at all.
	if res.BytesMoved != 0 {
		t.Errorf("moved %d bytes inside one registry", res.BytesMoved)
	}
	if refs := referrerDigests(t, dst.Digest(src.digest.String())); len(refs) != 2 {
		t.Errorf("referrers at destination = %v", refs)
	}
}
