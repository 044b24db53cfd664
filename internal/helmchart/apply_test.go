package helmchart

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/ferrycd/ferry/internal/testenv"
)

const fieldOwner = client.FieldOwner("ferry-chart-test")

// TestRenderedChartAppliesToARealAPIServer upgrades the chart's CRDs for real as README's upgrade note says
// (`kubectl apply --server-side --force-conflicts -f crds/`, over older CRDs that `helm install` created), then
// applies everything the chart renders with a server-side dry run (DryRun=All) on a real kube-apiserver, which
// checks each object against its schema, RBAC's and admission's rules, and the webhook's CEL match conditions.
// The Prometheus Operator's ServiceMonitor and PrometheusRule kinds get minimal CRDs (any spec), so for those only
// the envelope is checked here; their content is config/prometheus's (TestMonitoringIsConfigs), whose alerts
// internal/metrics tests with promtool.
func TestRenderedChartAppliesToARealAPIServer(t *testing.T) {
	c, cfg := startAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	installOlderCRDs(ctx, t, c)
	applyChartCRDs(ctx, t, c, cfg)
	assertCRDsUpgraded(ctx, t, c)
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{CRDs: prometheusOperatorCRDs()}); err != nil {
		t.Fatalf("installing minimal Prometheus Operator CRDs: %v", err)
	}
	// The release namespace enforces the restricted Pod Security Standard, as docs/install.md recommends.
	restricted := map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace, Labels: restricted}}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"shop-dev", "shop-prod"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}

	// A real CA for auditWebhook.certificate.caBundle: the one the chart makes for itself.
	caBundle, _, _ := unstructuredString(webhookOf(t, render(t, withDigest()...)), "clientConfig", "caBundle")
	for name, sets := range map[string][]string{
		"defaults": withDigest(),
		"everything on": withDigest("monitoring.serviceMonitor.enabled=true", "monitoring.prometheusRule.enabled=true",
			"monitoring.dashboard.enabled=true", "monitoring.metricsReaders[0].name=prometheus-k8s",
			"monitoring.metricsReaders[0].namespace=monitoring", "syncNamespaces={shop-dev,shop-prod}",
			"watchNamespaces={shop}", "registryWebhook.hmacSecret=true", "auditWebhook.certificate.source=secret",
			"auditWebhook.certificate.existingSecret=audit-tls", "auditWebhook.certificate.caBundle="+caBundle),
		"everything off": withDigest("auditWebhook.enabled=false", "registryWebhook.enabled=false", "leaderElection.enabled=false", "replicas=1"),
	} {
		t.Run(name, func(t *testing.T) {
			o := render(t, sets...)
			for _, u := range o {
				if err := dryRunApply(ctx, c, u); err != nil {
					t.Errorf("%s %s/%s is refused: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
				}
			}
			// Pod Security admission judges pods, not Deployments: create the controller's pod (dry run).
			if err := c.Create(ctx, controllerPod(t, o), client.DryRunAll); err != nil {
				t.Errorf("the controller's pod is refused in a restricted namespace: %v", err)
			}
		})
	}

	t.Run("the sample Promotion fits the chart's CRD", func(t *testing.T) {
		sample := readYAMLDocs(t, "config", "samples", "ferry_v1alpha1_promotion.yaml").must(t, "Promotion", "shop")
		sample.SetNamespace(namespace)
		if err := dryRunApply(ctx, c, sample); err != nil {
			t.Errorf("config/samples' Promotion is refused: %v", err)
		}
	})

	// An upgrade keeps the audit webhook's certificate: once the Secret exists, rendering against the cluster (as
	// `helm upgrade` does, lookup reading the Secret back) gives the same certificate and CA bundle.
	t.Run("an upgrade keeps the audit certificate", func(t *testing.T) {
		installed := render(t, withDigest()...)
		secret := installed.must(t, "Secret", "ferry-audit-webhook-tls")
		if err := c.Create(ctx, secret.DeepCopy()); err != nil {
			t.Fatal(err)
		}
		manifest, err := renderChartWith(t, cfg, withDigest()...)
		if err != nil {
			t.Fatal(err)
		}
		upgraded := decodeManifest(t, manifest)
		if got, want := upgraded.must(t, "Secret", "ferry-audit-webhook-tls").Object["data"], secret.Object["data"]; !reflect.DeepEqual(got, want) {
			t.Error("the upgrade made a new audit webhook certificate")
		}
		want, _, _ := unstructuredString(webhookOf(t, installed), "clientConfig", "caBundle")
		if got, _, _ := unstructuredString(webhookOf(t, upgraded), "clientConfig", "caBundle"); got != want {
			t.Error("the upgrade changed the audit webhook's caBundle")
		}
	})

	// Pod Security is enforced: the same pod allowed to escalate privileges is refused.
	t.Run("a pod that may escalate is refused", func(t *testing.T) {
		pod := controllerPod(t, render(t, withDigest()...))
		escalate := true
		pod.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &escalate
		if err := c.Create(ctx, pod, client.DryRunAll); err == nil || !contains(err.Error(), "restricted") {
			t.Errorf("a pod allowing privilege escalation: %v", err)
		}
	})

	// The dry run is not blind: a Deployment with a field the API does not know is refused.
	t.Run("a misspelt field is refused", func(t *testing.T) {
		d := render(t, withDigest()...).must(t, "Deployment", "ferry-controller")
		if err := unstructured.SetNestedField(d.Object, int64(2), "spec", "replicaz"); err != nil {
			t.Fatal(err)
		}
		if err := dryRunApply(ctx, c, d); err == nil {
			t.Error("the API server took spec.replicaz")
		}
	})
}

// startAPIServer starts etcd and kube-apiserver with nothing installed; they stop when the test ends.
func startAPIServer(t *testing.T) (client.Client, *rest.Config) {
	t.Helper()
	assets, err := testenv.BinaryAssets()
	if err != nil {
		if testenv.RequireTools() {
			t.Fatalf("no control plane (run `make controlplane`): %v", err)
		}
		t.Skipf("no control plane (run `make controlplane`): %v", err)
	}
	ctrllog.SetLogger(logr.Discard()) // envtest logs through controller-runtime; the test needs none of it
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, cfg
}

// installOlderCRDs creates the chart's CRDs as `helm install` does (a plain create, field manager helm), each
// with one schema field missing, to stand for the CRDs of an earlier release.
func installOlderCRDs(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	for _, crd := range chartCRDs(t) {
		old := crd.DeepCopy()
		props := old.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties
		if _, ok := props[upgradedField]; !ok {
			t.Fatalf("%s has no spec.%s to leave out", crd.Name, upgradedField)
		}
		delete(props, upgradedField)
		if err := c.Create(ctx, old, client.FieldOwner("helm")); err != nil {
			t.Fatalf("creating the older %s: %v", crd.Name, err)
		}
	}
}

// upgradedField is left out of the older CRD and must be served after the upgrade.
const upgradedField = "serviceAccountName"

// assertCRDsUpgraded checks that the stored CRDs are the chart's after the upgrade.
func assertCRDsUpgraded(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	for _, want := range chartCRDs(t) {
		var got apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, client.ObjectKey{Name: want.Name}, &got); err != nil {
			t.Fatal(err)
		}
		if _, ok := got.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties[upgradedField]; !ok {
			t.Errorf("after the upgrade %s still lacks spec.%s", want.Name, upgradedField)
		}
	}
}

// chartCRDs decodes the chart's crds/.
func chartCRDs(t *testing.T) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range loadChart(t).CRDObjects() {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(f.File.Data, &crd); err != nil {
			t.Fatalf("%s: %v", f.Filename, err)
		}
		crds = append(crds, &crd)
	}
	if len(crds) == 0 {
		t.Fatal("the chart has no CRDs in crds/")
	}
	return crds
}

// applyChartCRDs applies the chart's crds/ for real with server-side apply, taking over fields another manager
// set (--force-conflicts), and waits until they are served.
func applyChartCRDs(ctx context.Context, t *testing.T, c client.Client, cfg *rest.Config) {
	t.Helper()
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range loadChart(t).CRDObjects() {
		var u unstructured.Unstructured
		if err := yaml.Unmarshal(f.File.Data, &u.Object); err != nil {
			t.Fatalf("%s: %v", f.Filename, err)
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(&u), fieldOwner, client.ForceOwnership); err != nil {
			t.Fatalf("kubectl apply --server-side --force-conflicts -f %s: %v", f.Filename, err)
		}
		crds = append(crds, typed[apiextensionsv1.CustomResourceDefinition](t, &u))
	}
	if len(crds) == 0 {
		t.Fatal("the chart has no CRDs in crds/")
	}
	if err := envtest.WaitForCRDs(cfg, crds, envtest.CRDInstallOptions{MaxTime: time.Minute, PollInterval: 100 * time.Millisecond}); err != nil {
		t.Fatalf("waiting for the chart's CRDs to be served: %v", err)
	}
}

// dryRunApply applies u with a server-side apply dry run: the API server validates and admits it, stores nothing.
func dryRunApply(ctx context.Context, c client.Client, u *unstructured.Unstructured) error {
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), client.DryRunAll, fieldOwner, client.ForceOwnership)
}

// prometheusOperatorCRDs are minimal stand-ins for the Prometheus Operator's ServiceMonitor and PrometheusRule
// CRDs (monitoring.coreos.com/v1): the real kinds' names and scope, with any spec. The operator's module is not
// one Ferry builds, and nothing here may be downloaded.
func prometheusOperatorCRDs() []*apiextensionsv1.CustomResourceDefinition {
	anySpec := true
	crd := func(kind, plural string) *apiextensionsv1.CustomResourceDefinition {
		return &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: plural + ".monitoring.coreos.com"},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: "monitoring.coreos.com",
				Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural, Singular: strings.ToLower(kind)},
				Scope: apiextensionsv1.NamespaceScoped,
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
					Name: "v1", Served: true, Storage: true,
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object",
						Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"spec": {Type: "object", XPreserveUnknownFields: &anySpec},
						},
					}},
				}},
			},
		}
	}
	return []*apiextensionsv1.CustomResourceDefinition{crd("ServiceMonitor", "servicemonitors"), crd("PrometheusRule", "prometheusrules")}
}

// controllerPod is a pod of the rendered controller Deployment, as its ReplicaSet would create it.
func controllerPod(t *testing.T, o objects) *corev1.Pod {
	t.Helper()
	d, _ := deployment(t, o)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: d.Name + "-", Namespace: d.Namespace, Labels: d.Spec.Template.Labels},
		Spec:       d.Spec.Template.Spec,
	}
}
