package localcluster

import (
	"fmt"
	"os"
	"strings"
)

// Environment variables naming the binaries, as `make test` and `make demo` set them.
const (
	// EnvBinDir is the folder of etcd and the kube-* binaries: `KUBEBUILDER_ASSETS=$(hack/controlplane.sh)`.
	EnvBinDir = "KUBEBUILDER_ASSETS"
	// EnvKwok is the kwok binary, with its stages/ next to it: `FERRY_KWOK=$(hack/kwok.sh)`.
	EnvKwok = "FERRY_KWOK"
)

// OptionsFromEnv returns Options for a cluster with state in dir and binaries named by KUBEBUILDER_ASSETS and
// FERRY_KWOK, or an error naming every unset variable and the script that prints its value.
func OptionsFromEnv(dir string, nodes int) (Options, error) {
	opts := Options{Dir: dir, BinDir: os.Getenv(EnvBinDir), KwokBin: os.Getenv(EnvKwok), Nodes: nodes}
	var missing []string
	if opts.BinDir == "" {
		missing = append(missing, EnvBinDir+"=$(hack/controlplane.sh)")
	}
	if opts.KwokBin == "" {
		missing = append(missing, EnvKwok+"=$(hack/kwok.sh)")
	}
	if len(missing) > 0 {
		return Options{}, fmt.Errorf("the local cluster's binaries are not set: %s", strings.Join(missing, " "))
	}
	return opts, nil
}
