package publish

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ferrycd/ferry/internal/image"
)

// Dist's layout: what `make image` writes and `make release` reads.
const (
	LayoutDir   = "image"      // the OCI image layout
	RecordFile  = "build.json" // BuildRecord
	BinDir      = "bin"        // the compiled binaries, per platform
	InstallFile = "install.yaml"
	ChartsDir   = "charts"
)

// BuildRecord is what `make image` built, for `make release` to push and describe without building again.
type BuildRecord struct {
	Version, Commit, Source string
	SourceDirty             bool
	Created                 time.Time
	Platforms               []string
	Digest                  string // the index's digest
	GoVersion, LDFlags      string
	CAPackageVersion        string
	StartedOn, FinishedOn   time.Time
}

// WriteRecord writes dist/build.json.
func WriteRecord(dist string, r BuildRecord) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dist, RecordFile), append(b, '\n'), 0o644)
}

// ReadRecord reads dist/build.json.
func ReadRecord(dist string) (BuildRecord, error) {
	var r BuildRecord
	b, err := os.ReadFile(filepath.Join(dist, RecordFile))
	if err != nil {
		return r, fmt.Errorf("reading what `make image` built (run it first): %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", RecordFile, err)
	}
	return r, nil
}

// ProvenanceInput describes the build for the SLSA provenance of the image pushed to repository.
func (r BuildRecord) ProvenanceInput(builderID, repository string) (image.ProvenanceInput, error) {
	in := image.ProvenanceInput{
		Metadata:  image.Metadata{Version: r.Version, Commit: r.Commit, Source: r.Source, Created: r.Created},
		BuilderID: builderID, Repository: repository, SourceDirty: r.SourceDirty,
		GoVersion: r.GoVersion, LDFlags: r.LDFlags, CAPackageVersion: r.CAPackageVersion,
		StartedOn: r.StartedOn, FinishedOn: r.FinishedOn,
	}
	for _, s := range r.Platforms {
		p, err := image.ParsePlatform(s)
		if err != nil {
			return in, err
		}
		in.Platforms = append(in.Platforms, p)
	}
	return in, nil
}
