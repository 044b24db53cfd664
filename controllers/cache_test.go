package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

// startCache runs an informer cache with Ferry's options against the test control plane until the test ends.
func startCache(t *testing.T, namespaces []string) cache.Cache {
	t.Helper()
	e := testenv.Need(t, env)
	opts := CacheOptions(namespaces)
	opts.Scheme = e.Scheme
	c, err := cache.New(e.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cache: %v", err)
		}
	})
	return c
}

// A Secret applied with kubectl carries its data again in the last-applied-configuration annotation: the
// metadata Ferry caches to notice changes must keep none of it.
func TestCachedSecretMetadataHoldsNoData(t *testing.T) {
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	const value = "hunter2-not-for-the-cache"
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns,
			Labels:      map[string]string{"team": "b"},
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"stringData":{"password":"` + value + `"}}`}},
		StringData: map[string]string{"password": value},
	}
	ctx := context.Background()
	if err := e.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	c := startCache(t, nil)
	var got metav1.PartialObjectMetadata
	got.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	waitCached(t, c, client.ObjectKeyFromObject(secret), &got)
	if got.Name != "creds" || got.Namespace != ns || got.ResourceVersion == "" {
		t.Errorf("cached metadata %+v lost the name, namespace or version Ferry needs", got.ObjectMeta)
	}
	if len(got.Annotations) != 0 || len(got.Labels) != 0 || len(got.ManagedFields) != 0 {
		t.Errorf("cached Secret metadata keeps annotations %v, labels %v, %d managed fields; want none",
			got.Annotations, got.Labels, len(got.ManagedFields))
	}
}

// Promotions keep their annotations (the on-call requests) in the cache, without managed fields.
func TestCachedPromotionsKeepAnnotations(t *testing.T) {
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	p := samplePromotion(t, ns)
	p.Annotations = map[string]string{ferryv1.RollbackAnnotation: "prod"}
	if err := e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	c := startCache(t, nil)
	var got ferryv1.Promotion
	waitCached(t, c, client.ObjectKeyFromObject(p), &got)
	if got.Annotations[ferryv1.RollbackAnnotation] != "prod" {
		t.Errorf("cached Promotion annotations %v, want the rollback request", got.Annotations)
	}
	if len(got.ManagedFields) != 0 {
		t.Errorf("cached Promotion keeps %d managed fields", len(got.ManagedFields))
	}
}

// --watch-namespaces: Promotions elsewhere are not seen at all.
func TestWatchNamespacesLimitsTheCache(t *testing.T) {
	e := testenv.Need(t, env)
	watched, other := e.Namespace(t), e.Namespace(t)
	ctx := context.Background()
	for _, ns := range []string{watched, other} {
		if err := e.Client.Create(ctx, samplePromotion(t, ns)); err != nil {
			t.Fatal(err)
		}
	}
	c := startCache(t, []string{watched})
	var list ferryv1.PromotionList
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		return c.List(ctx, &list) == nil && len(list.Items) > 0, nil
	})
	if err != nil {
		t.Fatalf("no Promotion in the cache: %v", err)
	}
	for _, p := range list.Items {
		if p.Namespace != watched {
			t.Errorf("the cache holds Promotion %s/%s outside --watch-namespaces %s", p.Namespace, p.Name, watched)
		}
	}
	if err := c.List(ctx, &list, client.InNamespace(other)); err == nil {
		t.Errorf("listing namespace %s, which is not watched, succeeded with %d items", other, len(list.Items))
	}
}

func TestParseNamespaces(t *testing.T) {
	got, err := ParseNamespaces(" team-a, team-b,,team-a ")
	if err != nil || strings.Join(got, ",") != "team-a,team-b" {
		t.Errorf("ParseNamespaces = %v, %v; want [team-a team-b]", got, err)
	}
	if _, err := ParseNamespaces("team-a,Team_B"); err == nil || !strings.Contains(err.Error(), "Team_B") {
		t.Errorf("an invalid name gives %v, want an error naming it", err)
	}
}

func waitCached(t *testing.T, c cache.Cache, key client.ObjectKey, obj client.Object) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) { return c.Get(ctx, key, obj) == nil, nil })
	if err != nil {
		t.Fatalf("%s never reached the cache: %v", key, err)
	}
}
