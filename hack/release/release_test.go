package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/hack/release/publish"
	"github.com/ferrycd/ferry/internal/image"
	"github.com/ferrycd/ferry/internal/signature"
	st "github.com/ferrycd/ferry/internal/signature/signaturetest"
	"github.com/ferrycd/ferry/internal/testenv"
)

// kubeEnv is a real API server for the server-side dry run of dist/install.yaml.
var kubeEnv *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &kubeEnv) }

// TestReleaseOnARealRegistry builds the image, releases it to the CNCF distribution registry with a throwaway key
// (as `make release` without a key does), and checks the result with the real cosign CLI, Ferry's verifier and a
// real API server.
func TestReleaseOnARealRegistry(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	c := st.NewCosign(t) // the real CLI, in a home that reaches no network
	reg := st.StartDistribution(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	// This machine's platform only: internal/image's test builds and checks both release platforms; what is tested
	// here is the publishing, which one platform exercises as well as two, at half the compiling and compressing.
	res, rec, err := buildImage(ctx, buildOptions{dist: dist, version: "v1.2.3-releasetest", platforms: "linux/" + runtime.GOARCH,
		source: "https://github.com/ferrycd/ferry", moduleDir: root, caDir: image.DebianCADir})
	if err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(root, "charts", "ferry")
	if _, err := os.Stat(filepath.Join(chart, "Chart.yaml")); err != nil {
		chart = filepath.Join("testdata", "chart") // charts/ferry is not there yet
	}
	var log bytes.Buffer
	rel, err := release(ctx, releaseOptions{dist: dist, registry: reg.Host + "/ferrycd", cosign: c.Bin, cosignEnv: c.Env,
		builderID: "https://example.test/ci", configDir: filepath.Join(root, "config", "default"), chartDir: chart}, &log)
	if err != nil {
		t.Fatalf("release: %v\n%s", err, log.String())
	}
	if rel.Digest.DigestStr() != res.Digest.String() || rel.Record.Commit != rec.Commit {
		t.Fatalf("pushed %s, built %s", rel.Digest, res.Digest)
	}
	if !strings.Contains(log.String(), "WARNING: no release key given") {
		t.Errorf("a release with a throwaway key did not warn:\n%s", log.String())
	}
	pinned := publish.PinnedReference(rel.Digest)
	key := publish.KeyPair{PublicKey: filepath.Join(dist, "keys", "cosign.pub")}
	cos := publish.Cosign{Bin: c.Bin, Env: c.Env}

	t.Run("cosign verifies", func(t *testing.T) {
		flags := cos.VerifyFlags(key, rel.Digest)
		c.Run(t, append(append([]string{"verify"}, flags...), rel.Digest.String())...)
		for _, typ := range publish.RequiredAttestations {
			out := c.Run(t, append(append([]string{"verify-attestation", "--type", typ}, flags...), rel.Digest.String())...)
			if typ == "slsaprovenance1" && !strings.Contains(verifiedStatements(t, out), `"id":"https://example.test/ci"`) {
				t.Errorf("the provenance cosign verified does not name the builder:\n%s", out)
			}
		}
	})
	t.Run("ferry verifies", func(t *testing.T) {
		res, err := publish.Verify(ctx, publish.RegistryOptions(nil), rel.Digest, key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		types := map[string]bool{}
		for _, a := range res.Attestations {
			types[a.PredicateType] = true
		}
		if !types[signature.PredicateSPDX] || !types[signature.PredicateSLSAProvenanceV1] {
			t.Errorf("attestations found: %v", res.Attestations)
		}
		other := filepath.Join(t.TempDir(), "other.pub")
		if err := os.WriteFile(other, st.NewKeySigner(t).PublicKeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := publish.Verify(ctx, publish.RegistryOptions(nil), rel.Digest, other); signature.KindOf(err) != signature.KindUntrusted {
			t.Errorf("verification with another key = %v, want Untrusted", err)
		}
	})
	t.Run("install.yaml", func(t *testing.T) { checkInstall(t, e, filepath.Join(dist, publish.InstallFile), pinned) })
	t.Run("chart", func(t *testing.T) {
		images := renderChart(t, filepath.Join(dist, publish.ChartsDir, "ferry"))
		if len(images) == 0 {
			t.Fatal("the released chart has no container")
		}
		for where, img := range images {
			if img != pinned {
				t.Errorf("%s: %s, want %s", where, img, pinned)
			}
		}
	})
}

// verifiedStatements decodes the in-toto statements in the DSSE envelopes cosign verify-attestation prints.
func verifiedStatements(t *testing.T, out string) string {
	t.Helper()
	var all strings.Builder
	for _, line := range strings.Split(out, "\n") {
		var env struct{ Payload []byte }
		if json.Unmarshal([]byte(line), &env) == nil {
			all.Write(env.Payload)
		}
	}
	return all.String()
}

// checkInstall applies install.yaml to the API server: CRDs and the namespace for real, everything else as a
// server-side dry run; every container image must be the released one, and $FERRY_IMAGE must name it too.
func checkInstall(t *testing.T, e *testenv.Env, file, pinned string) {
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	images, err := publish.ContainerImages(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(images) == 0 {
		t.Fatal("install.yaml has no container")
	}
	for where, img := range images {
		if img != pinned {
			t.Errorf("%s: image %s, want %s", where, img, pinned)
		}
	}
	if !regexp.MustCompile(`- name: FERRY_IMAGE\s+value: ` + regexp.QuoteMeta(pinned) + `\n`).Match(raw) {
		t.Errorf("install.yaml does not set FERRY_IMAGE to %s", pinned)
	}
	objs := decodeAll(t, raw)
	ctx := context.Background()
	apply := func(u *unstructured.Unstructured, opts ...client.ApplyOption) {
		t.Helper()
		opts = append(opts, client.FieldOwner("ferry-release-test"), client.ForceOwnership)
		if err := e.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...); err != nil {
			t.Errorf("applying %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	kinds := map[string]int{}
	for _, u := range objs {
		kinds[u.GetKind()]++
		if k := u.GetKind(); k == "CustomResourceDefinition" || k == "Namespace" {
			apply(u)
		}
	}
	for _, u := range objs {
		if k := u.GetKind(); k != "CustomResourceDefinition" && k != "Namespace" {
			apply(u, client.DryRunAll)
		}
	}
	for _, k := range []string{"CustomResourceDefinition", "ClusterRole", "ServiceAccount", "Deployment", "Service"} {
		if kinds[k] == 0 {
			t.Errorf("install.yaml has no %s (kinds: %v)", k, kinds)
		}
	}
}

func decodeAll(t *testing.T, raw []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}
