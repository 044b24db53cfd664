// Command ferry-controller runs Ferry's controller manager: the Promotion reconciler with a Prometheus metrics
// endpoint (HTTPS, authenticated and authorized by the API server), health and readiness probes, the registry
// webhook (which needs a token or an HMAC secret), and leader election so that only one replica acts at a time.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/controllers"
	"github.com/ferrycd/ferry/internal/audit"
	"github.com/ferrycd/ferry/internal/gitops"
	"github.com/ferrycd/ferry/internal/metrics"
	"github.com/ferrycd/ferry/internal/scm"
	"github.com/ferrycd/ferry/internal/sync"
	"github.com/ferrycd/ferry/internal/version"
	"github.com/ferrycd/ferry/internal/webhook"
)

func main() {
	var o options
	bindFlags(flag.CommandLine, &o)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	showVersion := flag.Bool("version", false, "Print the version, commit and image (from $"+version.ImageEnv+"), then exit.")
	flag.Parse()
	if *showVersion {
		fmt.Print(versionText(version.Get()))
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		log.Error(err, "controller manager stopped")
		os.Exit(1)
	}
}

// options are the controller manager's flags.
type options struct {
	metricsAddr, probeAddr, pprofAddr, leaderNamespace, cacheDir string
	metricsSecure                                                bool
	metricsCertPath                                              string
	webhookAddr, webhookTokenFile, webhookHMACSecretFile         string
	webhookCertPath                                              string
	forgeWebhookSecretFile                                       string
	approvalPollInterval                                         time.Duration
	leaderElect                                                  bool
	watchNamespaces                                              string
	concurrency                                                  int
	tenancy                                                      tenancyOptions
	audit                                                        auditOptions
}

// tenancyOptions are what the operator decides for every tenant's Promotions.
type tenancyOptions struct {
	defaultServiceAccount                   string
	noCrossNamespaceSync                    bool
	allowInsecureKubeconfig, allowKubeProxy bool
	reconcileTimeout                        time.Duration
}

func bindTenancyFlags(fs *flag.FlagSet, t *tenancyOptions) {
	fs.StringVar(&t.defaultServiceAccount, "default-service-account", "", "ServiceAccount, in each Promotion's own namespace, that Ferry impersonates for Promotions without spec.serviceAccountName; empty: Ferry's own identity. Set it to lock a shared controller down.")
	fs.BoolVar(&t.noCrossNamespaceSync, "no-cross-namespace-sync", false, "Refuse stages that sync into a namespace other than their Promotion's own.")
	fs.BoolVar(&t.allowInsecureKubeconfig, "allow-insecure-kubeconfig", false, "Accept insecure-skip-tls-verify in kubeconfigs from Promotions' Secrets.")
	fs.BoolVar(&t.allowKubeProxy, "allow-kubeconfig-proxy", false, "Accept proxy-url in kubeconfigs from Promotions' Secrets.")
	fs.DurationVar(&t.reconcileTimeout, "reconcile-timeout", 3*time.Minute, "Longest one reconcile of one Promotion may take; a peer that never answers costs this, then the reconcile is retried.")
}

// Environment variables that may hold the webhook's credentials instead of files. Each is removed from the
// environment once read, so that no child process inherits it.
const (
	envWebhookToken      = "FERRY_WEBHOOK_TOKEN"
	envWebhookHMACSecret = "FERRY_WEBHOOK_HMAC_SECRET"
	envForgeSecret       = "FERRY_FORGE_WEBHOOK_SECRET"
)

func bindFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address the Prometheus metrics endpoint binds to; \"0\" disables it.")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, only to callers the API server authenticates (TokenReview) and authorizes to get the non-resource URL /metrics (SubjectAccessReview). --metrics-secure=false serves plain HTTP to anyone, for local demos and tests.")
	fs.StringVar(&o.metricsCertPath, "metrics-cert-path", "", "Folder holding tls.crt and tls.key for the metrics endpoint, reloaded when they change (a mounted cert-manager Secret); empty: a self-signed certificate made at start.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "0", "Address Go's /debug/pprof profiles bind to, for memory and CPU investigations; \"0\" (the default) disables them.")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "Elect a leader so that only one controller replica acts at a time.")
	fs.StringVar(&o.leaderNamespace, "leader-election-namespace", "", "Namespace of the leader election lease (defaults to the pod's namespace).")
	fs.StringVar(&o.webhookAddr, "webhook-bind-address", ":9090", "Address the registry push notification endpoint (POST "+webhook.Path+") and the forge endpoints (POST "+webhook.ForgePathPrefix+"<forge>) bind to; \"0\" disables them. It needs --webhook-token-file or --webhook-hmac-secret-file (or $"+envWebhookToken+" or $"+envWebhookHMACSecret+"), or --forge-webhook-secret-file (or $"+envForgeSecret+") for forge events only.")
	fs.StringVar(&o.webhookTokenFile, "webhook-token-file", "", "File holding the token registry notifications must present, as \"Authorization: Bearer <token>\" or \"?token=<token>\" (at least 16 bytes; surrounding blanks are ignored). $"+envWebhookToken+" may hold it instead.")
	fs.StringVar(&o.webhookHMACSecretFile, "webhook-hmac-secret-file", "", "File holding the secret of registries that sign notifications: \""+webhook.SignatureHeader+": sha256=<hex HMAC-SHA256 of the body>\" (at least 16 bytes). $"+envWebhookHMACSecret+" may hold it instead. With a token too, either is accepted.")
	fs.StringVar(&o.forgeWebhookSecretFile, "forge-webhook-secret-file", "", "File holding the secret of forge webhooks (POST "+webhook.ForgePathPrefix+"gitea, github or gitlab on the webhook's address): Gitea and GitHub sign each event with it, GitLab sends it as its secret token (at least 16 bytes). $"+envForgeSecret+" may hold it instead. Without it the forge endpoints are not served.")
	fs.DurationVar(&o.approvalPollInterval, "approval-poll-interval", controllers.DefaultApprovalPollInterval, "How often an open approval pull request (and an analysis held for a person) is looked at when no forge webhook event arrives.")
	fs.StringVar(&o.webhookCertPath, "webhook-cert-path", "", "Folder holding tls.crt and tls.key: serve the registry webhook over HTTPS, reloading them when they change; empty: plain HTTP.")
	fs.StringVar(&o.watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces whose Promotions this controller serves (and whose Secrets and ConfigMaps it watches by name); empty: every namespace.")
	fs.IntVar(&o.concurrency, "concurrency", 4, "How many Promotions are reconciled at once.")
	fs.StringVar(&o.cacheDir, "cache-dir", filepath.Join(os.TempDir(), "ferry"), "Folder for Git workspaces and checkouts; it must belong to this process alone.")
	bindTenancyFlags(fs, &o.tenancy)
	bindAuditFlags(fs, &o.audit)
}

func run(ctx context.Context, o options) error {
	// Flags that cannot work fail before anything starts.
	creds, err := loadWebhookCredentials(o)
	if err != nil {
		return err
	}
	metricsOpts, err := metricsOptions(o)
	if err != nil {
		return err
	}
	if _, err := controllers.ParseNamespaces(o.watchNamespaces); err != nil {
		return fmt.Errorf("--watch-namespaces: %w", err)
	}
	if err := o.audit.check(); err != nil {
		return err
	}
	if o.approvalPollInterval < time.Second {
		return fmt.Errorf("--approval-poll-interval=%s: want at least 1s", o.approvalPollInterval)
	}
	log := ctrl.Log.WithName("setup")
	log.Info("starting ferry-controller", "version", version.Get().String(), "image", version.Image())
	log.Info("memory", "gcPercent", applyGCDefaults(), "softLimitBytes", applyContainerMemoryLimit(cgroupLimitFiles))

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := ferryv1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, managerOptions(o, scheme, metricsOpts))
	if err != nil {
		return err
	}
	engines, err := newEngines(o.cacheDir)
	if err != nil {
		return err
	}
	recorder, err := metrics.New(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	r := &controllers.PromotionReconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Recorder:    mgr.GetEventRecorder("ferry-controller"),
		Engines:     engines,
		LocalConfig: cfg,
		Metrics:     recorder,
		Concurrency: o.concurrency,

		DefaultServiceAccount: o.tenancy.defaultServiceAccount,
		NoCrossNamespaceSync:  o.tenancy.noCrossNamespaceSync,
		ReconcileTimeout:      o.tenancy.reconcileTimeout,
		AuditWebhook:          o.audit.port != 0,
		ApprovalPollInterval:  o.approvalPollInterval,
	}
	sync.SetKubeconfigPolicy(sync.KubeconfigPolicy{AllowInsecureTLS: o.tenancy.allowInsecureKubeconfig, AllowProxy: o.tenancy.allowKubeProxy})
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	if err := addWebhook(mgr, r.Pushed, r.ForgeChanged, o, creds); err != nil {
		return err
	}
	if err := addAuditWebhook(mgr, o.audit); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// managerOptions are the controller manager's options for the flags.
func managerOptions(o options, scheme *runtime.Scheme, metricsOpts metricsserver.Options) ctrl.Options {
	// ParseNamespaces cannot fail here: run checked the flag first.
	namespaces, _ := controllers.ParseNamespaces(o.watchNamespaces)
	return ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(namespaces),
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "ferry-controller.ferry.dev",
		LeaderElectionNamespace: o.leaderNamespace,
		// A new leader must not act while the old one may still be acting (Argo Rollouts #2117).
		LeaderElectionReleaseOnCancel: true,
	}
}

// metricsOptions serve metrics over HTTPS to callers the API server authorizes (the scraper's service account
// needs "get" on the non-resource URL /metrics: config/default/metrics_reader_role.yaml), or over plain HTTP to
// anyone with --metrics-secure=false.
func metricsOptions(o options) (metricsserver.Options, error) {
	m := metricsserver.Options{BindAddress: o.metricsAddr}
	if o.metricsAddr == "0" {
		return m, nil
	}
	if !o.metricsSecure {
		if o.metricsCertPath != "" {
			return m, errors.New("--metrics-cert-path needs --metrics-secure=true")
		}
		return m, nil
	}
	m.SecureServing = true
	m.FilterProvider = filters.WithAuthenticationAndAuthorization
	m.TLSOpts = []func(*tls.Config){http1Only}
	if o.metricsCertPath != "" {
		if err := certFilesExist("--metrics-cert-path", o.metricsCertPath); err != nil {
			return m, err
		}
		m.CertDir, m.CertName, m.KeyName = o.metricsCertPath, certFile, keyFile
	}
	return m, nil
}

// http1Only keeps HTTP/2 off a TLS server: its stream resets let one connection cost the server much more than
// it costs the client (CVE-2023-44487, CVE-2023-39325), and a scraper needs nothing but HTTP/1.1.
func http1Only(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }

// The file names of a certificate folder, as a kubernetes.io/tls Secret mounts them.
const (
	certFile = "tls.crt"
	keyFile  = "tls.key"
)

func certFilesExist(flagName, dir string) error {
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("%s: %w", flagName, err)
		}
	}
	return nil
}

// newEngines builds the engines the pipeline drives, with their working folders under cacheDir.
func newEngines(cacheDir string) (controllers.Engines, error) {
	workDir := filepath.Join(cacheDir, "checkouts")
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return controllers.Engines{}, err
	}
	git, err := gitops.New(gitops.Options{CacheDir: filepath.Join(cacheDir, "git")})
	if err != nil {
		return controllers.Engines{}, err
	}
	return controllers.Engines{Git: git, NewSCM: scm.New, Sync: &controllers.ModeSyncer{
		Ferry: controllers.NewGitopsSyncer(), ArgoCD: controllers.NewArgoCDSyncer(), Flux: controllers.NewFluxSyncer()}, WorkDir: workDir}, nil
}

// webhookCredentials are the shared secrets registry notifications must prove. They are never logged.
type webhookCredentials struct {
	token, hmacSecret, forgeSecret []byte
}

// loadWebhookCredentials reads the webhook's token and HMAC secret from their files or environment variables,
// and refuses a webhook that would accept notifications from anyone.
func loadWebhookCredentials(o options) (webhookCredentials, error) {
	token, tokenErr := readCredential("--webhook-token-file", o.webhookTokenFile, envWebhookToken)
	secret, secretErr := readCredential("--webhook-hmac-secret-file", o.webhookHMACSecretFile, envWebhookHMACSecret)
	forgeSecret, forgeErr := readCredential("--forge-webhook-secret-file", o.forgeWebhookSecretFile, envForgeSecret)
	if o.webhookAddr == "0" {
		return webhookCredentials{}, nil
	}
	if err := errors.Join(tokenErr, secretErr, forgeErr); err != nil {
		return webhookCredentials{}, err
	}
	if len(forgeSecret) > 0 {
		if err := webhook.ValidateForgeSecret(forgeSecret); err != nil {
			return webhookCredentials{}, fmt.Errorf("forge webhook: %w", err)
		}
		if len(token) == 0 && len(secret) == 0 {
			return webhookCredentials{forgeSecret: forgeSecret}, nil // forge events only
		}
	}
	if len(token) == 0 && len(secret) == 0 {
		return webhookCredentials{}, fmt.Errorf("the registry webhook (--webhook-bind-address=%s) accepts notifications only from "+
			"callers that prove a shared secret: give it a bearer token (--webhook-token-file, or $%s) or an HMAC secret "+
			"for registries that sign (--webhook-hmac-secret-file, or $%s), or serve forge events only "+
			"(--forge-webhook-secret-file, or $%s); --webhook-bind-address=0 turns it off",
			o.webhookAddr, envWebhookToken, envWebhookHMACSecret, envForgeSecret)
	}
	if err := webhook.ValidateCredentials(token, secret); err != nil {
		return webhookCredentials{}, fmt.Errorf("registry webhook: %w", err)
	}
	return webhookCredentials{token: token, hmacSecret: secret, forgeSecret: forgeSecret}, nil
}

// readCredential reads a credential from file, or else from the environment variable env, which it removes
// from the environment either way. Surrounding blanks (a file's final newline) are dropped.
func readCredential(flagName, file, env string) ([]byte, error) {
	fromEnv, inEnv := os.LookupEnv(env)
	_ = os.Unsetenv(env)
	switch {
	case file != "" && inEnv && strings.TrimSpace(fromEnv) != "":
		return nil, fmt.Errorf("%s and $%s are both set: give one", flagName, env)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flagName, err)
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			return nil, fmt.Errorf("%s: %s is empty", flagName, file)
		}
		return b, nil
	case strings.TrimSpace(fromEnv) != "":
		return []byte(strings.TrimSpace(fromEnv)), nil
	default:
		return nil, nil
	}
}

// addWebhook serves registry push notifications, which make the Promotions following a repository reconcile at
// once; polling stays the fallback. Every replica serves; one that does not lead answers 503 until it is
// elected, so that the registry retries and reaches the leader.
func addWebhook(mgr manager.Manager, pushed func(repository string) bool, forgeChanged func(webhook.ForgeChange) bool,
	o options, creds webhookCredentials) error {
	if o.webhookAddr == "0" {
		return nil
	}
	var tlsConfig *tls.Config
	if o.webhookCertPath != "" {
		if err := certFilesExist("--webhook-cert-path", o.webhookCertPath); err != nil {
			return err
		}
		certs, err := certwatcher.New(filepath.Join(o.webhookCertPath, certFile), filepath.Join(o.webhookCertPath, keyFile))
		if err != nil {
			return fmt.Errorf("--webhook-cert-path: %w", err)
		}
		if err := mgr.Add(certs); err != nil {
			return err
		}
		tlsConfig = &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12}
	}
	srv, err := webhook.NewServer(o.webhookAddr, webhook.Config{
		Token:        creds.token,
		HMACSecret:   creds.hmacSecret,
		Pushed:       pushed,
		ForgeSecret:  creds.forgeSecret,
		ForgeChanged: forgeChanged,
		Leader:       mgr.Elected(),
		Log:          ctrl.Log.WithName("webhook"),
	}, tlsConfig)
	if err != nil {
		return fmt.Errorf("registry webhook: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", srv.Ready); err != nil {
		return err
	}
	return mgr.Add(srv)
}

// auditOptions serve the audit webhook, which records who asks for a rollback, a hold's release, an approval or
// an abort (see package audit and config/webhook).
type auditOptions struct {
	port    int
	certDir string
}

func bindAuditFlags(fs *flag.FlagSet, a *auditOptions) {
	fs.IntVar(&a.port, "audit-webhook-port", 0, "Port of the admission webhook that records, on Promotions, the authenticated user who set ferry.dev/rollback, clear-hold, approve or abort (install config/webhook with it); Ferry then names that user as who asked. 0 (the default) turns it off: Ferry names the annotation's field manager, which the client chooses, marked unauthenticated.")
	fs.StringVar(&a.certDir, "audit-webhook-cert-dir", "", "Folder holding tls.crt and tls.key of the audit webhook (a mounted kubernetes.io/tls Secret), reloaded when renewed; needed with --audit-webhook-port.")
}

// check refuses audit flags that cannot work, before anything starts.
func (a auditOptions) check() error {
	switch {
	case a.port < 0 || a.port > 65535:
		return fmt.Errorf("--audit-webhook-port=%d is not a port", a.port)
	case a.port == 0 && a.certDir != "":
		return errors.New("--audit-webhook-cert-dir needs --audit-webhook-port")
	case a.port == 0:
		return nil
	case a.certDir == "":
		return errors.New("--audit-webhook-port needs --audit-webhook-cert-dir: the API server calls admission webhooks over HTTPS only")
	}
	return certFilesExist("--audit-webhook-cert-dir", a.certDir)
}

// addAuditWebhook serves the audit webhook over HTTPS (HTTP/1.1) on every replica, leader or not: the API server
// calls whichever the Service picks, and the answer needs nothing but the request.
func addAuditWebhook(mgr manager.Manager, a auditOptions) error {
	if a.port == 0 {
		return nil
	}
	srv := ctrlwebhook.NewServer(ctrlwebhook.Options{Port: a.port, CertDir: a.certDir,
		CertName: certFile, KeyName: keyFile, TLSOpts: []func(*tls.Config){http1Only}})
	audit.Register(srv)
	if err := mgr.Add(srv); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("audit-webhook", srv.StartedChecker())
}
