package main

import (
	"fmt"

	"github.com/ferrycd/ferry/internal/version"
)

// versionText is what --version prints: the build, then the image it runs from ("unknown" unless $FERRY_IMAGE
// names one by digest, as dist/install.yaml's Deployment does).
func versionText(i version.Info) string {
	return fmt.Sprintf("ferry-controller %s\nimage: %s\n", i.String(), i.Image)
}
