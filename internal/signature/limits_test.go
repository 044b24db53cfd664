package signature

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	st "github.com/ferrycd/ferry/internal/signature/signaturetest"
)

// verifyWithin verifies d with the default limits changed by set.
func verifyWithin(t *testing.T, d name.Digest, p Policy, set func(*limits), opts ...remote.Option) error {
	t.Helper()
	v, err := NewVerifier(p)
	if err != nil {
		t.Fatal(err)
	}
	set(&v.lim)
	_, err = v.Verify(context.Background(), d, opts)
	return err
}

// recordingTransport records the path of every GET.
type recordingTransport struct {
	mu   sync.Mutex
	gets []string
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet {
		r.mu.Lock()
		r.gets = append(r.gets, req.URL.Path)
		r.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

// wantKind fails unless err is of kind and its text names each of want.
func wantKind(t *testing.T, err error, kind Kind, want ...string) {
	t.Helper()
	if KindOf(err) != kind {
		t.Fatalf("error = %v (kind %q), want kind %q", err, KindOf(err), kind)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
}

// paddedPayload is d's simple-signing payload with n bytes of padding in its optional part, which the signature
// covers like the rest.
func paddedPayload(d name.Digest, n int) []byte {
	return []byte(strings.Replace(string(st.SimpleSigningPayload(d)), `"optional":null`,
		fmt.Sprintf(`"optional":{"padding":%q}`, strings.Repeat("x", n)), 1))
}

func TestMoreReferrersThanTheLimitFailVerification(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			reg := st.NewRegistry(t, mode.referrers)
			d := reg.PushImage(t, "app")
			k := st.NewKeySigner(t)
			st.PushBundle(t, d, k.Bundle(t, st.Statement(d, predicateCosignSign)))
			for i := range 2 {
				st.PushReferrer(t, d, "application/spdx+json", "application/spdx+json", fmt.Appendf(nil, "sbom %d", i), nil)
			}
			p := keyPolicy(k)
			if err := verifyWithin(t, d, p, func(l *limits) { l.referrers = 3 }); err != nil {
				t.Fatalf("3 referrers with a limit of 3: %v", err)
			}
			err := verifyWithin(t, d, p, func(l *limits) { l.referrers = 2 })
			wantKind(t, err, KindTooLarge, d.String(), "3 referrers", "more than the 2")
		})
	}
}

func TestMoreLayersThanTheLimitFailVerification(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	k := st.NewKeySigner(t)
	for range 3 {
		st.PushLegacy(t, d, "sig", k.LegacySignature(t, st.SimpleSigningPayload(d)))
	}
	p := keyPolicy(k)
	if err := verifyWithin(t, d, p, func(l *limits) { l.layers = 3 }); err != nil {
		t.Fatalf("3 layers with a limit of 3: %v", err)
	}
	err := verifyWithin(t, d, p, func(l *limits) { l.layers = 2 })
	wantKind(t, err, KindTooLarge, ".sig has 3 layers", "more than the 2")
}

// TestManifestsOverTheLimitFailVerification: a signature manifest with 8 KiB of layer annotations, as a
// referrer (refused as listed, before it is fetched) and as a legacy tag (refused once read, since nothing
// declares its size).
func TestManifestsOverTheLimitFailVerification(t *testing.T) {
	k := st.NewKeySigner(t)
	padding := map[string]string{"padding": strings.Repeat("x", 8<<10)}
	for _, tc := range []struct {
		name, where string
		push        func(d name.Digest)
	}{
		{"referrer", "referrer sha256:", func(d name.Digest) {
			st.PushReferrer(t, d, st.BundleMediaType, st.BundleMediaType, k.Bundle(t, st.Statement(d, predicateCosignSign)), padding)
		}},
		{"legacy tag", "the manifest of tag sha256-", func(d name.Digest) {
			sig := k.LegacySignature(t, st.SimpleSigningPayload(d))
			sig.Annotations["padding"] = padding["padding"]
			st.PushLegacy(t, d, "sig", sig)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := st.NewRegistry(t, true).PushImage(t, "app")
			tc.push(d)
			if err := verifyWithin(t, d, keyPolicy(k), func(l *limits) { l.manifestBytes = 16 << 10 }); err != nil {
				t.Fatalf("an 8 KiB manifest with a 16 KiB limit: %v", err)
			}
			err := verifyWithin(t, d, keyPolicy(k), func(l *limits) { l.manifestBytes = 4 << 10 })
			wantKind(t, err, KindTooLarge, tc.where, "more than the 4096 Ferry reads")
		})
	}
}

// TestLayersOverTheBlobLimitAreRefused: a validly signed payload larger than the per-blob limit is refused as a
// candidate, by its declared size, and the verification fails for want of a signature.
func TestLayersOverTheBlobLimitAreRefused(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	k := st.NewKeySigner(t)
	st.PushLegacy(t, d, "sig", k.LegacySignature(t, paddedPayload(d, 8<<10)))
	if err := verifyWithin(t, d, keyPolicy(k), func(l *limits) { l.blobBytes = 16 << 10 }); err != nil {
		t.Fatalf("an 8 KiB payload with a 16 KiB limit: %v", err)
	}
	rec := &recordingTransport{}
	err := verifyWithin(t, d, keyPolicy(k), func(l *limits) { l.blobBytes = 4 << 10 }, remote.WithTransport(rec))
	wantKind(t, err, KindUntrusted, "signature 1 (tag sha256-", "larger than the limit", "the limit is 4096")
	for _, p := range rec.gets {
		if strings.Contains(p, "/blobs/") {
			t.Errorf("GET %s: a layer over the limit was fetched", p)
		}
	}
}

// TestVerificationReadsAtMostTheTotalLimit: two signatures of 3 KiB each, each under the per-blob limit, but
// together over what one verification reads.
func TestVerificationReadsAtMostTheTotalLimit(t *testing.T) {
	reg := st.NewRegistry(t, true)
	d := reg.PushImage(t, "app")
	k := st.NewKeySigner(t)
	st.PushLegacy(t, d, "sig", k.LegacySignature(t, paddedPayload(d, 3<<10)), k.LegacySignature(t, paddedPayload(d, 3<<10)))
	small := func(total int64) func(*limits) {
		return func(l *limits) { l.blobBytes, l.totalBytes = 4<<10, total }
	}
	if err := verifyWithin(t, d, keyPolicy(k), small(16<<10)); err != nil {
		t.Fatalf("two 3 KiB signatures with a 16 KiB total: %v", err)
	}
	err := verifyWithin(t, d, keyPolicy(k), small(6<<10))
	wantKind(t, err, KindTooLarge, d.String(), "past the 6144 bytes")
}
