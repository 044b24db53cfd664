package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/gitserver"
	"github.com/ferrycd/ferry/internal/signature/signaturetest"
)

// cosignCLI is the real cosign CLI with a key pair (signaturetest.Cosign), signing and verifying as CI does.
type cosignCLI struct{ *signaturetest.Cosign }

func newCosign(t *testing.T) *cosignCLI { return &cosignCLI{signaturetest.NewCosign(t)} }

// sign signs d as CI does, in cosign's current layout (a sigstore bundle attached as an OCI 1.1 referrer, or
// under the sha256-<hex> tag where the registry has no referrers API).
func (c *cosignCLI) sign(t *testing.T, d name.Digest) {
	t.Helper()
	c.Run(t, "sign", "--key", "cosign.key", "--tlog-upload=false", "--use-signing-config=false",
		"--new-bundle-format=true", "--allow-http-registry", "--yes", d.String())
}

// verify checks with cosign itself that ref carries a signature of the key: the signature travelled with the
// digest.
func (c *cosignCLI) verify(t *testing.T, ref string) {
	t.Helper()
	c.Run(t, c.verifyArgs(ref)...)
}

// refuses checks that cosign finds no valid signature of the key on ref.
func (c *cosignCLI) refuses(t *testing.T, ref string) {
	t.Helper()
	if out, err := c.Try(c.verifyArgs(ref)...); err == nil {
		t.Fatalf("cosign verified %s:\n%s", ref, out)
	}
}

func (c *cosignCLI) verifyArgs(ref string) []string {
	return []string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--new-bundle-format=true",
		"--allow-http-registry", ref}
}

// release pushes a new image tagged version to the source repository, as CI's build does, and returns its digest.
func release(t *testing.T, src *signaturetest.Registry, version string) name.Digest {
	t.Helper()
	d := src.PushImage(t, sourceRepo)
	desc, err := remote.Get(d)
	if err != nil {
		t.Fatalf("reading %s: %v", d, err)
	}
	if err := remote.Tag(d.Context().Tag(version), desc); err != nil {
		t.Fatalf("tagging %s as %s: %v", d, version, err)
	}
	return d
}

const sourceRepo = "acme/shop"

// stageImage is the repository a stage runs its image from: <registry>/<stage>/shop.
func stageImage(reg *signaturetest.Registry, stage string) string {
	return reg.Host + "/" + stage + "/shop"
}

// requireDigest fails unless repository holds digest.
func requireDigest(t *testing.T, repository, digest string) {
	t.Helper()
	ref, err := name.NewDigest(repository + "@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatalf("%s is not in the stage registry: %v", ref, err)
	}
	if desc.Digest.String() != digest {
		t.Fatalf("%s answers with digest %s", ref, desc.Digest)
	}
}

// requireEmptyRegistry fails when anything was pushed to the registry.
func requireEmptyRegistry(t *testing.T, reg *signaturetest.Registry) {
	t.Helper()
	r, err := name.NewRegistry(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	repos, err := remote.Catalog(t.Context(), r)
	if err != nil {
		t.Fatalf("listing %s: %v", reg.Host, err)
	}
	if len(repos) != 0 {
		t.Fatalf("registry %s holds %v, want nothing copied", reg.Host, repos)
	}
}

// deploymentOptions shape the Deployment a stage declares.
type deploymentOptions struct {
	replicas int
	// hostPort makes every pod claim a port of its node, so that on one node a surge pod of a new version can
	// never be scheduled next to the old one: the rollout stalls and the Deployment's progress deadline fails it.
	hostPort int
}

// deploymentYAML is the stage's Deployment of shop, as a platform team keeps it in Git.
func deploymentYAML(image string, o deploymentOptions) string {
	if o.replicas == 0 {
		o.replicas = 2
	}
	strategy, ports := "", "            - containerPort: 8080\n"
	if o.hostPort != 0 {
		strategy = `  progressDeadlineSeconds: 10
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
`
		ports = fmt.Sprintf("            - containerPort: 8080\n              hostPort: %d\n", o.hostPort)
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  labels: {app: shop}
spec:
  replicas: %d
%s  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
        - name: shop
          image: %s # the digest is pinned by Ferry
          ports:
%s`, o.replicas, strategy, image, ports)
}

// kustomization declares the dev stage with kustomize; Ferry pins the digest in images:.
func kustomization(image string) string {
	return `# dev: kustomize; Ferry sets the digest in images:
resources:
  - deployment.yaml
images:
  - name: ` + image + `
    newTag: "0.0.0"
`
}

// stageSpec is a stage synced to namespace "shop-<name>", pruning, healthy within healthTimeout.
func stageSpec(name string, reg *signaturetest.Registry, format ferryv1.ManifestFormat, healthTimeout time.Duration) ferryv1.StageSpec {
	return ferryv1.StageSpec{
		Name: name, Path: "envs/" + name,
		Registry: ferryv1.StageRegistry{Repository: stageImage(reg, name)},
		Manifest: ferryv1.ManifestSpec{Format: format},
		Sync: ferryv1.SyncSpec{Namespace: "shop-" + name, Prune: true,
			HealthTimeout: &metav1.Duration{Duration: healthTimeout}},
	}
}

// newPromotion is Promotion "shop": the source's semver tags from 1.0.0, signed by the release key, pinned in
// gitURL's main branch.
func newPromotion(src *signaturetest.Registry, gitURL string, stages ...ferryv1.StageSpec) *ferryv1.Promotion {
	return &ferryv1.Promotion{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: promotionNamespace},
		Spec: ferryv1.PromotionSpec{
			Source: ferryv1.SourceSpec{Image: src.Host + "/" + sourceRepo,
				TagPolicy: &ferryv1.TagPolicy{Semver: &ferryv1.SemverPolicy{Range: ">=1.0.0"}}},
			Verification: ferryv1.VerificationSpec{Keys: []ferryv1.PublicKeySource{
				{Name: "release-key", SecretRef: ferryv1.SecretKeyReference{Name: "release-key"}}}},
			Git: ferryv1.GitSpec{URL: gitURL, Branch: "main",
				CommitMessageTemplate: "Promote shop to {{.Stage}}{{if .Rollback}} (rollback){{end}}"},
			// Registry notifications bring new digests at once; polling is the fallback.
			Interval: &metav1.Duration{Duration: time.Minute},
			Stages:   stages,
		},
	}
}

// keySecret holds the release key's public half for spec.verification.
func keySecret(pub []byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "release-key", Namespace: promotionNamespace},
		Data: map[string][]byte{"cosign.pub": pub}}
}

// fetched fetches branch from url into a fresh bare repository and returns a git runner in it.
func fetched(t *testing.T, url, branch string) func(args ...string) string {
	t.Helper()
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", args[0], err, out)
		}
		return string(out)
	}
	git("init", "--quiet", "--bare")
	git("fetch", "--quiet", url, "refs/heads/"+branch+":refs/heads/"+branch)
	return git
}

// gitLog lists branch's commits at url, newest first, with their trailers, as any clone would see them.
func gitLog(t *testing.T, url, branch string) []gitserver.LogEntry {
	t.Helper()
	out := fetched(t, url, branch)("log", "--format=%H%x1f%P%x1f%an <%ae>%x1f%s%x1f%(trailers:only,unfold)%x1e", branch)
	var log []gitserver.LogEntry
	for _, rec := range strings.Split(out, "\x1e") {
		f := strings.Split(strings.TrimLeft(rec, "\n"), "\x1f")
		if len(f) < 5 {
			continue
		}
		e := gitserver.LogEntry{SHA: f[0], Parents: strings.Fields(f[1]), Author: f[2], Subject: f[3], Trailers: map[string]string{}}
		for _, line := range strings.Split(f[4], "\n") {
			if k, v, ok := strings.Cut(line, ": "); ok {
				e.Trailers[k] = strings.TrimSpace(v)
			}
		}
		log = append(log, e)
	}
	return log
}

// gitFile reads path at branch's tip at url.
func gitFile(t *testing.T, url, branch, path string) string {
	t.Helper()
	return fetched(t, url, branch)("show", branch+":"+path)
}

// ferryCommits are the commits that pin digest in stage, by their trailers.
func ferryCommits(log []gitserver.LogEntry, stage, digest string) []gitserver.LogEntry {
	var out []gitserver.LogEntry
	for _, e := range log {
		if e.Trailers["Ferry-Stage"] == stage && e.Trailers["Ferry-Digest"] == digest {
			out = append(out, e)
		}
	}
	return out
}

// requireOneFerryCommit fails unless exactly one commit pins digest in stage, carrying Ferry's trailers, and
// returns it.
func requireOneFerryCommit(t *testing.T, log []gitserver.LogEntry, stage, digest string) gitserver.LogEntry {
	t.Helper()
	got := ferryCommits(log, stage, digest)
	if len(got) != 1 {
		t.Fatalf("%d commits pin %s in stage %s, want exactly 1:\n%s", len(got), digest, stage, formatLog(log))
	}
	c := got[0]
	if c.Trailers["Ferry-Promotion"] != promotionNamespace+"/shop" || c.Trailers["Ferry-Source"] == "" {
		t.Errorf("commit %s has trailers %v, want Ferry-Promotion %s/shop and Ferry-Source", shortSHA(c.SHA), c.Trailers, promotionNamespace)
	}
	return c
}

func formatLog(log []gitserver.LogEntry) string {
	var b strings.Builder
	for _, e := range log {
		fmt.Fprintf(&b, "  %s %s (%s) %v\n", shortSHA(e.SHA), e.Subject, e.Author, e.Trailers)
	}
	return b.String()
}

// gitWorld is a Promotion's surroundings on plain Git (git http-backend): a harness, the release key in cosign,
// a source registry, one registry per stage (with the referrers API), the deploy repository with one folder
// per stage, and the stages' namespaces.
type gitWorld struct {
	h      *harness
	cosign *cosignCLI
	src    *signaturetest.Registry
	regs   map[string]*signaturetest.Registry
	git    *gitserver.Server
	url    string
}

const deployRepo = "acme/deploy"

func newGitWorld(t *testing.T, o deploymentOptions, stages ...string) *gitWorld {
	t.Helper()
	w := &gitWorld{h: newHarness(t), cosign: newCosign(t), src: signaturetest.NewRegistry(t, true),
		regs: map[string]*signaturetest.Registry{}, git: gitserver.Start(t)}
	for _, s := range stages {
		w.regs[s] = signaturetest.NewRegistry(t, true)
		w.h.createNamespaces("shop-" + s)
	}
	w.url = w.git.NewRepo(deployRepo, stageFiles(w.regs, o))
	w.h.create(keySecret(w.cosign.PublicKey(t)))
	return w
}

// signedRelease pushes version to the source and signs it with cosign, as CI does, then tells Ferry.
func (w *gitWorld) signedRelease(t *testing.T, version string) string {
	t.Helper()
	d := release(t, w.src, version)
	w.cosign.sign(t, d)
	w.h.notify(w.src.Host + "/" + sourceRepo)
	return d.DigestStr()
}

// promotion is Promotion "shop" over the world's stages, in order, all automatic; dev is kustomize, the others
// plain manifests.
func (w *gitWorld) promotion(healthTimeout time.Duration, stages ...string) *ferryv1.Promotion {
	specs := make([]ferryv1.StageSpec, 0, len(stages))
	for _, s := range stages {
		format := ferryv1.ManifestPlain
		if s == "dev" {
			format = ferryv1.ManifestKustomize
		}
		specs = append(specs, stageSpec(s, w.regs[s], format, healthTimeout))
	}
	return newPromotion(w.src, w.url, specs...)
}
