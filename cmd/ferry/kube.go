package main

import (
	"fmt"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// kubeFlags are the flags of every command that talks to a cluster, with kubectl's meaning.
type kubeFlags struct {
	kubeconfig    string
	context       string
	namespace     string
	allNamespaces bool
}

func (k *kubeFlags) bind(cmd *cobra.Command, withAll bool) {
	f := cmd.Flags()
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&k.context, "context", "", "kubeconfig context to use")
	f.StringVarP(&k.namespace, "namespace", "n", "", "namespace (default: the context's namespace)")
	if withAll {
		f.BoolVarP(&k.allNamespaces, "all-namespaces", "A", false, "list Promotions in every namespace")
	}
}

// client returns a client for Ferry's API and the namespace the command works in.
func (k *kubeFlags) client() (client.Client, string, error) {
	cfg, ns, err := k.restConfig()
	if err != nil {
		return nil, "", err
	}
	scheme, err := ferryScheme()
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("connecting to the cluster: %w", err)
	}
	return c, ns, nil
}

// restConfig loads the user's kubeconfig as kubectl does, and the namespace the command works in.
func (k *kubeFlags) restConfig() (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: k.context}
	if k.namespace != "" {
		overrides.Context.Namespace = k.namespace
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("loading kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("reading the namespace from kubeconfig: %w", err)
	}
	return cfg, ns, nil
}

// ferryScheme knows Ferry's types and the SelfSubjectReview that names the user who asks.
func ferryScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := ferryv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := authenticationv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, nil
}
