package main

import (
	"net"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomizeObjects builds the kustomization in dir as `kubectl apply -k` would and decodes the core, apps and
// RBAC objects (others are skipped).
func kustomizeObjects(t *testing.T, dir string) []runtime.Object {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	decode := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	var objs []runtime.Object
	for _, r := range resources.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := decode.Decode(y, nil, nil)
		if runtime.IsNotRegisteredError(err) {
			continue
		}
		if err != nil {
			t.Fatalf("%s %s: %v", r.GetKind(), r.GetName(), err)
		}
		objs = append(objs, obj)
	}
	return objs
}

// TestShippedManifests checks config/default against the flags: the arguments parse, the webhook's credential
// comes from the mounted Secret, metrics are secure and their port is the one served, and the controller may
// review scrapers' tokens.
func TestShippedManifests(t *testing.T) {
	objs := kustomizeObjects(t, filepath.Join("..", "..", "config", "default"))
	var deploy *appsv1.Deployment
	services := map[string]*corev1.Service{}
	roles := map[string]*rbacv1.ClusterRole{}
	var bindings []*rbacv1.ClusterRoleBinding
	for _, obj := range objs {
		switch o := obj.(type) {
		case *appsv1.Deployment:
			deploy = o
		case *corev1.Service:
			services[o.Name] = o
		case *rbacv1.ClusterRole:
			roles[o.Name] = o
		case *rbacv1.ClusterRoleBinding:
			bindings = append(bindings, o)
		}
	}
	if deploy == nil {
		t.Fatal("no Deployment in config/default")
	}
	pod := deploy.Spec.Template.Spec
	c := pod.Containers[0]
	o := parseOptions(t, c.Args...)

	// The webhook is on, with a token file in a volume of the Secret ferry-webhook.
	if o.webhookAddr == "0" || o.webhookTokenFile == "" {
		t.Fatalf("the shipped webhook has no token file: %v", c.Args)
	}
	secretOf := func(file string) string {
		for _, m := range c.VolumeMounts {
			if path.Dir(file) == path.Clean(m.MountPath) {
				for _, v := range pod.Volumes {
					if v.Name == m.Name && v.Secret != nil {
						return v.Secret.SecretName
					}
				}
			}
		}
		return ""
	}
	if got := secretOf(o.webhookTokenFile); got != "ferry-webhook" {
		t.Errorf("--webhook-token-file %s is not in a volume of the Secret ferry-webhook (%q)", o.webhookTokenFile, got)
	}

	// Ports: what the flags bind is what the container and Services declare.
	port := func(addr string) int32 {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%q: %v", addr, err)
		}
		for _, cp := range c.Ports {
			if p == itoa(cp.ContainerPort) {
				return cp.ContainerPort
			}
		}
		t.Fatalf("no container port for %s", addr)
		return 0
	}
	if !o.metricsSecure {
		t.Error("the shipped metrics endpoint is plain HTTP")
	}
	for svc, addr := range map[string]string{"ferry-controller-metrics": o.metricsAddr, "ferry-controller-webhook": o.webhookAddr} {
		want := port(addr)
		s := services[svc]
		if s == nil {
			t.Fatalf("no Service %s", svc)
		}
		var named string
		for _, cp := range c.Ports {
			if cp.ContainerPort == want {
				named = cp.Name
			}
		}
		if tp := s.Spec.Ports[0].TargetPort.String(); tp != named && tp != itoa(want) {
			t.Errorf("Service %s targets %s; the controller serves %s (%s)", svc, tp, addr, named)
		}
	}

	// The controller's service account may create TokenReviews and SubjectAccessReviews; a reader role exists.
	sa := pod.ServiceAccountName
	may := func(group, resource string) bool {
		for _, b := range bindings {
			if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool { return s.Kind == "ServiceAccount" && s.Name == sa }) {
				continue
			}
			role := roles[b.RoleRef.Name]
			if role == nil {
				continue
			}
			for _, rule := range role.Rules {
				if slices.Contains(rule.APIGroups, group) && slices.Contains(rule.Resources, resource) && slices.Contains(rule.Verbs, "create") {
					return true
				}
			}
		}
		return false
	}
	for _, r := range [][2]string{{"authentication.k8s.io", "tokenreviews"}, {"authorization.k8s.io", "subjectaccessreviews"}} {
		if !may(r[0], r[1]) {
			t.Errorf("service account %s may not create %s", sa, r[1])
		}
	}
	reader := roles["ferry-metrics-reader"]
	if reader == nil || len(reader.Rules) != 1 || !slices.Contains(reader.Rules[0].NonResourceURLs, "/metrics") ||
		!slices.Contains(reader.Rules[0].Verbs, "get") {
		t.Errorf("ferry-metrics-reader does not grant get /metrics: %+v", reader)
	}
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }
