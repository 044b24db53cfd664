// Package version reports which build of Ferry is running, for `ferry version`, `ferry-controller --version`,
// the controller's startup log and the provenance Ferry records. Release builds (hack/release) set Version and
// Commit with -ldflags; other builds fall back to the module and VCS information Go embeds. The image a binary
// runs from cannot be linked into it (its digest depends on the binary), so it is read from $FERRY_IMAGE, which
// the release's Deployment sets to the image reference pinned by digest.
package version

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version and Commit are set at link time by hack/release:
// -ldflags "-X github.com/ferrycd/ferry/internal/version.Version=v0.1.0 -X ….Commit=<sha>".
var (
	Version = ""
	Commit  = ""
)

// ImageEnv names the environment variable holding the image this process runs from (repo@sha256:…). The
// Deployment in dist/install.yaml sets it to the same reference as the container's image.
const ImageEnv = "FERRY_IMAGE"

// Unknown is reported for what the build or the environment does not say.
const Unknown = "unknown"

// Info describes the running build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
	// Image is the image reference pinned by digest from $FERRY_IMAGE, or "unknown".
	Image string `json:"image"`
}

// Get returns the running build's information.
func Get() Info {
	info := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, Image: Image()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && info.Commit == "" {
				info.Commit = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	return info
}

// Image is the image this process runs from, as the environment says ($FERRY_IMAGE), or "unknown". Only a
// reference pinned by digest is reported: a tag says nothing about which build runs.
func Image() string {
	ref := strings.TrimSpace(os.Getenv(ImageEnv))
	if ref == "" || !strings.Contains(ref, "@sha256:") {
		return Unknown
	}
	return ref
}

// String is the one-line form: "ferry devel (commit abc123, go1.26.8, linux/amd64)".
func (i Info) String() string {
	commit := ""
	if i.Commit != "" {
		commit = "commit " + i.Commit + ", "
	}
	return fmt.Sprintf("%s (%s%s, %s)", i.Version, commit, i.GoVersion, i.Platform)
}
