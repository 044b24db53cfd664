package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// wantLimit fails unless err is an ErrLimitExceeded whose text names each of want.
func wantLimit(t *testing.T, err error, want ...string) {
	t.Helper()
	if !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("error = %v, want ErrLimitExceeded", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
}

// pushTags tags n small artifacts t0..t<n-1> in repo.
func pushTags(t *testing.T, repo name.Repository, n int) {
	t.Helper()
	for i := range n {
		pushArtifact(t, repo, nil, simpleSignType, fmt.Appendf(nil, "%d", i), fmt.Sprintf("1.0.%d", i))
	}
}

func TestListTagsRefusesMoreThanMaxTags(t *testing.T) {
	repo := mustRepo(t, startRegistry(t, false)+"/team/app")
	pushTags(t, repo, 4)
	c := newTestClient(t, Options{MaxTags: 4})
	if tags, err := c.ListTags(context.Background(), repo.String()); err != nil || len(tags) != 4 {
		t.Fatalf("4 tags with MaxTags 4: %v, %v", tags, err)
	}
	pushTags(t, repo, 5)
	_, err := c.ListTags(context.Background(), repo.String())
	wantLimit(t, err, repo.String(), "more than 4 tags", "MaxTags")
	// Latest must not choose from the first four: 1.0.4 is the newest.
	_, err = c.Latest(context.Background(), repo.String(), TagPolicy{Semver: ">=1"})
	wantLimit(t, err, repo.String())
}

// TestTagLimitOnDistribution: the real distribution registry (which answers every tag in one page, ignoring n).
func TestTagLimitOnDistribution(t *testing.T) {
	repo := mustRepo(t, startDistribution(t)+"/team/app")
	pushTags(t, repo, 5)
	if tags, err := newTestClient(t, Options{MaxTags: 5}).ListTags(context.Background(), repo.String()); err != nil || len(tags) != 5 {
		t.Fatalf("5 tags with MaxTags 5: %v, %v", tags, err)
	}
	_, err := newTestClient(t, Options{MaxTags: 4}).ListTags(context.Background(), repo.String())
	wantLimit(t, err, repo.String(), "more than 4 tags")
}

// TestTagLimitAcrossPages pages through the distribution spec's paginated listing (n, last, Link rel="next"),
// which neither test registry implements, two tags at a time: the limit holds across pages, and the listing
// stops at the page that crosses it.
func TestTagLimitAcrossPages(t *testing.T) {
	all := []string{"1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"}
	repo, requests := hostileTags(t, func(n int64, w http.ResponseWriter) {
		start, end := int(2*(n-1)), min(int(2*n), len(all))
		if end < len(all) {
			w.Header().Set("Link", fmt.Sprintf(`</v2/evil/tags/list?n=2&last=%s>; rel="next"`, all[end-1]))
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"name": "evil", "tags": all[start:end]})
	})
	if tags, err := newTestClient(t, Options{MaxTags: 5}).ListTags(context.Background(), repo.String()); err != nil || len(tags) != 5 {
		t.Fatalf("5 tags with MaxTags 5: %v, %v", tags, err)
	}
	requests.Store(0)
	_, err := newTestClient(t, Options{MaxTags: 3}).ListTags(context.Background(), repo.String())
	wantLimit(t, err, repo.String(), "more than 3 tags")
	if n := requests.Load(); n != 2 {
		t.Errorf("%d pages read, want 2: the second crosses the limit", n)
	}
}

// hostileTags serves a tag list whose n-th page (counting from 1) page writes.
func hostileTags(t *testing.T, page func(n int64, w http.ResponseWriter)) (name.Repository, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/evil/tags/list" {
			http.NotFound(w, r)
			return
		}
		page(n.Add(1), w)
	}))
	t.Cleanup(srv.Close)
	return mustRepo(t, strings.TrimPrefix(srv.URL, "http://")+"/evil"), &n
}

func TestTagPageIsBoundedByWhatMaxTagsCanTake(t *testing.T) {
	// One tag, padded with 100 KiB of whitespace: a page no honest registry serves with MaxTags 1.
	repo, _ := hostileTags(t, func(_ int64, w http.ResponseWriter) {
		fmt.Fprintf(w, `{"name":"evil","tags":["1.0.0"]%s}`, strings.Repeat(" ", 100<<10))
	})
	_, err := newTestClient(t, Options{MaxTags: 1}).ListTags(context.Background(), repo.String())
	wantLimit(t, err, "page of the tag list of "+repo.String(), "larger than")
}

func TestTagListingOfEmptyPagesEnds(t *testing.T) {
	// Empty pages, each linking to the next, for 50 pages: a listing that follows them all is led on.
	repo, requests := hostileTags(t, func(n int64, w http.ResponseWriter) {
		if n < 50 {
			w.Header().Set("Link", fmt.Sprintf(`</v2/evil/tags/list?n=1&last=%d>; rel="next"`, n))
		}
		fmt.Fprint(w, `{"name":"evil","tags":[]}`)
	})
	_, err := newTestClient(t, Options{MaxTags: 3}).ListTags(context.Background(), repo.String())
	wantLimit(t, err, "more than 3 pages")
	if n := requests.Load(); n != 4 {
		t.Errorf("%d pages read, want 4", n)
	}
}

// pushReferrer pushes an artifact about subject whose manifest carries padding bytes in a field of its own,
// which listings of referrers do not repeat.
func pushReferrer(t *testing.T, repo name.Repository, subject v1.Descriptor, padding int) v1.Hash {
	t.Helper()
	d := pushArtifact(t, repo, nil, bundleType, []byte("layer"), "scratch") // uploads the blobs
	raw, err := remote.Get(repo.Digest(d.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	m["subject"] = subject
	m["padding"] = strings.Repeat("x", padding)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	if err := remote.Put(repo.Digest(h.String()), rawTaggable{raw: b, mt: types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCopyRefusesMoreReferrersThanMaxReferrers(t *testing.T) {
	for _, api := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrers-api=%v", api), func(t *testing.T) {
			src := mustRepo(t, startRegistry(t, api)+"/app")
			d := pushImage(t, src, 512, 1)
			subject := descriptorOf(t, src.Digest(d.String()))
			for i := range 3 {
				pushReferrer(t, src, subject, i)
			}
			dst := startRegistry(t, false) + "/app"
			ref := src.Digest(d.String()).String()
			if _, err := newTestClient(t, Options{MaxReferrers: 3}).Copy(context.Background(), ref, dst); err != nil {
				t.Fatalf("3 referrers with MaxReferrers 3: %v", err)
			}
			_, err := newTestClient(t, Options{MaxReferrers: 2}).Copy(context.Background(), ref, dst)
			wantLimit(t, err, d.String(), "more than 2", "MaxReferrers")
		})
	}
}

func TestCopyRefusesMoreLegacyTagsThanMaxReferrers(t *testing.T) {
	src := mustRepo(t, startRegistry(t, false)+"/app")
	d := pushImage(t, src, 512, 1)
	for _, kind := range []string{"sig", "att", "sbom"} {
		pushArtifact(t, src, nil, simpleSignType, []byte(kind), legacyTag(d, kind))
	}
	_, err := newTestClient(t, Options{MaxReferrers: 2}).Copy(context.Background(), src.Digest(d.String()).String(), startRegistry(t, false)+"/app")
	wantLimit(t, err, d.String(), "more than 2 attachments")
}

// TestCopyBoundsAttachmentsOfAttachments: a chain of signatures of signatures, each digest with one attachment,
// longer than 16 times MaxReferrers.
func TestCopyBoundsAttachmentsOfAttachments(t *testing.T) {
	src := mustRepo(t, startRegistry(t, false)+"/app")
	d := pushImage(t, src, 512, 1)
	chain := func(n int) {
		prev := d
		for i := range n {
			prev = pushArtifact(t, src, nil, simpleSignType, fmt.Appendf(nil, "sig %d", i), legacyTag(prev, "sig")).Digest
		}
	}
	chain(attachmentsPerCopyFactor)
	ref := src.Digest(d.String()).String()
	c := newTestClient(t, Options{MaxReferrers: 1})
	if _, err := c.Copy(context.Background(), ref, startRegistry(t, false)+"/app"); err != nil {
		t.Fatalf("a chain of %d with MaxReferrers 1: %v", attachmentsPerCopyFactor, err)
	}
	chain(attachmentsPerCopyFactor + 1)
	_, err := c.Copy(context.Background(), ref, startRegistry(t, false)+"/app")
	wantLimit(t, err, fmt.Sprintf("more than %d attachments in all", attachmentsPerCopyFactor))
}

func TestCopyRefusesManifestsOverMaxManifestBytes(t *testing.T) {
	src := mustRepo(t, startRegistry(t, true)+"/app")
	d := pushImage(t, src, 512, 1)
	subject := descriptorOf(t, src.Digest(d.String()))
	big := pushReferrer(t, src, subject, 8<<10)
	ref := src.Digest(d.String()).String()
	if _, err := newTestClient(t, Options{MaxManifestBytes: 16 << 10}).Copy(context.Background(), ref, startRegistry(t, false)+"/app"); err != nil {
		t.Fatalf("an 8 KiB referrer with a 16 KiB limit: %v", err)
	}
	_, err := newTestClient(t, Options{MaxManifestBytes: 4 << 10}).Copy(context.Background(), ref, startRegistry(t, false)+"/app")
	wantLimit(t, err, big.String(), "larger than 4096 bytes", "MaxManifestBytes")
}

// streamingProxy forwards to a registry but sends every body without a Content-Length (chunked), as a
// registry that streams manifests does.
func streamingProxy(t *testing.T, backend string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+backend+r.URL.RequestURI(), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(resp.StatusCode)
		w.(http.Flusher).Flush()
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestRemoteOptionsCutResponseBodies reads through RemoteOptions a manifest larger than MaxManifestBytes from a
// registry that declares its length, and from one that streams it without a length.
func TestRemoteOptionsCutResponseBodies(t *testing.T) {
	host := startRegistry(t, true)
	repo := mustRepo(t, host+"/app")
	d := pushImage(t, repo, 512, 1)
	big := pushReferrer(t, repo, descriptorOf(t, repo.Digest(d.String())), 8<<10)
	opts, err := RemoteOptions(context.Background(), Options{MaxManifestBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]string{"declared": host, "streamed": streamingProxy(t, host)} {
		t.Run(name, func(t *testing.T) {
			at := mustRepo(t, h+"/app")
			_, err := remote.Get(at.Digest(big.String()), opts...)
			wantLimit(t, err, "/v2/app/manifests/"+big.String(), "4096", "MaxManifestBytes")
			if _, err := remote.Get(at.Digest(d.String()), opts...); err != nil {
				t.Errorf("the small image manifest: %v", err)
			}
		})
	}
}
