package helmchart

import (
	"path"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// TestMonitoringToggles: the ServiceMonitor, PrometheusRule and dashboard ConfigMap are off by default and each
// value turns its object on, with the extra labels given.
func TestMonitoringToggles(t *testing.T) {
	toggles := []struct{ value, kind, name string }{
		{"monitoring.serviceMonitor", "ServiceMonitor", "ferry-controller"},
		{"monitoring.prometheusRule", "PrometheusRule", "ferry-on-call"},
		{"monitoring.dashboard", "ConfigMap", "ferry-dashboard"},
	}
	off := render(t, withDigest()...)
	for _, tg := range toggles {
		if off.get(tg.kind, tg.name) != nil {
			t.Errorf("%s %s is rendered by default", tg.kind, tg.name)
		}
		on := render(t, withDigest(tg.value+".enabled=true", tg.value+".labels.release=kube-prometheus-stack")...)
		u := on.get(tg.kind, tg.name)
		if u == nil {
			t.Errorf("%s.enabled=true renders no %s %s", tg.value, tg.kind, tg.name)
			continue
		}
		if got := u.GetLabels()["release"]; got != "kube-prometheus-stack" {
			t.Errorf("%s %s has labels %v; want %s.labels added", tg.kind, tg.name, u.GetLabels(), tg.value)
		}
		if len(on) != len(off)+1 {
			t.Errorf("%s.enabled=true renders %v; want the defaults and one more object", tg.value, on.names())
		}
		if _, err := renderChart(t, withDigest(tg.value+".labels.release=x")...); err == nil || !contains(err.Error(), tg.value+".labels") {
			t.Errorf("%s.labels with the object off was accepted and ignored: %v", tg.value, err)
		}
	}
	if got := render(t, withDigest("monitoring.dashboard.enabled=true")...).must(t, "ConfigMap", "ferry-dashboard").GetLabels()["grafana_dashboard"]; got != "1" {
		t.Errorf("the dashboard ConfigMap's grafana_dashboard label is %q; want \"1\" for Grafana's sidecar", got)
	}
}

// TestServiceMonitorSelectsTheMetricsService: the ServiceMonitor's selector picks the Service whose "metrics" port
// reaches the container's metrics port.
func TestServiceMonitorSelectsTheMetricsService(t *testing.T) {
	o := render(t, withDigest("monitoring.serviceMonitor.enabled=true")...)
	sm := o.must(t, "ServiceMonitor", "ferry-controller")
	sel, _, _ := unstructuredMap(sm.Object, "spec", "selector", "matchLabels")
	svc := typed[corev1.Service](t, o.must(t, "Service", "ferry-controller-metrics"))
	for k, v := range sel {
		if svc.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%v; the metrics Service has %q", k, v, svc.Labels[k])
		}
	}
	_, c := deployment(t, o)
	if svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].TargetPort.String() != "metrics" ||
		!slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" && p.ContainerPort == 8443 }) {
		t.Errorf("the metrics Service port %+v does not reach the container's metrics port %+v", svc.Spec.Ports, c.Ports)
	}
}

// TestControllerToggles: each value changes the Deployment's flags, volumes and objects as values.yaml says.
func TestControllerToggles(t *testing.T) {
	t.Run("replicas", func(t *testing.T) {
		d, _ := deployment(t, render(t, withDigest("replicas=3")...))
		if *d.Spec.Replicas != 3 {
			t.Errorf("replicas=3 renders %d", *d.Spec.Replicas)
		}
	})
	t.Run("watch namespaces", func(t *testing.T) {
		_, c := deployment(t, render(t, withDigest("watchNamespaces={shop,shop-prod}")...))
		if got := flagValues(c.Args)["watch-namespaces"]; got != "shop,shop-prod" {
			t.Errorf("--watch-namespaces=%q; want shop,shop-prod", got)
		}
	})
	t.Run("leader election off with one replica", func(t *testing.T) {
		o := render(t, withDigest("leaderElection.enabled=false", "replicas=1")...)
		_, c := deployment(t, o)
		flags := flagValues(c.Args)
		if flags["leader-elect"] != "false" {
			t.Errorf("--leader-elect=%q; want false", flags["leader-elect"])
		}
		if _, ok := flags["leader-election-namespace"]; ok {
			t.Error("--leader-election-namespace without leader election")
		}
	})
	t.Run("leader election off with two replicas is refused", func(t *testing.T) {
		if _, err := renderChart(t, withDigest("leaderElection.enabled=false")...); err == nil || !contains(err.Error(), "leaderElection.enabled") {
			t.Errorf("two replicas without leader election: %v", err)
		}
	})
	t.Run("log level", func(t *testing.T) {
		_, c := deployment(t, render(t, withDigest("logLevel=debug")...))
		if got := flagValues(c.Args)["zap-log-level"]; got != "debug" {
			t.Errorf("--zap-log-level=%q; want debug", got)
		}
	})
	t.Run("resources and cache", func(t *testing.T) {
		d, c := deployment(t, render(t, withDigest("resources.limits.memory=1Gi", "cache.sizeLimit=8Gi")...))
		if got := c.Resources.Limits.Memory().String(); got != "1Gi" {
			t.Errorf("memory limit %s; want 1Gi", got)
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == "cache" && v.EmptyDir.SizeLimit.String() != "8Gi" {
				t.Errorf("cache sizeLimit %s; want 8Gi", v.EmptyDir.SizeLimit)
			}
		}
	})
	t.Run("tenancy", func(t *testing.T) {
		_, c := deployment(t, render(t, withDigest("tenancy.defaultServiceAccount=", "tenancy.noCrossNamespaceSync=true", "tenancy.reconcileTimeout=90s")...))
		flags := flagValues(c.Args)
		if _, ok := flags["default-service-account"]; ok {
			t.Error("an empty tenancy.defaultServiceAccount still passes --default-service-account")
		}
		if v, ok := flags["no-cross-namespace-sync"]; !ok || v != "" {
			t.Errorf("--no-cross-namespace-sync missing: %v", c.Args)
		}
		if flags["reconcile-timeout"] != "90s" {
			t.Errorf("--reconcile-timeout=%q; want 90s", flags["reconcile-timeout"])
		}
	})
}

// TestRegistryWebhookToggles: the webhook's credentials come from files in a volume of the named Secret; turned
// off, the endpoint, its Service and its volume go.
func TestRegistryWebhookToggles(t *testing.T) {
	o := render(t, withDigest("registryWebhook.secretName=registry-notify", "registryWebhook.hmacSecret=true",
		"registryWebhook.forgeSecret=true")...)
	d, c := deployment(t, o)
	flags := flagValues(c.Args)
	for _, file := range []string{flags["webhook-token-file"], flags["webhook-hmac-secret-file"], flags["forge-webhook-secret-file"]} {
		if got := secretOfFile(d.Spec.Template.Spec, c, file); got != "registry-notify" {
			t.Errorf("credential file %q is in a volume of Secret %q; want registry-notify", file, got)
		}
	}
	if o.get("Service", "ferry-controller-webhook") == nil {
		t.Error("no webhook Service")
	}

	o = render(t, withDigest("registryWebhook.enabled=false")...)
	d, c = deployment(t, o)
	flags = flagValues(c.Args)
	if flags["webhook-bind-address"] != "0" || flags["webhook-token-file"] != "" || flags["forge-webhook-secret-file"] != "" {
		t.Errorf("registryWebhook.enabled=false passes %v", c.Args)
	}
	if o.get("Service", "ferry-controller-webhook") != nil || hasVolume(d.Spec.Template.Spec, "webhook-credentials") {
		t.Error("registryWebhook.enabled=false keeps the webhook's Service or Secret volume")
	}
	if _, err := renderChart(t, withDigest("registryWebhook.token=false")...); err == nil || !contains(err.Error(), "registryWebhook") {
		t.Errorf("a webhook without a credential was rendered: %v", err)
	}
	for _, key := range []string{"hmacSecret", "forgeSecret"} {
		set := "registryWebhook." + key + "=true"
		if _, err := renderChart(t, withDigest("registryWebhook.enabled=false", set)...); err == nil || !contains(err.Error(), "registryWebhook."+key) {
			t.Errorf("%s with the webhook off was accepted and ignored: %v", set, err)
		}
	}
}

// TestAuditWebhookToggles: on by default with a chart-made certificate; cert-manager or an existing Secret
// instead; off, nothing of it is rendered.
func TestAuditWebhookToggles(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		o := render(t, withDigest("auditWebhook.enabled=false")...)
		d, c := deployment(t, o)
		flags := flagValues(c.Args)
		if _, ok := flags["audit-webhook-port"]; ok || hasVolume(d.Spec.Template.Spec, "audit-webhook-tls") {
			t.Errorf("auditWebhook.enabled=false still serves it: %v", c.Args)
		}
		for _, kind := range []string{"MutatingWebhookConfiguration", "Secret", "Service"} {
			for _, u := range o.ofKind(kind) {
				if contains(u.GetName(), "audit") {
					t.Errorf("auditWebhook.enabled=false renders %s %s", kind, u.GetName())
				}
			}
		}
	})
	t.Run("cert-manager", func(t *testing.T) {
		o := render(t, withDigest("auditWebhook.certificate.source=cert-manager")...)
		o.must(t, "Issuer", "ferry-audit-webhook")
		cert := o.must(t, "Certificate", "ferry-audit-webhook")
		secret, _, _ := unstructuredString(cert.Object, "spec", "secretName")
		d, _ := deployment(t, o)
		if got := volumeSecret(d.Spec.Template.Spec, "audit-webhook-tls"); got != secret {
			t.Errorf("the pod mounts Secret %q; cert-manager writes %q", got, secret)
		}
		mwc := o.must(t, "MutatingWebhookConfiguration", "ferry-audit")
		if got := mwc.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != "ferry-system/ferry-audit-webhook" {
			t.Errorf("inject-ca-from %q", got)
		}
		if o.get("Secret", "ferry-audit-webhook-tls") != nil {
			t.Error("the chart makes a certificate Secret although cert-manager does")
		}
	})
	t.Run("existing secret", func(t *testing.T) {
		if _, err := renderChart(t, withDigest("auditWebhook.certificate.source=secret")...); err == nil || !contains(err.Error(), "existingSecret") {
			t.Errorf("source=secret without a Secret: %v", err)
		}
		if _, err := renderChart(t, withDigest("auditWebhook.certificate.source=secret", "auditWebhook.certificate.existingSecret=mine")...); err == nil || !contains(err.Error(), "caBundle") {
			t.Errorf("source=secret without a caBundle: %v", err)
		}
		o := render(t, withDigest("auditWebhook.certificate.source=secret", "auditWebhook.certificate.existingSecret=mine", "auditWebhook.certificate.caBundle=Q0E=")...)
		d, _ := deployment(t, o)
		if got := volumeSecret(d.Spec.Template.Spec, "audit-webhook-tls"); got != "mine" {
			t.Errorf("the pod mounts %q; want the existing Secret mine", got)
		}
		ca, _, _ := unstructuredString(webhookOf(t, o), "clientConfig", "caBundle")
		if ca != "Q0E=" {
			t.Errorf("caBundle %q; want the value given", ca)
		}
	})
	t.Run("certificate values without source=secret are refused", func(t *testing.T) {
		for _, sets := range [][]string{
			{"auditWebhook.certificate.existingSecret=mine"},
			{"auditWebhook.certificate.source=cert-manager", "auditWebhook.certificate.caBundle=Q0E="},
			{"auditWebhook.enabled=false", "auditWebhook.certificate.source=secret", "auditWebhook.certificate.existingSecret=mine"},
		} {
			if _, err := renderChart(t, withDigest(sets...)...); err == nil || !contains(err.Error(), "source=secret") {
				t.Errorf("%v was accepted and ignored: %v", sets, err)
			}
		}
	})
}

// TestRBACToggles: syncNamespaces binds the sync role in those namespaces only; metricsReaders are bound to the
// metrics reader role.
func TestRBACToggles(t *testing.T) {
	o := render(t, withDigest()...)
	if o.get("ClusterRoleBinding", "ferry-sync-rolebinding") == nil || len(o.ofKind("RoleBinding")) != 1 {
		t.Errorf("by default the sync role is bound cluster-wide only: %v", o.names())
	}
	if o.get("ClusterRoleBinding", "ferry-metrics-reader") != nil {
		t.Error("the metrics reader role is bound by default")
	}

	o = render(t, withDigest("syncNamespaces={shop-dev,shop-prod}", "monitoring.metricsReaders[0].name=prometheus-k8s",
		"monitoring.metricsReaders[0].namespace=monitoring")...)
	if o.get("ClusterRoleBinding", "ferry-sync-rolebinding") != nil {
		t.Error("syncNamespaces keeps the cluster-wide sync binding")
	}
	var boundIn []string
	for _, u := range o.ofKind("RoleBinding") {
		rb := typed[rbacv1.RoleBinding](t, u)
		if rb.RoleRef.Kind == "ClusterRole" && rb.RoleRef.Name == "ferry-sync-role" {
			boundIn = append(boundIn, rb.Namespace)
		}
	}
	if !slices.Equal(boundIn, []string{"shop-dev", "shop-prod"}) {
		t.Errorf("sync role bound in %v; want shop-dev, shop-prod", boundIn)
	}
	crb := typed[rbacv1.ClusterRoleBinding](t, o.must(t, "ClusterRoleBinding", "ferry-metrics-reader"))
	if crb.RoleRef.Name != "ferry-metrics-reader" || len(crb.Subjects) != 1 ||
		crb.Subjects[0] != (rbacv1.Subject{Kind: "ServiceAccount", Name: "prometheus-k8s", Namespace: "monitoring"}) {
		t.Errorf("metrics reader binding %+v", crb)
	}
}

func hasVolume(pod corev1.PodSpec, name string) bool { return volumeSecret(pod, name) != "" }

func volumeSecret(pod corev1.PodSpec, name string) string {
	for _, v := range pod.Volumes {
		if v.Name == name && v.Secret != nil {
			return v.Secret.SecretName
		}
	}
	return ""
}

// secretOfFile names the Secret whose volume is mounted at the folder of file.
func secretOfFile(pod corev1.PodSpec, c corev1.Container, file string) string {
	for _, m := range c.VolumeMounts {
		if path.Dir(file) == path.Clean(m.MountPath) {
			return volumeSecret(pod, m.Name)
		}
	}
	return ""
}
