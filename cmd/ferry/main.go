// Command ferry is Ferry's command line: it inspects Promotions in a cluster and runs Ferry's engines on their own
// (verify, copy, pin) so that platform engineers can use them from CI. Installed as `kubectl-ferry` it also works
// as `kubectl ferry`.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// commands holds the constructors of every subcommand; each command's file registers itself in an init function
// so that commands stay independent of one another.
var commands []func() *cobra.Command

// register adds a subcommand constructor to the root command.
func register(newCmd func() *cobra.Command) { commands = append(commands, newCmd) }

// newRootCmd builds a fresh command tree, so tests can run commands in-process without shared flag state.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           rootUse(),
		Short:         "Ferry moves one signed image digest through an ordered pipeline of stages",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, newCmd := range commands {
		root.AddCommand(newCmd())
	}
	return root
}

// rootUse names the command the way the user invoked it: "kubectl ferry" when run as a kubectl plugin.
func rootUse() string {
	if strings.HasPrefix(filepath.Base(os.Args[0]), "kubectl-") {
		return "kubectl ferry"
	}
	return "ferry"
}

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
