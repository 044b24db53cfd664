package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/audit"
	"github.com/ferrycd/ferry/internal/testenv"
	"github.com/ferrycd/ferry/internal/webhook"
)

var testEnv *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &testEnv) }

const testToken = "0123456789abcdef0123456789abcdef"

// parseOptions parses args as ferry-controller's command line.
func parseOptions(t *testing.T, args ...string) options {
	t.Helper()
	var o options
	fs := flag.NewFlagSet("ferry-controller", flag.ContinueOnError)
	bindFlags(fs, &o)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o
}

// noCredentialsInEnv empties the webhook's environment variables for the test.
func noCredentialsInEnv(t *testing.T) {
	t.Setenv(envWebhookToken, "")
	t.Setenv(envWebhookHMACSecret, "")
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecureByDefault(t *testing.T) {
	o := parseOptions(t)
	if !o.metricsSecure || o.webhookAddr == "0" {
		t.Fatalf("defaults: metrics secure %v, webhook %q", o.metricsSecure, o.webhookAddr)
	}
	m, err := metricsOptions(o)
	if err != nil {
		t.Fatal(err)
	}
	if !m.SecureServing || m.FilterProvider == nil || len(m.TLSOpts) == 0 {
		t.Fatalf("metrics are not served over HTTPS behind authentication and authorization by default: %+v", m)
	}
	plain, err := metricsOptions(parseOptions(t, "--metrics-secure=false"))
	if err != nil || plain.SecureServing || plain.FilterProvider != nil {
		t.Fatalf("--metrics-secure=false: %+v, %v", plain, err)
	}
	if _, err := metricsOptions(parseOptions(t, "--metrics-secure=false", "--metrics-cert-path=/x")); err == nil {
		t.Fatal("a certificate for plain HTTP metrics was accepted")
	}
	if _, err := metricsOptions(parseOptions(t, "--metrics-cert-path="+t.TempDir())); err == nil || !strings.Contains(err.Error(), "tls.crt") {
		t.Fatalf("a certificate folder without tls.crt: %v", err)
	}
}

func TestStartingWithoutAWebhookCredentialFails(t *testing.T) {
	noCredentialsInEnv(t)
	// run refuses before it reads a kubeconfig or starts anything.
	err := run(t.Context(), parseOptions(t))
	if err == nil {
		t.Fatal("ferry-controller started a webhook that accepts anyone")
	}
	for _, want := range []string{"--webhook-token-file", "$" + envWebhookToken, "--webhook-hmac-secret-file",
		"$" + envWebhookHMACSecret, "--webhook-bind-address=0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
	// Off, as before: no credential needed.
	if creds, err := loadWebhookCredentials(parseOptions(t, "--webhook-bind-address=0")); err != nil || creds.token != nil {
		t.Fatalf("--webhook-bind-address=0: %v", err)
	}
}

func TestWebhookCredentialSources(t *testing.T) {
	tokenFile := writeFile(t, "token", "  "+testToken+"\n")
	secretFile := writeFile(t, "hmac", testToken+"-hmac\n")

	t.Run("token file", func(t *testing.T) {
		noCredentialsInEnv(t)
		c, err := loadWebhookCredentials(parseOptions(t, "--webhook-token-file="+tokenFile))
		if err != nil || string(c.token) != testToken || c.hmacSecret != nil {
			t.Fatalf("%q %q %v", c.token, c.hmacSecret, err)
		}
	})
	t.Run("HMAC secret file alone", func(t *testing.T) {
		noCredentialsInEnv(t)
		c, err := loadWebhookCredentials(parseOptions(t, "--webhook-hmac-secret-file="+secretFile))
		if err != nil || string(c.hmacSecret) != testToken+"-hmac" || len(c.token) != 0 {
			t.Fatalf("%q %q %v", c.token, c.hmacSecret, err)
		}
	})
	t.Run("environment, removed once read", func(t *testing.T) {
		t.Setenv(envWebhookToken, testToken)
		t.Setenv(envWebhookHMACSecret, testToken+"-hmac")
		c, err := loadWebhookCredentials(parseOptions(t))
		if err != nil || string(c.token) != testToken || string(c.hmacSecret) != testToken+"-hmac" {
			t.Fatalf("%q %q %v", c.token, c.hmacSecret, err)
		}
		for _, env := range []string{envWebhookToken, envWebhookHMACSecret} {
			if _, ok := os.LookupEnv(env); ok {
				t.Errorf("$%s is still in the environment, for every child process to inherit", env)
			}
		}
	})
	for name, tc := range map[string]struct {
		args    []string
		env     string
		wantErr string
	}{
		"file and environment":  {[]string{"--webhook-token-file=" + tokenFile}, testToken, "both set"},
		"missing file":          {[]string{"--webhook-token-file=" + filepath.Join(t.TempDir(), "nope")}, "", "--webhook-token-file: open"},
		"empty file":            {[]string{"--webhook-hmac-secret-file=" + writeFile(t, "empty", "\n")}, "", "is empty"},
		"short token in a file": {[]string{"--webhook-token-file=" + writeFile(t, "short", "hunter2\n")}, "", "at least 16"},
		"short token in env":    {nil, "hunter2", "at least 16"},
	} {
		t.Run(name, func(t *testing.T) {
			noCredentialsInEnv(t)
			t.Setenv(envWebhookToken, tc.env)
			_, err := loadWebhookCredentials(parseOptions(t, tc.args...))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), testToken) {
				t.Fatalf("the error shows the credential: %v", err)
			}
		})
	}
}

// pushes records the repositories the webhook passed on.
type pushes struct {
	mu    sync.Mutex
	repos []string
}

func (p *pushes) pushed(repo string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.repos = append(p.repos, repo)
	return true
}

func (p *pushes) get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.repos)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func testScheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// replica is a controller manager as ferry-controller builds it, without the reconciler.
type replica struct {
	mgr      manager.Manager
	webhook  string
	pushes   *pushes
	cancel   context.CancelFunc
	stopped  chan error
	haltOnce sync.Once
	haltErr  error
}

// halt stops the manager and returns what Start returned.
func (r *replica) halt() error {
	r.haltOnce.Do(func() {
		r.cancel()
		r.haltErr = <-r.stopped
	})
	return r.haltErr
}

// startReplica starts a manager with ferry-controller's options for args and its webhook, against cfg.
func startReplica(t *testing.T, cfg *rest.Config, args ...string) *replica {
	t.Helper()
	hook := freeAddr(t)
	o := parseOptions(t, append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--webhook-bind-address=" + hook}, args...)...)
	creds, err := loadWebhookCredentials(o)
	if err != nil {
		t.Fatal(err)
	}
	metricsOpts, err := metricsOptions(o)
	if err != nil {
		t.Fatal(err)
	}
	opts := managerOptions(o, testScheme(t), metricsOpts)
	lease, renew, retry := 3*time.Second, 2*time.Second, 200*time.Millisecond
	opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = &lease, &renew, &retry
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{mgr: mgr, pushes: &pushes{}, stopped: make(chan error, 1)}
	if err := addWebhook(mgr, r.pushes.pushed, nil, o, creds); err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if o.webhookCertPath != "" {
		scheme = "https"
	}
	r.webhook = scheme + "://" + hook + webhook.Path
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.stopped <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		if err := r.halt(); err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return r
}

func elected(r *replica) bool {
	select {
	case <-r.mgr.Elected():
		return true
	default:
		return false
	}
}

// notify posts a notification for repo with the token and returns the response (body closed).
func notify(t *testing.T, client *http.Client, url, repo string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(fmt.Sprintf(`{"repository":%q}`, repo)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOnlyTheLeaderTakesNotifications(t *testing.T) {
	env := testenv.Need(t, testEnv)
	ns := env.Namespace(t)
	noCredentialsInEnv(t)
	tokenFile := writeFile(t, "token", testToken)
	args := []string{"--leader-elect=true", "--leader-election-namespace=" + ns, "--webhook-token-file=" + tokenFile}
	a := startReplica(t, env.Config, args...)
	b := startReplica(t, env.Config, args...)
	eventually(t, 30*time.Second, "an election", func() bool { return elected(a) || elected(b) })
	leader, standby := a, b
	if elected(b) {
		leader, standby = b, a
	}
	if elected(standby) {
		t.Fatal("both replicas lead")
	}
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	const repo = "registry.example.com/team/app"

	// The standby's webhook listens (it is ready) but refuses, so that the registry retries.
	var resp *http.Response
	eventually(t, 30*time.Second, "the standby's webhook listening", func() bool {
		var err error
		resp, err = notify(t, client, standby.webhook, repo)
		return err == nil
	})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !resp.Close {
		t.Fatalf("standby answered %s, Retry-After %q, close %v", resp.Status, resp.Header.Get("Retry-After"), resp.Close)
	}
	eventually(t, 30*time.Second, "the leader's webhook listening", func() bool {
		var err error
		resp, err = notify(t, client, leader.webhook, repo)
		return err == nil
	})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("leader answered %s", resp.Status)
	}
	if got := leader.pushes.get(); !slices.Equal(got, []string{repo}) {
		t.Fatalf("leader woke %v", got)
	}
	if got := standby.pushes.get(); len(got) != 0 {
		t.Fatalf("the standby woke %v: it would have dropped them", got)
	}

	// The leader stops and releases its lease; the standby is elected and takes the registry's retries.
	if err := leader.halt(); err != nil {
		t.Fatalf("leader stopping: %v", err)
	}
	refused := 0
	eventually(t, 30*time.Second, "the standby taking over", func() bool {
		resp, err := notify(t, client, standby.webhook, repo)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusServiceUnavailable {
			refused++
			return false
		}
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("new leader answered %s", resp.Status)
		}
		return true
	})
	if !elected(standby) {
		t.Fatal("202 from a replica that was not elected")
	}
	if got := standby.pushes.get(); !slices.Equal(got, []string{repo}) {
		t.Fatalf("new leader woke %v after %d refusals, want exactly the accepted notification", got, refused)
	}
}

func TestWebhookOverHTTPS(t *testing.T) {
	env := testenv.Need(t, testEnv)
	noCredentialsInEnv(t)
	dir := t.TempDir()
	cert, key, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{net.IPv4(127, 0, 0, 1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tls.crt": cert, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(envWebhookToken, testToken)
	r := startReplica(t, env.Config, "--leader-elect=false", "--webhook-cert-path="+dir)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var resp *http.Response
	eventually(t, 30*time.Second, "the webhook answering over HTTPS", func() bool {
		resp, err = notify(t, client, r.webhook, "registry.example.com/a/b")
		return err == nil && resp.StatusCode == http.StatusAccepted
	})
	if resp.ProtoMajor != 1 {
		t.Errorf("served over %s: HTTP/2 lets one connection carry unbounded requests", resp.Proto)
	}
	// Plain HTTP to the HTTPS port gets nothing accepted.
	plain := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	if resp, err := notify(t, plain, strings.Replace(r.webhook, "https://", "http://", 1), "registry.example.com/a/b"); err == nil && resp.StatusCode == http.StatusAccepted {
		t.Fatal("plain HTTP accepted on the HTTPS webhook")
	}
	if _, err := loadWebhookCredentials(parseOptions(t, "--webhook-cert-path="+t.TempDir(), "--webhook-token-file="+writeFile(t, "t", testToken))); err != nil {
		t.Fatal(err)
	}
}

// clusterRoleFromManifest reads the ClusterRole name from a file of config/default.
func clusterRoleFromManifest(t *testing.T, file, name string) *rbacv1.ClusterRole {
	t.Helper()
	for _, obj := range kustomizeObjects(t, filepath.Join("..", "..", "config", "default")) {
		if cr, ok := obj.(*rbacv1.ClusterRole); ok && cr.Name == name {
			return cr
		}
	}
	t.Fatalf("no ClusterRole %s in config/default (%s)", name, file)
	return nil
}

func TestMetricsNeedAuthenticationAndAuthorization(t *testing.T) {
	env := testenv.Need(t, testEnv)
	ns := env.Namespace(t)
	ctx := t.Context()
	admin := kubernetes.NewForConfigOrDie(env.Config)

	// The controller runs as a user with nothing but config/default's metrics-auth role: it must be enough to
	// authenticate and authorize scrapes.
	user := fmt.Sprintf("ferry-controller-%d", time.Now().UnixNano())
	controllerCfg := env.User(t, user)
	authRole := clusterRoleFromManifest(t, "metrics_auth_role.yaml", "ferry-metrics-auth-role")
	readerRole := clusterRoleFromManifest(t, "metrics_reader_role.yaml", "ferry-metrics-reader")
	suffix := "-" + ns
	bind := func(role *rbacv1.ClusterRole, subject rbacv1.Subject) {
		t.Helper()
		role = role.DeepCopy()
		role.Name += suffix
		role.ResourceVersion = ""
		if _, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{subject},
		}
		if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
			_ = admin.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{})
		})
	}
	bind(authRole, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user})

	// Two scrapers: one granted config/default's reader role, one not.
	token := func(sa string) string {
		t.Helper()
		if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	prometheus, stranger := token("prometheus"), token("stranger")
	bind(readerRole, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "prometheus", Namespace: ns})

	noCredentialsInEnv(t)
	addr := freeAddr(t)
	startReplica(t, controllerCfg, "--leader-elect=false", "--webhook-bind-address=0", "--metrics-bind-address="+addr)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	scrape := func(token string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	var code int
	var body string
	eventually(t, 30*time.Second, "the metrics endpoint answering", func() bool {
		var err error
		code, body, err = scrape("")
		return err == nil
	})
	if code != http.StatusUnauthorized {
		t.Errorf("anonymous scrape: %d %s", code, body)
	}
	// controller-runtime's filter answers a token the API server rejects with 500 ("Authentication failed"),
	// not 401; either way nothing is served.
	if code, body, _ = scrape("not-a-token"); code != http.StatusUnauthorized && code != http.StatusInternalServerError {
		t.Errorf("bad token: %d %s", code, body)
	}
	if code, body, _ = scrape(stranger); code != http.StatusForbidden {
		t.Errorf("service account without the reader role: %d %s", code, body)
	}
	if code, body, _ = scrape(prometheus); code != http.StatusOK || !strings.Contains(body, "# HELP") {
		t.Errorf("service account with the reader role: %d %.200s", code, body)
	}

	// Plain HTTP metrics, for demos and tests, answer anyone.
	plainAddr := freeAddr(t)
	startReplica(t, env.Config, "--leader-elect=false", "--webhook-bind-address=0", "--metrics-secure=false", "--metrics-bind-address="+plainAddr)
	eventually(t, 30*time.Second, "plain metrics answering", func() bool {
		resp, err := http.Get("http://" + plainAddr + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// An unusable --watch-namespaces stops the controller before anything starts, naming the flag and the name.
func TestBadWatchNamespacesFailsAtStart(t *testing.T) {
	o := parseOptions(t, "--webhook-bind-address=0", "--metrics-bind-address=0", "--watch-namespaces=team-a,Team_B")
	err := run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "--watch-namespaces") || !strings.Contains(err.Error(), "Team_B") {
		t.Fatalf("run = %v, want an error naming --watch-namespaces and Team_B", err)
	}
}

// The audit webhook's flags go together, and the certificate must be there before anything starts.
func TestAuditWebhookFlags(t *testing.T) {
	certs := t.TempDir()
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.WriteFile(filepath.Join(certs, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string // in the error; "" for none
	}{
		{nil, ""},
		{[]string{"--audit-webhook-port=9443", "--audit-webhook-cert-dir=" + certs}, ""},
		{[]string{"--audit-webhook-port=9443"}, "--audit-webhook-cert-dir"},
		{[]string{"--audit-webhook-cert-dir=" + certs}, "needs --audit-webhook-port"},
		{[]string{"--audit-webhook-port=9443", "--audit-webhook-cert-dir=" + t.TempDir()}, "tls.crt"},
		{[]string{"--audit-webhook-port=70000", "--audit-webhook-cert-dir=" + certs}, "not a port"},
	} {
		err := parseOptions(t, tc.args...).audit.check()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestShippedAuditWebhook checks config/default with config/webhook's component: the controller serves the
// webhook on the port the Service targets, with the certificate of a mounted Secret, at the path the
// configuration calls, and the configuration leaves out exactly the controller's own service account.
func TestShippedAuditWebhook(t *testing.T) {
	// config/default with its commented components line in effect; kustomize takes only relative roots.
	dir := t.TempDir()
	config, err := filepath.Abs(filepath.Join("..", "..", "config"))
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, config)
	if err != nil {
		t.Fatal(err)
	}
	kustomization := fmt.Sprintf("resources: [%s/default]\ncomponents: [%s/webhook]\n", rel, rel)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o600); err != nil {
		t.Fatal(err)
	}
	deploy, svc, hook := auditObjects(t, dir)
	pod := deploy.Spec.Template.Spec
	c := pod.Containers[0]
	o := parseOptions(t, c.Args...)
	if err := o.audit.check(); err == nil || !strings.Contains(err.Error(), "tls.crt") {
		t.Fatalf("audit flags %v: %v, want only the certificate missing here", c.Args, err)
	}
	var port string
	for _, p := range c.Ports {
		if p.ContainerPort == int32(o.audit.port) {
			port = p.Name
		}
	}
	if port == "" || svc.Spec.Ports[0].TargetPort.String() != port {
		t.Errorf("the controller serves the audit webhook on %d (port %q); the Service targets %s", o.audit.port, port, svc.Spec.Ports[0].TargetPort.String())
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			mounted = mounted || (m.MountPath == o.audit.certDir && v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == "ferry-audit-webhook-tls")
		}
	}
	if !mounted {
		t.Errorf("--audit-webhook-cert-dir=%s is not the Secret ferry-audit-webhook-tls", o.audit.certDir)
	}
	wh := hook.Webhooks[0]
	if s := wh.ClientConfig.Service; s == nil || s.Name != svc.Name || s.Namespace != svc.Namespace || s.Path == nil || *s.Path != audit.Path ||
		s.Port == nil || *s.Port != svc.Spec.Ports[0].Port {
		t.Errorf("the configuration calls %+v; the Service is %s/%s:%d, the path %s", s, svc.Namespace, svc.Name, svc.Spec.Ports[0].Port, audit.Path)
	}
	self := "request.userInfo.username != 'system:serviceaccount:" + deploy.Namespace + ":" + pod.ServiceAccountName + "'"
	if wh.FailurePolicy == nil || *wh.FailurePolicy != admissionregistrationv1.Fail || !slices.ContainsFunc(wh.MatchConditions,
		func(m admissionregistrationv1.MatchCondition) bool { return m.Expression == self }) {
		t.Errorf("want failurePolicy Fail and the match condition %s: %+v", self, wh)
	}
}

// auditObjects builds the kustomization in dir and returns the controller's Deployment, the audit webhook's
// Service and its configuration.
func auditObjects(t *testing.T, dir string) (*appsv1.Deployment, *corev1.Service, *admissionregistrationv1.MutatingWebhookConfiguration) {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var deploy *appsv1.Deployment
	var svc *corev1.Service
	var hook *admissionregistrationv1.MutatingWebhookConfiguration
	for _, r := range resources.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var into any
		switch {
		case r.GetKind() == "Deployment" && r.GetName() == "ferry-controller":
			deploy = &appsv1.Deployment{}
			into = deploy
		case r.GetKind() == "Service" && r.GetName() == "ferry-controller-audit":
			svc = &corev1.Service{}
			into = svc
		case r.GetKind() == "MutatingWebhookConfiguration":
			hook = &admissionregistrationv1.MutatingWebhookConfiguration{}
			into = hook
		default:
			continue
		}
		if err := yaml.UnmarshalStrict(y, into); err != nil {
			t.Fatalf("%s %s: %v", r.GetKind(), r.GetName(), err)
		}
	}
	if deploy == nil || svc == nil || hook == nil || len(hook.Webhooks) != 1 {
		t.Fatalf("want the Deployment, the Service ferry-controller-audit and one audit webhook in %s", dir)
	}
	return deploy, svc, hook
}

// TestAuditWebhookServedByTheController: ferry-controller's own wiring, from its flags, serves the webhook the API
// server calls for config/webhook's configuration, with the certificate from --audit-webhook-cert-dir.
func TestAuditWebhookServedByTheController(t *testing.T) {
	env := testenv.Need(t, testEnv)
	ns := env.Namespace(t)
	w := env.PrepareMutatingWebhook(t, "config/webhook/manifests.yaml", ns)
	o := parseOptions(t, "--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--webhook-bind-address=0",
		fmt.Sprintf("--audit-webhook-port=%d", w.Port), "--audit-webhook-cert-dir="+w.CertDir)
	if err := o.audit.check(); err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(env.Config, managerOptions(o, testScheme(t), metricsserver.Options{BindAddress: "0"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := addAuditWebhook(mgr, o.audit); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	companion := audit.Companion(ferryv1.RollbackAnnotation)
	w.Install(t, func() bool {
		ann, err := env.DryRunAnnotations(ns, ferryv1.RollbackAnnotation, "prod")
		return err == nil && ann[companion] != ""
	})
	p, err := testenv.SamplePromotion(ns)
	if err != nil {
		t.Fatal(err)
	}
	p.Annotations = map[string]string{ferryv1.RollbackAnnotation: "prod", companion: "release-manager"}
	if err := env.PromotionEditor(t, ns, "alice").Create(ctx, p, client.FieldOwner("ferry-rollback:release-manager")); err != nil {
		t.Fatal(err)
	}
	if who := p.Annotations[companion]; who != "alice" {
		t.Errorf("%s = %q, want alice", companion, who)
	}
}
