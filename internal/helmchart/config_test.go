package helmchart

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"reflect"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The chart's copies of config/ files (make helm-sync), each with its source.
var copies = map[string]string{
	"crds/ferry.dev_promotions.yaml":  "config/crd/bases/ferry.dev_promotions.yaml",
	"files/manager-role.yaml":         "config/rbac/role.yaml",
	"files/leader-election-role.yaml": "config/rbac/leader_election_role.yaml",
	"files/sync-role.yaml":            "config/rbac/sync_role.yaml",
	"files/metrics-auth-role.yaml":    "config/default/metrics_auth_role.yaml",
	"files/metrics-reader-role.yaml":  "config/default/metrics_reader_role.yaml",
	"files/prometheus-rules.yaml":     "config/prometheus/rules.yaml",
	"files/dashboard.json":            "config/prometheus/dashboard.json",
}

// TestChartCopiesAreConfigs: the CRD, RBAC, alerts and dashboard in the chart are byte for byte config/'s.
func TestChartCopiesAreConfigs(t *testing.T) {
	for copy, source := range copies {
		got, err := os.ReadFile(repoPath("charts", "ferry", copy))
		if err != nil {
			t.Errorf("%v: run `make helm-sync`", err)
			continue
		}
		want, err := os.ReadFile(repoPath(source))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("charts/ferry/%s differs from %s: run `make helm-sync`", copy, source)
		}
	}
}

// TestRBACIsConfigs: every role the chart renders grants exactly the rules of its config/ counterpart, and every
// binding binds the controller's ServiceAccount to a role the chart renders.
func TestRBACIsConfigs(t *testing.T) {
	o := render(t, withDigest()...)
	for _, c := range []struct {
		kind, name string
		source     []string
	}{
		{"ClusterRole", "ferry-manager-role", []string{"config", "rbac", "role.yaml"}},
		{"Role", "ferry-leader-election-role", []string{"config", "rbac", "leader_election_role.yaml"}},
		{"ClusterRole", "ferry-sync-role", []string{"config", "rbac", "sync_role.yaml"}},
		{"ClusterRole", "ferry-metrics-auth-role", []string{"config", "default", "metrics_auth_role.yaml"}},
		{"ClusterRole", "ferry-metrics-reader", []string{"config", "default", "metrics_reader_role.yaml"}},
	} {
		want := rulesOf(t, readYAMLDocs(t, c.source...).must(t, c.kind, c.name))
		if got := rulesOf(t, o.must(t, c.kind, c.name)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s grants\n%+v\nconfig/ grants\n%+v", c.kind, c.name, got, want)
		}
	}
	if n := len(o.ofKind("ClusterRole")) + len(o.ofKind("Role")); n != 5 {
		t.Errorf("the chart renders %d roles; this test knows 5", n)
	}

	d, _ := deployment(t, o)
	sa := rbacv1.Subject{Kind: "ServiceAccount", Name: d.Spec.Template.Spec.ServiceAccountName, Namespace: namespace}
	o.must(t, "ServiceAccount", sa.Name)
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, u := range o.ofKind(kind) {
			b := typed[rbacv1.RoleBinding](t, u) // a ClusterRoleBinding has the same fields
			if o.get(b.RoleRef.Kind, b.RoleRef.Name) == nil {
				t.Errorf("%s %s binds %s %s, which the chart does not render", kind, b.Name, b.RoleRef.Kind, b.RoleRef.Name)
			}
			if len(b.Subjects) != 1 || b.Subjects[0] != sa {
				t.Errorf("%s %s binds %+v; want the controller's ServiceAccount %+v", kind, b.Name, b.Subjects, sa)
			}
		}
	}
}

func rulesOf(t *testing.T, u *unstructured.Unstructured) []rbacv1.PolicyRule {
	t.Helper()
	if u.GetKind() == "Role" {
		return typed[rbacv1.Role](t, u).Rules
	}
	return typed[rbacv1.ClusterRole](t, u).Rules
}

// TestAuditWebhookIsConfigs: with the release named ferry in ferry-system, the audit webhook is config/webhook's
// (the same rules, failure policy, match conditions and Service), plus a CA bundle that verifies the serving
// certificate the chart made for that Service's DNS name.
func TestAuditWebhookIsConfigs(t *testing.T) {
	o := render(t, withDigest()...)
	got := webhookOf(t, o)
	want := webhookOf(t, readYAMLDocs(t, "config", "webhook", "manifests.yaml"))
	caBundle, _, _ := unstructuredString(got, "clientConfig", "caBundle")
	unstructured.RemoveNestedField(got, "clientConfig", "caBundle")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the chart's audit webhook\n%v\ndiffers from config/webhook's\n%v", got, want)
	}
	svc := o.must(t, "Service", "ferry-controller-audit")
	wantSvc := readYAMLDocs(t, "config", "webhook", "service.yaml").must(t, "Service", "ferry-controller-audit")
	gotPorts, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	wantPorts, _, _ := unstructured.NestedSlice(wantSvc.Object, "spec", "ports")
	if !reflect.DeepEqual(gotPorts, wantPorts) {
		t.Errorf("audit Service ports %v; config/webhook's %v", gotPorts, wantPorts)
	}

	secret := o.must(t, "Secret", "ferry-audit-webhook-tls")
	data := func(key string) []byte {
		s, _, _ := unstructuredString(secret.Object, "data", key)
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("Secret key %s: %v", key, err)
		}
		return b
	}
	caPEM, err := base64.StdEncoding.DecodeString(caBundle)
	if err != nil || !bytes.Equal(caPEM, data("ca.crt")) {
		t.Fatalf("caBundle is not the Secret's ca.crt (%v)", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("caBundle holds no PEM certificate")
	}
	block, _ := pem.Decode(data("tls.crt"))
	if block == nil {
		t.Fatal("tls.crt holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "ferry-controller-audit.ferry-system.svc",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("the API server could not verify the audit webhook's certificate: %v", err)
	}
	if _, err := tls.X509KeyPair(data("tls.crt"), data("tls.key")); err != nil {
		t.Errorf("tls.key does not match tls.crt: %v", err)
	}
}

// TestMonitoringIsConfigs: the alerts, the dashboard and the ServiceMonitor's endpoint are config/prometheus's.
func TestMonitoringIsConfigs(t *testing.T) {
	o := render(t, withDigest("monitoring.serviceMonitor.enabled=true", "monitoring.prometheusRule.enabled=true",
		"monitoring.dashboard.enabled=true")...)
	config := readYAMLDocs(t, "config", "prometheus", "rules.yaml")
	if got, want := o.must(t, "PrometheusRule", "ferry-on-call").Object["spec"], config.must(t, "PrometheusRule", "ferry-on-call").Object["spec"]; !reflect.DeepEqual(got, want) {
		t.Errorf("the chart's alerts differ from config/prometheus/rules.yaml")
	}
	sm := readYAMLDocs(t, "config", "prometheus", "servicemonitor.yaml").must(t, "ServiceMonitor", "ferry-controller")
	gotEndpoints, _, _ := unstructured.NestedSlice(o.must(t, "ServiceMonitor", "ferry-controller").Object, "spec", "endpoints")
	wantEndpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if !reflect.DeepEqual(gotEndpoints, wantEndpoints) {
		t.Errorf("ServiceMonitor endpoints %v; config/prometheus's %v", gotEndpoints, wantEndpoints)
	}
	dashboard, err := os.ReadFile(repoPath("config", "prometheus", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := unstructuredString(o.must(t, "ConfigMap", "ferry-dashboard").Object, "data", "ferry-on-call.json")
	if got != string(dashboard) {
		t.Error("the dashboard ConfigMap is not config/prometheus/dashboard.json")
	}
}

// webhookOf returns webhooks[0] of the MutatingWebhookConfiguration in o.
func webhookOf(t *testing.T, o objects) map[string]any {
	t.Helper()
	mwc := o.ofKind("MutatingWebhookConfiguration")
	if len(mwc) != 1 {
		t.Fatalf("want one MutatingWebhookConfiguration, have %v", o.names())
	}
	hooks, _, _ := unstructured.NestedSlice(mwc[0].Object, "webhooks")
	if len(hooks) != 1 {
		t.Fatalf("want one webhook, have %d", len(hooks))
	}
	return hooks[0].(map[string]any)
}

func unstructuredString(obj map[string]any, fields ...string) (string, bool, error) {
	return unstructured.NestedString(obj, fields...)
}

func unstructuredMap(obj map[string]any, fields ...string) (map[string]any, bool, error) {
	return unstructured.NestedMap(obj, fields...)
}
