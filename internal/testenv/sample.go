package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// SamplePromotion loads the 3-stage sample shipped in config/samples into namespace ns, strictly, so that a
// sample that drifts from the API types fails.
func SamplePromotion(ns string) (*ferryv1.Promotion, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(root, "config", "samples", "ferry_v1alpha1_promotion.yaml"))
	if err != nil {
		return nil, err
	}
	var p ferryv1.Promotion
	if err := yaml.UnmarshalStrict(raw, &p); err != nil {
		return nil, fmt.Errorf("the sample does not match the API types: %w", err)
	}
	p.Namespace = ns
	return &p, nil
}

// SampleSecrets returns the Secrets the sample refers to, with content that passes Ferry's validation: a fresh
// cosign public key, Git basic credentials, a forge token and registry credentials. None is a real credential.
func SampleSecrets(ns string) ([]client.Object, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(key.Public())
	if err != nil {
		return nil, err
	}
	secret := func(name string, typ corev1.SecretType, data map[string]string) client.Object {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: typ, StringData: data}
	}
	return []client.Object{
		secret("shop-cosign-pub", corev1.SecretTypeOpaque, map[string]string{"cosign.pub": string(pub)}),
		secret("shop-git", corev1.SecretTypeOpaque, map[string]string{"username": "ferry", "password": "not-a-secret"}),
		secret("shop-gitea", corev1.SecretTypeOpaque, map[string]string{"token": "0123456789abcdef"}),
		secret("prod-registry", corev1.SecretTypeDockerConfigJson, map[string]string{
			".dockerconfigjson": `{"auths":{"127.0.0.1:5002":{"auth":"ZmVycnk6bm90LWEtc2VjcmV0"}}}`,
		}),
	}, nil
}

// CreateSample creates the sample Promotion as name in namespace ns and, when stages or conditions are given,
// writes them through the status subresource, as the controller would have left them.
func (e *Env) CreateSample(t testing.TB, ns, name string, stages []ferryv1.StageStatus, conditions ...metav1.Condition) *ferryv1.Promotion {
	t.Helper()
	ctx := context.Background()
	p, err := SamplePromotion(ns)
	if err != nil {
		t.Fatal(err)
	}
	p.Name = name
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if stages != nil || conditions != nil {
		p.Status.Stages, p.Status.Conditions = stages, conditions
		if err := e.Client.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	return p
}
