// Package testenv starts a real control plane (etcd and kube-apiserver built from their Go modules by
// hack/controlplane.sh) for tests, once per test package, with Ferry's CRDs installed, and gives each test its
// own namespace. It never downloads anything: without the binaries a test is skipped, or failed when
// FERRY_REQUIRE_TOOLS=1 (as `make test` sets it).
package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// Env is a running control plane with Ferry's CRDs installed.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *runtime.Scheme
	env    *envtest.Environment
}

// RequireTools reports whether missing test tools must fail tests rather than skip them.
func RequireTools() bool { return os.Getenv("FERRY_REQUIRE_TOOLS") == "1" }

// Start starts the control plane for a package's tests, or returns a reason it cannot. Call it from TestMain and
// Stop the environment when the tests are done.
func Start() (*Env, error) {
	assets, err := BinaryAssets()
	if err != nil {
		return nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := ferryv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, env: env}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

// Main is a TestMain body: it starts the environment, runs the tests and stops it. Without binaries it runs the
// tests anyway with env nil, so that each test that needs it skips (or fails) through Need.
func Main(m *testing.M, env **Env) {
	if isFuzzWorker() {
		// Fuzz workers run only fuzz targets, which never need a control plane; starting one per worker would
		// leave processes behind when the fuzzer kills its workers.
		os.Exit(m.Run())
	}
	e, err := Start()
	if err != nil {
		startErr = err
	}
	*env = e
	code := m.Run()
	if e != nil {
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping control plane:", err)
		}
	}
	os.Exit(code)
}

var startErr error

// Need fails or skips the test when the environment could not start.
func Need(t testing.TB, env *Env) *Env {
	t.Helper()
	if env != nil {
		return env
	}
	msg := fmt.Sprintf("no control plane (run `make controlplane`, or `make test` which builds it): %v", startErr)
	if RequireTools() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

// Namespace creates a namespace for one test and deletes it when the test ends.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		// envtest runs no namespace controller, so a deleted namespace keeps its objects for ever: delete the
		// test's Promotions explicitly, or controllers started by later tests would reconcile them too.
		_ = e.Client.DeleteAllOf(context.Background(), &ferryv1.Promotion{}, client.InNamespace(ns.Name))
		_ = e.Client.Delete(context.Background(), ns)
	})
	return ns.Name
}

// User returns a client configuration for a new user with no permissions (no groups beyond system:authenticated),
// for tests of what Ferry does with a narrow role; bind roles to the name to grant some.
func (e *Env) User(t testing.TB, name string) *rest.Config {
	t.Helper()
	u, err := e.env.AddUser(envtest.User{Name: name}, e.Config)
	if err != nil {
		t.Fatalf("adding user %s: %v", name, err)
	}
	return u.Config()
}

// BinaryAssets returns the folder holding etcd and kube-apiserver: $KUBEBUILDER_ASSETS when set, else the cache
// folder hack/controlplane.sh builds into, which must already exist.
func BinaryAssets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir, err := controlPlaneDir(root)
	if err != nil {
		return "", err
	}
	for _, bin := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("%s is not built in %s: run hack/controlplane.sh", bin, dir)
		}
	}
	return dir, nil
}

// controlPlaneDir names the versioned cache folder the same way hack/controlplane.sh does.
func controlPlaneDir(root string) (string, error) {
	f, err := os.Open(filepath.Join(root, "hack", "tools", "controlplane", "go.mod"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	versions := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && versions[fields[0]] == "" {
			versions[fields[0]] = fields[1]
		}
	}
	k8s, etcd := versions["k8s.io/kubernetes"], versions["go.etcd.io/etcd/server/v3"]
	if k8s == "" || etcd == "" {
		return "", fmt.Errorf("hack/tools/controlplane/go.mod does not pin k8s.io/kubernetes and etcd")
	}
	return filepath.Join(root, "bin", "controlplane", "k8s-"+k8s+"-etcd-"+etcd), nil
}

// RepoRoot finds the repository root from the working directory (tests run in their package folder).
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the ferry module")
	}
	return filepath.Dir(gomod), nil
}

// Kubeconfig writes a kubeconfig for the control plane into the test's temporary folder, with namespace as the
// context's default, and returns its path: CLI tests use it exactly as a person's kubeconfig.
func (e *Env) Kubeconfig(t testing.TB, namespace string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := e.WriteKubeconfig(path, namespace); err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteKubeconfig writes a kubeconfig for the control plane to path, with namespace as the context's default.
func (e *Env) WriteKubeconfig(path, namespace string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["ferry"] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.Config.CAData}
	cfg.AuthInfos["ferry"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: e.Config.CertData, ClientKeyData: e.Config.KeyData, Token: e.Config.BearerToken,
	}
	cfg.Contexts["ferry"] = &clientcmdapi.Context{Cluster: "ferry", AuthInfo: "ferry", Namespace: namespace}
	cfg.CurrentContext = "ferry"
	return clientcmd.WriteToFile(*cfg, path)
}

// isFuzzWorker reports whether this process is a worker of `go test -fuzz`.
func isFuzzWorker() bool {
	for _, arg := range os.Args {
		if strings.HasPrefix(arg, "-test.fuzzworker") {
			return true
		}
	}
	return false
}

// InstallHTTPRouteCRD installs the Gateway API's HTTPRoute CRD — the YAML the sigs.k8s.io/gateway-api module ships,
// found in the module cache, nothing downloaded — into the test API server. Installing it again changes nothing.
func (e *Env) InstallHTTPRouteCRD() error {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		return fmt.Errorf("finding the gateway-api module: %w", err)
	}
	crd := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml")
	_, err = envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{Paths: []string{crd}, ErrorIfPathMissing: true})
	return err
}
