package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/internal/version"
)

func init() { register(newVersionCmd) }

// versionLookupTimeout bounds the question to the cluster: `ferry version` must answer even when it cannot reach one.
const versionLookupTimeout = 5 * time.Second

// versionOutput is `ferry version --json`: this build's fields, and what the cluster says of the controller.
type versionOutput struct {
	version.Info
	Controller *controllerImage `json:"controller,omitempty"`
}

// controllerImage is the running controller as the cluster reports it.
type controllerImage struct {
	Deployment string `json:"deployment"`
	// Image is the Deployment's container image (repository@sha256:… for a release install) or "unknown".
	Image string `json:"image"`
	// Running are the distinct image IDs the kubelet reports for the controller's pods: what was pulled.
	Running []string `json:"running,omitempty"`
	Error   string   `json:"error,omitempty"`
}

func newVersionCmd() *cobra.Command {
	var (
		asJSON, clientOnly  bool
		kubeconfig, context string
		namespace, name     string
	)
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this ferry build and the image of the controller running in the cluster",
		Long: "Print this build's version and commit, then the image the cluster's ferry-controller Deployment runs\n" +
			"(pinned by digest in a release install) and the image IDs its pods report. Without a reachable cluster or\n" +
			"Deployment the controller's image is printed as \"unknown\" and the command still succeeds.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := versionOutput{Info: version.Get()}
			if !clientOnly {
				out.Controller = lookUpController(cmd.Context(), kubeconfig, context, namespace, name)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			return printVersion(cmd.OutOrStdout(), out)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print as JSON")
	f.BoolVar(&clientOnly, "client", false, "print only this build's version; do not ask the cluster")
	f.StringVar(&kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&context, "context", "", "kubeconfig context to use")
	f.StringVar(&namespace, "controller-namespace", "ferry-system", "namespace of the controller's Deployment")
	f.StringVar(&name, "controller-name", "ferry-controller", "name of the controller's Deployment")
	return cmd
}

func printVersion(w io.Writer, out versionOutput) error {
	if _, err := fmt.Fprintln(w, "ferry", out.Info.String()); err != nil {
		return err
	}
	c := out.Controller
	if c == nil {
		return nil
	}
	line := fmt.Sprintf("controller %s: image %s", c.Deployment, c.Image)
	if len(c.Running) > 0 {
		line += "; pods run " + strings.Join(c.Running, ", ")
	}
	if c.Error != "" {
		line += " (" + c.Error + ")"
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

// lookUpController reads the controller's Deployment and pods. Every failure is reported in the result, never
// returned: the client's own version is printed either way.
func lookUpController(ctx context.Context, kubeconfig, kubeContext, namespace, name string) *controllerImage {
	res := &controllerImage{Deployment: namespace + "/" + name, Image: version.Unknown}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, versionLookupTimeout)
	defer cancel()
	c, err := versionClient(kubeconfig, kubeContext)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &d); err != nil {
		res.Error = fmt.Sprintf("reading Deployment %s: %v", res.Deployment, err)
		return res
	}
	container := managerContainer(d.Spec.Template.Spec.Containers)
	if container == nil {
		res.Error = "the Deployment has no containers"
		return res
	}
	if strings.Contains(container.Image, "@sha256:") {
		res.Image = container.Image
	} else {
		res.Error = fmt.Sprintf("the Deployment names %q, not an image pinned by digest", container.Image)
	}
	res.Running, err = runningImages(ctx, c, &d, container.Name)
	if err != nil && res.Error == "" {
		res.Error = err.Error()
	}
	return res
}

// managerContainer is the container named "manager", or the only one.
func managerContainer(cs []corev1.Container) *corev1.Container {
	for i := range cs {
		if cs[i].Name == "manager" {
			return &cs[i]
		}
	}
	if len(cs) == 1 {
		return &cs[0]
	}
	return nil
}

// runningImages lists the distinct image IDs the kubelet reports for the container in the Deployment's pods.
func runningImages(ctx context.Context, c client.Client, d *appsv1.Deployment, container string) ([]string, error) {
	if d.Spec.Selector == nil {
		return nil, nil
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(d.Namespace), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		return nil, fmt.Errorf("listing the controller's pods: %w", err)
	}
	seen := map[string]bool{}
	var ids []string
	for _, p := range pods.Items {
		for _, s := range p.Status.ContainerStatuses {
			if s.Name == container && s.ImageID != "" && !seen[s.ImageID] {
				seen[s.ImageID] = true
				ids = append(ids, s.ImageID)
			}
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// versionClient connects to the cluster with a short timeout; it needs only Deployments and Pods.
func versionClient(kubeconfig, kubeContext string) (client.Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("no cluster: %w", err)
	}
	cfg.Timeout = versionLookupTimeout
	scheme := runtime.NewScheme()
	if err := appsv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}
