package helmchart

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// deployment returns the rendered controller Deployment and its manager container.
func deployment(t *testing.T, o objects) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	d := typed[appsv1.Deployment](t, o.must(t, "Deployment", "ferry-controller"))
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(d.Spec.Template.Spec.Containers))
	}
	return d, d.Spec.Template.Spec.Containers[0]
}

// flagValues maps each --name=value argument to its value ("" for a bare --name).
func flagValues(args []string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		name, value, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		out[name] = value
	}
	return out
}

// TestDefaultsAreFerrysSecureSettings: out of the box the chart runs the controller as docs/tenancy.md and
// docs/security.md recommend for a shared controller, with the pod hardening of config/manager.
func TestDefaultsAreFerrysSecureSettings(t *testing.T) {
	o := render(t, withDigest()...)
	d, c := deployment(t, o)
	pod := d.Spec.Template.Spec

	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v: want runAsNonRoot and seccomp RuntimeDefault", sc)
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("container security context %+v: want no privilege escalation, read-only root, all capabilities dropped", sc)
	}

	flags := flagValues(c.Args)
	for name, want := range map[string]string{
		"default-service-account": "ferry-deployer", // every Promotion acts as a tenant identity
		"leader-elect":            "true",
		"audit-webhook-port":      "9443", // who asked is the authenticated user
		"webhook-token-file":      "/etc/ferry/webhook/token",
		"metrics-bind-address":    ":8443",
		"cache-dir":               "/var/cache/ferry",
		"concurrency":             "4",
		"reconcile-timeout":       "3m",
		"zap-log-level":           "info",
	} {
		if got, ok := flags[name]; !ok || got != want {
			t.Errorf("--%s=%q (set: %v); want %q", name, got, ok, want)
		}
	}
	for _, insecure := range []string{"metrics-secure", "allow-insecure-kubeconfig", "allow-kubeconfig-proxy", "watch-namespaces"} {
		if v, ok := flags[insecure]; ok {
			t.Errorf("the defaults pass --%s=%s", insecure, v)
		}
	}
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d; want 2 (one leader, one standby)", *d.Spec.Replicas)
	}

	// The cache volume is bounded as config/manager bounds it.
	want := configCacheLimit(t)
	for _, v := range pod.Volumes {
		if v.Name == "cache" {
			if v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.Cmp(want) != 0 {
				t.Errorf("cache volume %+v; want an emptyDir with sizeLimit %s", v.VolumeSource, want.String())
			}
			return
		}
	}
	t.Error("no cache volume")
}

// configCacheLimit is the cache volume's sizeLimit in config/manager/manager.yaml.
func configCacheLimit(t *testing.T) resource.Quantity {
	t.Helper()
	d := typed[appsv1.Deployment](t, readYAMLDocs(t, "config", "manager", "manager.yaml").ofKind("Deployment")[0])
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "cache" && v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil {
			return *v.EmptyDir.SizeLimit
		}
	}
	t.Fatal("config/manager/manager.yaml has no cache volume with a sizeLimit")
	return resource.Quantity{}
}

// TestEveryFlagIsOneTheControllerDefines: each argument the chart passes, with every option on, is a flag the
// real ferry-controller binary defines, so a renamed flag fails here rather than in a crash-looping pod.
func TestEveryFlagIsOneTheControllerDefines(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ferry-controller")
	if out, err := exec.Command("go", "build", "-o", bin, repoPath("cmd", "ferry-controller")).CombinedOutput(); err != nil {
		t.Fatalf("building ferry-controller: %v\n%s", err, out)
	}
	// -h prints every flag ("  -name value") and exits.
	help, _ := exec.Command(bin, "-h").CombinedOutput()
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(help), -1) {
		defined[m[1]] = true
	}
	if !defined["leader-elect"] || !defined["zap-log-level"] {
		t.Fatalf("ferry-controller -h lists no known flag:\n%s", help)
	}
	for _, sets := range [][]string{
		withDigest("registryWebhook.hmacSecret=true", "tenancy.noCrossNamespaceSync=true", "watchNamespaces={a,b}"),
		withDigest("registryWebhook.enabled=false", "auditWebhook.enabled=false", "leaderElection.enabled=false", "replicas=1"),
	} {
		_, c := deployment(t, render(t, sets...))
		for name := range flagValues(c.Args) {
			if !defined[name] {
				t.Errorf("the chart passes --%s, which ferry-controller does not define", name)
			}
		}
	}
}
