package publish

import (
	"context"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferrycd/ferry/internal/registry"
	"github.com/ferrycd/ferry/internal/signature"
)

// RequiredAttestations are what every release carries besides its signature: the SBOM and the SLSA provenance.
var RequiredAttestations = []string{"spdxjson", "slsaprovenance1"}

// Verify checks the pushed digest the way `ferry verify REF --key PUB --require-attestation spdxjson
// --require-attestation slsaprovenance1` does: signed by the key, and both attestations signed by it too.
func Verify(ctx context.Context, ro registry.Options, d name.Digest, publicKeyFile string) (*signature.Result, error) {
	pub, err := os.ReadFile(publicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("reading the release's public key: %w", err)
	}
	p := signature.Policy{Keys: [][]byte{pub}, RequiredAttestations: RequiredAttestations}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	ropts, err := registry.RemoteOptions(ctx, ro)
	if err != nil {
		return nil, err
	}
	res, err := signature.VerifyDigest(ctx, d, p, ropts)
	if err != nil {
		return nil, fmt.Errorf("verifying %s with Ferry's verifier: %w", d, err)
	}
	return res, nil
}
