package testenv

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// MutatingWebhook is a MutatingWebhookConfiguration shipped in the repository, made ready for the test API server:
// it calls a webhook server on 127.0.0.1 at Port over TLS, with a serving certificate (in CertDir, tls.crt and
// tls.key) from a CA that envtest made and the configuration trusts. It applies only to one namespace, so that
// the tests of other namespaces never call it.
type MutatingWebhook struct {
	Port    int
	CertDir string
	env     *Env
	opts    envtest.WebhookInstallOptions
}

// PrepareMutatingWebhook reads the MutatingWebhookConfigurations in file (relative to the repository root, for
// example config/webhook/manifests.yaml) and gets their certificate and address ready. Serve the webhook
// (Server), then Install the configuration.
func (e *Env) PrepareMutatingWebhook(t testing.TB, file, namespace string) *MutatingWebhook {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	w := &MutatingWebhook{env: e, opts: envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(root, file)}, LocalServingHost: "127.0.0.1"}}
	if err := w.opts.PrepWithoutInstalling(); err != nil {
		t.Fatalf("preparing the webhooks of %s: %v", file, err)
	}
	t.Cleanup(func() { _ = w.opts.Cleanup() })
	if len(w.opts.MutatingWebhooks) == 0 {
		t.Fatalf("no MutatingWebhookConfiguration in %s", file)
	}
	for _, cfg := range w.opts.MutatingWebhooks {
		if err := scope(cfg, namespace); err != nil {
			t.Fatal(err)
		}
	}
	w.Port, w.CertDir = w.opts.LocalServingPort, w.opts.LocalServingCertDir
	return w
}

// scope renames cfg after the namespace it is limited to, and cleans the URLs envtest wrote.
func scope(cfg *admissionv1.MutatingWebhookConfiguration, namespace string) error {
	cfg.Name += "-" + namespace
	for i := range cfg.Webhooks {
		wh := &cfg.Webhooks[i]
		wh.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": namespace}}
		if wh.ClientConfig.URL == nil {
			return fmt.Errorf("webhook %s has no service path", wh.Name)
		}
		// envtest joins the address and the service's path with a slash of its own, and the path starts with one.
		u, err := url.Parse(*wh.ClientConfig.URL)
		if err != nil {
			return err
		}
		u.Path = path.Clean(u.Path)
		clean := u.String()
		wh.ClientConfig.URL = &clean
	}
	return nil
}

// Server returns a webhook server for the prepared address and certificate; register handlers and start it.
func (w *MutatingWebhook) Server() webhook.Server {
	return webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: w.Port, CertDir: w.CertDir})
}

// Install creates the configurations in the API server, removes them when the test ends, and waits until ready
// reports true: the API server starts calling a new configuration a moment after it is created.
func (w *MutatingWebhook) Install(t testing.TB, ready func() bool) {
	t.Helper()
	t.Cleanup(func() {
		for _, cfg := range w.opts.MutatingWebhooks {
			_ = w.env.Client.Delete(context.Background(), cfg.DeepCopy())
		}
	})
	w.opts.MaxTime, w.opts.PollInterval = 30*time.Second, 100*time.Millisecond
	if err := w.opts.Install(w.env.Config); err != nil {
		t.Fatalf("installing webhooks: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); !ready(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the API server did not call the webhook within 30s")
		}
	}
}

// DryRunAnnotations returns the annotations the API server would store, after admission, for the sample
// Promotion created in namespace with one annotation key=value. Nothing is created.
func (e *Env) DryRunAnnotations(namespace, key, value string) (map[string]string, error) {
	p, err := SamplePromotion(namespace)
	if err != nil {
		return nil, err
	}
	p.Name = "dry-run"
	p.Annotations = map[string]string{key: value}
	if err := e.Client.Create(context.Background(), p, client.DryRunAll); err != nil {
		return nil, err
	}
	return p.Annotations, nil
}

// ServeMutatingWebhook prepares the configurations in file for namespace (see PrepareMutatingWebhook), serves a
// webhook server with the handlers register adds, and installs the configurations once ready reports their
// effect. It returns a function that stops the server and leaves the configurations in place, to see what an
// outage does; both go when the test ends.
func (e *Env) ServeMutatingWebhook(t testing.TB, file, namespace string, register func(webhook.Server), ready func() bool) (stop func()) {
	t.Helper()
	w := e.PrepareMutatingWebhook(t, file, namespace)
	srv := w.Server()
	register(srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("webhook server: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	w.Install(t, ready)
	return stop
}

// PromotionEditor returns a client acting as the user name, who may read, create and change Promotions in
// namespace and nothing else: a person who asks Ferry for things with annotations.
func (e *Env) PromotionEditor(t testing.TB, namespace, name string) client.Client {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{GenerateName: "promotion-editor-", Namespace: namespace},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{ferryv1.GroupVersion.Group}, Resources: []string{"promotions"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch"}}}}
	if err := e.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: "promotion-editor-", Namespace: namespace},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}}}
	if err := e.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(e.User(t, name), client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
