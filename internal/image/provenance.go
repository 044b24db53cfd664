package image

import (
	"encoding/json"
	"time"
)

// ProvenanceInput is what the SLSA provenance records about one release build.
type ProvenanceInput struct {
	Metadata
	// BuilderID names who built: a URI (the CI workflow, or this tool on a named machine).
	BuilderID string
	// Repository is where the index was pushed (host/path).
	Repository string
	// Platforms are the platforms built, in index order.
	Platforms []Platform
	// SourceDirty is true when the working tree had changes that are not in Commit.
	SourceDirty bool
	// GoVersion is the toolchain that compiled the binaries; LDFlags the linker flags (with the version).
	GoVersion, LDFlags string
	// CAPackageVersion is the Debian ca-certificates package version the CA bundle came from.
	CAPackageVersion string
	// StartedOn and FinishedOn bound the build; they vary between runs, unlike the image.
	StartedOn, FinishedOn time.Time
}

// BuildType identifies how hack/release builds: what its externalParameters and internalParameters mean is
// described in docs/release.md.
const BuildType = "https://github.com/ferrycd/ferry/blob/main/docs/release.md#provenance"

// Provenance is the SLSA provenance v1 predicate (https://slsa.dev/provenance/v1) of a release build, to be
// attested with `cosign attest --type slsaprovenance1`.
func Provenance(in ProvenanceInput) ([]byte, error) {
	platforms := make([]string, len(in.Platforms))
	for i, p := range in.Platforms {
		platforms[i] = p.String()
	}
	type digestSet map[string]string
	type resource struct {
		URI    string    `json:"uri"`
		Digest digestSet `json:"digest,omitempty"`
	}
	pred := map[string]any{
		"buildDefinition": map[string]any{
			"buildType": BuildType,
			"externalParameters": map[string]any{
				"source":     map[string]string{"repository": in.Source, "commit": in.Commit},
				"version":    in.Version,
				"platforms":  platforms,
				"repository": in.Repository,
			},
			"internalParameters": map[string]any{
				"goVersion":       in.GoVersion,
				"cgoEnabled":      false,
				"buildFlags":      BuildFlags,
				"ldflags":         in.LDFlags,
				"sourceDateEpoch": in.Created.Unix(),
				"sourceTreeDirty": in.SourceDirty,
			},
			"resolvedDependencies": []resource{
				{URI: "git+" + in.Source + "@" + in.Commit, Digest: digestSet{"gitCommit": in.Commit}},
				{URI: "pkg:golang/stdlib@" + in.GoVersion},
				{URI: "pkg:deb/debian/ca-certificates@" + in.CAPackageVersion + "?arch=all"},
			},
		},
		"runDetails": map[string]any{
			"builder": map[string]any{"id": in.BuilderID},
			"metadata": map[string]any{
				"startedOn":  in.StartedOn.UTC().Format(time.RFC3339),
				"finishedOn": in.FinishedOn.UTC().Format(time.RFC3339),
			},
		},
	}
	return json.MarshalIndent(pred, "", "  ")
}
