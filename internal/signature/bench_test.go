package signature

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	st "github.com/ferrycd/ferry/internal/signature/signaturetest"
)

// countingTransport counts registry requests, the cost that matters most against rate-limited registries.
type countingTransport struct {
	n     atomic.Int64
	inner http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.inner.RoundTrip(r)
}

// BenchmarkVerify measures one full verification (discovery in both layouts plus offline checks) of an image
// with a key signature, a keyless signature and a required SLSA attestation, and reports registry requests per
// verification. Target: under 10 ms and under 12 requests on loopback.
func BenchmarkVerify(b *testing.B) {
	for _, mode := range registryModes {
		b.Run(mode.name, func(b *testing.B) {
			reg := st.NewRegistry(b, mode.referrers)
			d := reg.PushImage(b, "app")
			k, ks := st.NewKeySigner(b), st.NewKeyless(b)
			st.PushLegacy(b, d, "sig", k.LegacySignature(b, st.SimpleSigningPayload(d)))
			st.PushLegacy(b, d, "att", k.LegacyAttestation(b, st.Statement(d, PredicateSLSAProvenanceV1)))
			st.PushBundle(b, d, ks.Bundle(b, st.Subject, st.Issuer, st.Statement(d, predicateCosignSign)))
			p := Policy{Keys: [][]byte{k.PublicKeyPEM}, Identities: []Identity{{Issuer: st.Issuer, Subject: st.Subject}},
				TrustedRoot: ks.TrustedRootJSON, Threshold: 2, RequiredAttestations: []string{PredicateSLSAProvenanceV1}}
			ct := &countingTransport{inner: http.DefaultTransport}
			opts := []remote.Option{remote.WithTransport(ct)}
			b.ResetTimer()
			for b.Loop() {
				if _, err := Verify(context.Background(), d.String(), p, opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(ct.n.Load())/float64(b.N), "requests/op")
		})
	}
}
