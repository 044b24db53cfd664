// Package version reports which build of Ferry is running, for `ferry version`, the controller's startup log and
// the provenance Ferry records. Release builds set Version with -ldflags; other builds fall back to the module
// and VCS information Go embeds.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at link time: -ldflags "-X github.com/ferrycd/ferry/internal/version.Version=v0.1.0".
var Version = ""

// Info describes the running build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the running build's information.
func Get() Info {
	info := Info{Version: Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				info.Commit = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	return info
}

// String is the one-line form: "ferry devel (commit abc123, go1.26.8, linux/amd64)".
func (i Info) String() string {
	commit := ""
	if i.Commit != "" {
		commit = "commit " + i.Commit + ", "
	}
	return fmt.Sprintf("%s (%s%s, %s)", i.Version, commit, i.GoVersion, i.Platform)
}
