package sync

import (
	"errors"
	"fmt"
	"net/url"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ferrycd/ferry/internal/netaddr"
)

// ConfigFromKubeconfig turns a kubeconfig held in memory (a Secret's value, typically) into a rest.Config for its
// current context. Because the kubeconfig comes from a user, everything that would make Ferry run a program or
// read its own files is refused: exec credential plugins, auth providers, and certificate, key or token file
// paths; credentials must be inline. A plain-HTTP server is accepted only on loopback. Errors never quote the
// kubeconfig, which holds credentials.
func ConfigFromKubeconfig(data []byte) (*rest.Config, error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, errors.New("kubeconfig: not a valid kubeconfig")
	}
	ctxName := cfg.CurrentContext
	kctx, ok := cfg.Contexts[ctxName]
	if !ok {
		return nil, fmt.Errorf("kubeconfig: current context %q is not defined", ctxName)
	}
	cluster, ok := cfg.Clusters[kctx.Cluster]
	if !ok {
		return nil, fmt.Errorf("kubeconfig: context %q names cluster %q, which is not defined", ctxName, kctx.Cluster)
	}
	if err := checkCluster(kctx.Cluster, cluster); err != nil {
		return nil, err
	}
	if user, ok := cfg.AuthInfos[kctx.AuthInfo]; ok {
		if err := checkUser(kctx.AuthInfo, user); err != nil {
			return nil, err
		}
	}
	restCfg, err := clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: context %q: %w", ctxName, err)
	}
	return restCfg, nil
}

// KubeconfigPolicy says what a kubeconfig from a tenant's Secret may ask for beyond inline credentials. The
// zero value, which Ferry runs with unless its operator says otherwise, refuses both.
type KubeconfigPolicy struct {
	// AllowInsecureTLS accepts insecure-skip-tls-verify: the remote API server's certificate is not checked.
	AllowInsecureTLS bool
	// AllowProxy accepts proxy-url: requests to the remote API server go through a proxy the tenant names.
	AllowProxy bool
}

// kubeconfigPolicy is the policy in force; set it once at start-up with SetKubeconfigPolicy.
var kubeconfigPolicy KubeconfigPolicy

// SetKubeconfigPolicy sets what tenants' kubeconfigs may ask for, for the whole process: call it once, from the
// controller's flags, before anything is reconciled.
func SetKubeconfigPolicy(p KubeconfigPolicy) { kubeconfigPolicy = p }

func checkCluster(name string, c *clientcmdapi.Cluster) error {
	if c.InsecureSkipTLSVerify && !kubeconfigPolicy.AllowInsecureTLS {
		return fmt.Errorf("kubeconfig: cluster %q: insecure-skip-tls-verify is not allowed (the operator may allow it with --allow-insecure-kubeconfig); add certificate-authority-data", name)
	}
	if c.ProxyURL != "" && !kubeconfigPolicy.AllowProxy {
		return fmt.Errorf("kubeconfig: cluster %q: proxy-url is not allowed (the operator may allow it with --allow-kubeconfig-proxy)", name)
	}
	if c.CertificateAuthority != "" {
		return fmt.Errorf("kubeconfig: cluster %q: certificate-authority names a file; inline it as certificate-authority-data", name)
	}
	u, err := url.Parse(c.Server)
	if err != nil || u.Host == "" {
		return fmt.Errorf("kubeconfig: cluster %q: server must be an https URL", name)
	}
	if u.Scheme == "http" && !netaddr.IsLoopback(u.Hostname()) {
		return fmt.Errorf("kubeconfig: cluster %q: plain http is allowed only on loopback", name)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("kubeconfig: cluster %q: server must be an https URL", name)
	}
	return nil
}

func checkUser(name string, u *clientcmdapi.AuthInfo) error {
	switch {
	case u.Exec != nil:
		return fmt.Errorf("kubeconfig: user %q: exec credential plugins are not allowed (they run a program); use a token or client certificate", name)
	case u.AuthProvider != nil:
		return fmt.Errorf("kubeconfig: user %q: auth-provider is not allowed; use a token or client certificate", name)
	case u.ClientCertificate != "" || u.ClientKey != "":
		return fmt.Errorf("kubeconfig: user %q: client-certificate and client-key name files; inline them as *-data", name)
	case u.TokenFile != "":
		return fmt.Errorf("kubeconfig: user %q: tokenFile names a file; inline the token", name)
	}
	return nil
}
