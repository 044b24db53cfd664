package sync

import (
	"os"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/testenv"
)

func TestConfigFromKubeconfigAppliesToTheCluster(t *testing.T) {
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	data, err := os.ReadFile(e.Kubeconfig(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ConfigFromKubeconfig(data)
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := NewTarget(cfg, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	if _, err := tgt.Apply(testContext(t), ApplyRequest{Owner: "shop.remote", Revision: "r", Objects: decode(t, configMap("remote"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := getLive(t, configMapGVK, ns, "remote"); err != nil {
		t.Fatal(err)
	}
}

func TestConfigFromKubeconfigRefusesWhatRunsOrReadsLocally(t *testing.T) {
	const secret = "s3cr3t-token-value"
	kubeconfig := func(server, user string) string {
		return `apiVersion: v1
kind: Config
current-context: c
contexts:
- name: c
  context: {cluster: k, user: u}
clusters:
- name: k
  cluster: {server: "` + server + `"}
users:
- name: u
  user:
` + user
	}
	cases := map[string]struct {
		data string
		want string
	}{
		"exec":          {kubeconfig("https://k.example.com", "    exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}\n"), "exec credential plugins are not allowed"},
		"auth provider": {kubeconfig("https://k.example.com", "    auth-provider: {name: gcp}\n"), "auth-provider is not allowed"},
		"token file":    {kubeconfig("https://k.example.com", "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n"), "tokenFile names a file"},
		"cert file":     {kubeconfig("https://k.example.com", "    client-certificate: /etc/cert.pem\n"), "client-certificate and client-key name files"},
		"plain http":    {kubeconfig("http://k.example.com", "    token: "+secret+"\n"), "plain http is allowed only on loopback"},
		"skip TLS verify": {strings.Replace(kubeconfig("https://k.example.com", "    token: "+secret+"\n"), `cluster: {server:`, `cluster: {insecure-skip-tls-verify: true, server:`, 1),
			"insecure-skip-tls-verify is not allowed"},
		"proxy": {strings.Replace(kubeconfig("https://k.example.com", "    token: "+secret+"\n"), `cluster: {server:`, `cluster: {proxy-url: "http://proxy.example.com:3128", server:`, 1),
			"proxy-url is not allowed"},
		"no context": {strings.Replace(kubeconfig("https://k.example.com", "    token: x\n"), "current-context: c", "current-context: nope", 1), `current context "nope" is not defined`},
		"garbage":    {"{{{ " + secret, "not a valid kubeconfig"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ConfigFromKubeconfig([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error quotes a credential: %v", err)
			}
		})
	}
	cfg, err := ConfigFromKubeconfig([]byte(kubeconfig("http://127.0.0.1:6443", "    token: "+secret+"\n")))
	if err != nil || cfg.Host != "http://127.0.0.1:6443" {
		t.Fatalf("loopback http: %v, %v", cfg, err)
	}
	if cfg.BearerToken != "" {
		t.Fatal("client-go was expected to withhold credentials from a plain-http server")
	}
}

// TestKubeconfigPolicyLetsTheOperatorAllow: what is refused by default is accepted once the operator allows it.
func TestKubeconfigPolicyLetsTheOperatorAllow(t *testing.T) {
	data := []byte(`apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://k.example.com", insecure-skip-tls-verify: true, proxy-url: "http://proxy.example.com:3128"}}]
users: [{name: u, user: {token: t}}]
`)
	if _, err := ConfigFromKubeconfig(data); err == nil {
		t.Fatal("accepted by default")
	}
	SetKubeconfigPolicy(KubeconfigPolicy{AllowInsecureTLS: true, AllowProxy: true})
	defer SetKubeconfigPolicy(KubeconfigPolicy{})
	cfg, err := ConfigFromKubeconfig(data)
	if err != nil || !cfg.Insecure || cfg.Proxy == nil {
		t.Fatalf("with the operator's leave: %v (insecure %v)", err, cfg != nil && cfg.Insecure)
	}
}

// FuzzConfigFromKubeconfig: whatever a tenant puts in the Secret, parsing never panics, never accepts what runs a
// program or skips TLS checks, and never quotes the token in an error.
func FuzzConfigFromKubeconfig(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n" +
		"clusters: [{name: k, cluster: {server: \"https://k.example.com\"}}]\nusers: [{name: u, user: {token: fuzz-token-9}}]\n"))
	f.Add([]byte("apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n" +
		"clusters: [{name: k, cluster: {server: \"https://k\", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {exec: {command: sh}}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ConfigFromKubeconfig(data)
		if err != nil {
			if strings.Contains(err.Error(), "fuzz-token-9") {
				t.Fatalf("error quotes the token: %v", err)
			}
			return
		}
		if cfg.ExecProvider != nil || cfg.AuthProvider != nil || cfg.Insecure || cfg.Proxy != nil || cfg.BearerTokenFile != "" {
			t.Fatalf("accepted a kubeconfig that runs a program, reads a file or skips TLS: %+v", cfg)
		}
	})
}
