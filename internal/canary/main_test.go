package canary

import (
	"context"
	gosync "sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/ferrycd/ferry/internal/sync"
	"github.com/ferrycd/ferry/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const (
	repo    = "registry.example.com/shop"
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// deployment is a Deployment named name running image, labelled app=name, as Git would declare it.
func deployment(name, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name, "team": "web"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](4),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"prometheus.io/scrape": "true"}},
				Spec: corev1.PodSpec{
					InitContainers: []corev1.Container{{Name: "migrate", Image: "busybox:1.36"}},
					Containers:     []corev1.Container{{Name: "app", Image: image}},
				},
			},
		},
	}
}

// toUnstructured converts a typed object the way a render would produce it.
func toUnstructured(t *testing.T, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// stage is one stage's Deployment synced to a namespace: the stable Deployment live, labelled for owner the way
// sync labels it, running digestA, and Git's declaration of it at the new commit, running digestB.
type stage struct {
	ns, owner, name string
	engine          *Engine
}

func newStage(t *testing.T, ns, owner, name string) *stage {
	t.Helper()
	stable := deployment(name, repo+"@"+digestA)
	stable.Namespace = ns
	stable.Labels[sync.OwnerLabel] = owner
	stable.Annotations = map[string]string{sync.RevisionAnnotation: "old-commit"}
	if err := env.Client.Create(testContext(t), stable); err != nil {
		t.Fatal(err)
	}
	return &stage{ns: ns, owner: owner, name: name, engine: New(env.Client)}
}

// request asks for a canary of s at the new commit, with a baseline of the live Deployment when baseline is set.
func (s *stage) request(t *testing.T, replicas int32, baseline bool) Request {
	t.Helper()
	req := Request{
		Namespace: s.ns,
		Owner:     s.owner,
		Revision:  "new-commit",
		Canary:    toUnstructured(t, deployment(s.name, repo+"@"+digestB)),
		Replicas:  replicas,
	}
	if baseline {
		req.Baseline = s.live(t, s.name)
	}
	return req
}

// live reads a Deployment straight from the API server, nil when it does not exist.
func (s *stage) live(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(deploymentGVK)
	err := env.Client.Get(testContext(t), client.ObjectKey{Namespace: s.ns, Name: name}, obj)
	if client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	if err != nil {
		return nil
	}
	return obj
}

// stableVersion is the stable Deployment's resourceVersion, to show it is never written.
func (s *stage) stableVersion(t *testing.T) string {
	t.Helper()
	return s.live(t, s.name).GetResourceVersion()
}

// waitFor polls cond until it holds or 30 seconds pass.
func waitFor(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(testContext(t), 50*time.Millisecond, 30*time.Second, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

var gateway struct {
	once   gosync.Once
	client client.Client
	err    error
}

// gatewayClient installs the Gateway API's HTTPRoute CRD — the YAML the gateway-api module ships, found through the
// module cache, nothing downloaded — into the test API server, once per test binary, and returns a client whose
// scheme has the gateway-api v1 types, for tests to read routes typed. The engine under test keeps env.Client,
// whose scheme has none: that is what the controller gives it.
func gatewayClient(t *testing.T) client.Client {
	t.Helper()
	e := testenv.Need(t, env)
	gateway.once.Do(func() {
		if gateway.err = e.InstallHTTPRouteCRD(); gateway.err != nil {
			return
		}
		scheme := runtime.NewScheme()
		if gateway.err = clientgoscheme.AddToScheme(scheme); gateway.err != nil {
			return
		}
		if gateway.err = gatewayv1.Install(scheme); gateway.err != nil {
			return
		}
		gateway.client, gateway.err = client.New(e.Config, client.Options{Scheme: scheme})
	})
	if gateway.err != nil {
		t.Fatalf("installing the HTTPRoute CRD: %v", gateway.err)
	}
	return gateway.client
}
