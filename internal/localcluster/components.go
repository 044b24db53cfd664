package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// startEtcd runs a single-member etcd on loopback. fsync is off: the data is thrown away with the cluster, and
// syncing every write would make startup and tests wait on the disk.
func (c *Cluster) startEtcd(ctx context.Context) error {
	client := "http://" + loopback(c.ports.etcdClient)
	peer := "http://" + loopback(c.ports.etcdPeer)
	p, err := c.run(Etcd, c.opts.bin(Etcd), []string{
		"--name=localcluster",
		"--data-dir=" + c.path("etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=localcluster=" + peer,
		"--initial-cluster-state=new",
		"--unsafe-no-fsync=true",
	})
	if err != nil {
		return err
	}
	return c.waitHealthy(ctx, p, client+"/health", "")
}

// startAPIServer runs kube-apiserver with the cluster's serving certificate, static tokens, RBAC and
// service-account token signing, and waits for /readyz (which includes RBAC's bootstrap roles).
func (c *Cluster) startAPIServer(ctx context.Context) error {
	p, err := c.run(APIServer, c.opts.bin(APIServer), []string{
		"--etcd-servers=http://" + loopback(c.ports.etcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.ports.apiServer),
		"--cert-dir=" + c.path("pki"),
		"--tls-cert-file=" + c.pki.certFile,
		"--tls-private-key-file=" + c.pki.keyFile,
		"--client-ca-file=" + c.pki.caFile,
		"--token-auth-file=" + c.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=" + serviceAccountIssuer,
		"--service-account-key-file=" + c.pki.saPubFile,
		"--service-account-signing-key-file=" + c.pki.saKeyFile,
		"--service-cluster-ip-range=" + serviceCIDR,
		// The kubernetes Service would advertise 127.0.0.1, which Endpoints reject; nothing in a simulated
		// cluster dials the API server through it.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
	})
	if err != nil {
		return err
	}
	return c.waitHealthy(ctx, p, c.apiServerURL()+"/readyz", c.tokens[adminUser])
}

// startClients runs the controller manager, the scheduler and kwok together and waits until each is healthy.
func (c *Cluster) startClients(ctx context.Context) error {
	stages, err := stageFiles(c.opts.KwokStagesDir)
	if err != nil {
		return err
	}
	cm, err := c.run(ControllerManager, c.opts.bin(ControllerManager), c.controllerManagerArgs())
	if err != nil {
		return err
	}
	sched, err := c.run(Scheduler, c.opts.bin(Scheduler), c.servingClientArgs(Scheduler, c.ports.scheduler))
	if err != nil {
		return err
	}
	kwokArgs := []string{
		"--kubeconfig=" + c.kubeconfigPath(Kwok),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + nodeAnnotation + "=" + nodeAnnotationValue,
		"--server-address=" + loopback(c.ports.kwok),
		"--node-ip=127.0.0.1",
		"--cidr=" + podCIDR,
	}
	for _, s := range stages {
		kwokArgs = append(kwokArgs, "--config="+s)
	}
	kwok, err := c.run(Kwok, c.opts.KwokBin, kwokArgs)
	if err != nil {
		return err
	}
	for _, w := range []struct {
		p   *process
		url string
	}{
		{cm, "https://" + loopback(c.ports.controllerManager) + "/healthz"},
		{sched, "https://" + loopback(c.ports.scheduler) + "/healthz"},
		{kwok, "http://" + loopback(c.ports.kwok) + "/healthz"},
	} {
		if err := c.waitHealthy(ctx, w.p, w.url, ""); err != nil {
			return err
		}
	}
	return nil
}

// controllerManagerArgs runs every controller; the service-account key signs legacy token Secrets and the root
// CA goes into every namespace's kube-root-ca.crt ConfigMap.
func (c *Cluster) controllerManagerArgs() []string {
	return append(c.servingClientArgs(ControllerManager, c.ports.controllerManager),
		"--controllers=*",
		"--service-account-private-key-file="+c.pki.saKeyFile,
		"--root-ca-file="+c.pki.caFile,
	)
}

// servingClientArgs are the flags the controller manager and the scheduler share: their kubeconfig, leader
// election off (there is one of each), and /healthz over HTTPS on loopback with the cluster's serving certificate
// so that readiness checks verify it. Without delegated authentication only /healthz, /readyz and /livez answer,
// which is all the cluster asks of them.
func (c *Cluster) servingClientArgs(name string, port int) []string {
	kubeconfig := c.kubeconfigPath(name)
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + c.pki.certFile,
		"--tls-private-key-file=" + c.pki.keyFile,
		"--profiling=false",
	}
}

// stageFiles lists kwok's Stage objects; without node and pod stages kwok would leave Nodes NotReady and Pods
// Pending, so an empty folder is an error.
func stageFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading kwok's stages: %w", err)
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("kwok's stages: no *.yaml in %s (hack/kwok.sh puts them next to the binary)", dir)
	}
	sort.Strings(files)
	return files, nil
}
