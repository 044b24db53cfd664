package localcluster

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
	"time"
)

func TestPKIServingCertificateVerifiesForEveryAPIServerName(t *testing.T) {
	dir := t.TempDir()
	p, err := newPKI(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(readFile(t, p.caFile)) {
		t.Fatal("ca.crt holds no certificate")
	}
	serving := parseCert(t, readFile(t, p.certFile))
	for _, name := range []string{"127.0.0.1", "localhost", "kubernetes.default.svc", kubernetesServiceIP} {
		if _, err := serving.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	if _, err := serving.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: roots}); err == nil {
		t.Error("serving certificate verifies for example.com, want only the cluster's names")
	}
	other, err := newPKI(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherRoots := x509.NewCertPool()
	otherRoots.AppendCertsFromPEM(other.caPEM)
	if _, err := serving.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: otherRoots}); err == nil {
		t.Error("serving certificate verifies against another cluster's CA")
	}
}

func TestPKIKeysArePrivateAndMatch(t *testing.T) {
	p, err := newPKI(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p.keyFile, p.saKeyFile} {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, info.Mode().Perm())
		}
	}
	block, _ := pem.Decode(readFile(t, p.saKeyFile))
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("service-account key: %v", err)
	}
	block, _ = pem.Decode(readFile(t, p.saPubFile))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatalf("service-account public key: %v", err)
	}
	if !key.(*ecdsa.PrivateKey).PublicKey.Equal(pub) {
		t.Error("service-account public key does not match the private key")
	}
}

func TestTokensAreDistinct(t *testing.T) {
	c := &Cluster{Dir: t.TempDir()}
	if err := c.writeTokens(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for user, token := range c.tokens {
		if len(token) != 64 {
			t.Errorf("%s's token has %d characters, want 64", user, len(token))
		}
		if other, ok := seen[token]; ok {
			t.Errorf("%s and %s share a token", user, other)
		}
		seen[token] = user
	}
	info, err := os.Stat(c.path("tokens.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("tokens.csv mode = %v, want 0600", info.Mode().Perm())
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatal("no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
