package localcluster

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	// serviceCIDR and podCIDR are the usual kubeadm ranges; nothing routes to them, they only have to be valid
	// and apart.
	serviceCIDR         = "10.96.0.0/12"
	kubernetesServiceIP = "10.96.0.1"
	podCIDR             = "10.244.0.0/16"
	// serviceAccountIssuer is the iss of service-account tokens, as in a kubeadm cluster.
	serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	// adminUser is the identity of Cluster.Kubeconfig and Cluster.RESTConfig.
	adminUser = "localcluster-admin"
	kwokUser  = "localcluster-kwok"
	// The scheduler runs as the user Kubernetes' bootstrap RBAC policy grants what it needs, as in a real cluster.
	// The controller manager is a master: giving each controller its own service account (as kubeadm does) costs
	// a token request per controller, which doubled the cluster's startup time. kwok stands in for every kubelet.
	controllerManagerUser = "system:kube-controller-manager"
	schedulerUser         = "system:kube-scheduler"
	mastersGroup          = "system:masters"
)

// ports are the loopback ports the components listen on, all chosen free at start.
type ports struct {
	etcdClient, etcdPeer, apiServer, controllerManager, scheduler, kwok int
}

// layout prepares the state folder: a fresh etcd data folder and logs/, certificates, the token file, and one
// kubeconfig per API client.
func (c *Cluster) layout() error {
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", c.Dir, err)
	}
	// A previous cluster's data would hold objects signed and owned by keys that no longer exist.
	if err := os.RemoveAll(c.path("etcd")); err != nil {
		return fmt.Errorf("removing the previous etcd data: %w", err)
	}
	if err := os.MkdirAll(c.path("logs"), 0o700); err != nil {
		return fmt.Errorf("creating the log folder: %w", err)
	}
	var err error
	if c.pki, err = newPKI(c.path("pki"), time.Now()); err != nil {
		return err
	}
	if c.ports, err = freePorts(); err != nil {
		return err
	}
	if err := c.writeTokens(); err != nil {
		return err
	}
	return c.writeKubeconfigs()
}

func (c *Cluster) path(name string) string { return filepath.Join(c.Dir, name) }

func (c *Cluster) apiServerURL() string {
	return "https://" + loopback(c.ports.apiServer)
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePorts asks the kernel for six distinct free loopback ports, holding each until all are chosen so that none
// is handed out twice.
func freePorts() (ports, error) {
	var got [6]int
	for i := range got {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports{}, fmt.Errorf("choosing a free loopback port: %w", err)
		}
		defer l.Close()
		got[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports{got[0], got[1], got[2], got[3], got[4], got[5]}, nil
}

// writeTokens makes a token per API client and writes kube-apiserver's static token file (mode 0600).
func (c *Cluster) writeTokens() error {
	users := []struct{ name, groups string }{
		{adminUser, mastersGroup},
		{kwokUser, mastersGroup},
		{controllerManagerUser, mastersGroup},
		{schedulerUser, ""},
	}
	c.tokens = map[string]string{}
	var b strings.Builder
	for _, u := range users {
		token, err := newToken()
		if err != nil {
			return err
		}
		c.tokens[u.name] = token
		// token,user,uid,"group1,group2"
		fmt.Fprintf(&b, "%s,%s,%s,%q\n", token, u.name, u.name, u.groups)
	}
	return writeFile(c.path("tokens.csv"), []byte(b.String()), 0o600)
}

// writeKubeconfigs writes one kubeconfig per client (mode 0600) and sets the admin's REST config.
func (c *Cluster) writeKubeconfigs() error {
	for name, user := range map[string]string{
		"admin":           adminUser,
		Kwok:              kwokUser,
		ControllerManager: controllerManagerUser,
		Scheduler:         schedulerUser,
	} {
		if err := c.writeKubeconfig(c.kubeconfigPath(name), user); err != nil {
			return err
		}
	}
	c.Kubeconfig = c.kubeconfigPath("admin")
	c.RESTConfig = &rest.Config{
		Host:            c.apiServerURL(),
		BearerToken:     c.tokens[adminUser],
		TLSClientConfig: rest.TLSClientConfig{CAData: c.pki.caPEM},
		// Tests create and poll many objects; client-go's default of 5 per second would be the bottleneck.
		QPS:   100,
		Burst: 200,
	}
	return nil
}

func (c *Cluster) kubeconfigPath(name string) string { return c.path(name + ".kubeconfig") }

func (c *Cluster) writeKubeconfig(path, user string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: c.apiServerURL(), CertificateAuthorityData: c.pki.caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: c.tokens[user]}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "local"
	_ = os.Remove(path)
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
