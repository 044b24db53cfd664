package main

import (
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/internal/dashboard"
	"github.com/ferrycd/ferry/internal/promotionctl"
)

func init() { register(newDashboardCmd) }

// defaultDashboardAddress is a fixed port, so that the URL can be bookmarked; --address 127.0.0.1:0 picks a
// free one.
const defaultDashboardAddress = "127.0.0.1:8087"

func newDashboardCmd() *cobra.Command {
	var (
		kube    kubeFlags
		address string
	)
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve a local web UI of Promotions: stages, history, analysis charts, provenance and actions",
		Long: "Serve Ferry's dashboard on a loopback address and print its URL. Every read and every action is an\n" +
			"API call made with your own kubeconfig, so your RBAC applies as it is: a rollback, approve, abort or\n" +
			"clear-hold that your role forbids shows the API server's refusal and changes nothing. Pages follow\n" +
			"changes live through a watch. The dashboard has no login of its own, so it only listens on 127.0.0.1\n" +
			"or [::1] and refuses requests from other sites. Stop it with Ctrl-C.",
		Example: "  ferry dashboard -n shop\n  ferry dashboard -A --address 127.0.0.1:0",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ln, err := dashboard.Listen(address)
			if err != nil {
				return err
			}
			defer ln.Close()
			cfg, ns, err := kube.restConfig()
			if err != nil {
				return err
			}
			scheme, err := ferryScheme()
			if err != nil {
				return err
			}
			c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
			if err != nil {
				return fmt.Errorf("connecting to the cluster: %w", err)
			}
			if kube.allNamespaces {
				ns = ""
			}
			srv, err := dashboard.New(dashboard.Options{Client: c, Namespace: ns,
				User: promotionctl.WhoAmI(cmd.Context(), c), Log: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(cmd.OutOrStdout(), "Ferry dashboard: %s (Ctrl-C to stop)\n", dashboard.URL(ln))
			return srv.Serve(ctx, ln)
		},
	}
	kube.bind(cmd, true)
	cmd.Flags().StringVar(&address, "address", defaultDashboardAddress, "loopback host:port to listen on (127.0.0.1:0 picks a free port)")
	return cmd
}
