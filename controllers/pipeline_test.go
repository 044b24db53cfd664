package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/gitops"
	"github.com/ferrycd/ferry/internal/gitserver"
	"github.com/ferrycd/ferry/internal/registry"
	"github.com/ferrycd/ferry/internal/signature"
	"github.com/ferrycd/ferry/internal/signature/signaturetest"
	"github.com/ferrycd/ferry/internal/testenv"
)

// pipelineFixture is a Promotion wired to real protocol servers: a source and a stage registry, a Git server,
// and a cosign key pair.
type pipelineFixture struct {
	ns       string
	source   *signaturetest.Registry
	stageReg *signaturetest.Registry
	git      *gitserver.Server
	repoURL  string
	signer   *signaturetest.KeySigner
}

func newPipelineFixture(t testing.TB, e *testenv.Env) *pipelineFixture {
	t.Helper()
	f := &pipelineFixture{
		ns:       e.Namespace(t),
		source:   signaturetest.NewRegistry(t, true),
		stageReg: signaturetest.NewRegistry(t, false),
		git:      gitserver.Start(t),
		signer:   signaturetest.NewKeySigner(t),
	}
	f.repoURL = f.git.NewRepo("acme/deploy", map[string]string{
		"envs/dev/kustomization.yaml": "# dev stage\nresources:\n  - deployment.yaml\nimages:\n  - name: " +
			f.stageReg.Host + "/dev/shop # pinned by Ferry\n    newTag: \"0.9\"\n",
		"envs/dev/deployment.yaml":     deploymentYAML(f.stageReg.Host + "/dev/shop:0.9"),
		"envs/staging/deployment.yaml": deploymentYAML(f.stageReg.Host + "/staging/shop:0.9"),
	})
	key := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cosign", Namespace: f.ns},
		Data: map[string][]byte{"cosign.pub": f.signer.PublicKeyPEM}}
	if err := e.Client.Create(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	return f
}

// pushRelease pushes an image tagged tag to the source registry, signed by the fixture's key when signed.
func (f *pipelineFixture) pushRelease(t testing.TB, tag string, signed bool) name.Digest {
	t.Helper()
	d := f.source.PushImage(t, "acme/shop")
	desc, err := remote.Get(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(d.Context().Tag(tag), desc); err != nil {
		t.Fatal(err)
	}
	if signed {
		signaturetest.PushLegacy(t, d, "sig", f.signer.LegacySignature(t, signaturetest.SimpleSigningPayload(d)))
	}
	return d
}

func (f *pipelineFixture) promotion() *ferryv1.Promotion {
	return &ferryv1.Promotion{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: f.ns},
		Spec: ferryv1.PromotionSpec{
			Source: ferryv1.SourceSpec{Image: f.source.Host + "/acme/shop",
				TagPolicy: &ferryv1.TagPolicy{Semver: &ferryv1.SemverPolicy{Range: ">=1.0.0"}}},
			Verification: ferryv1.VerificationSpec{Keys: []ferryv1.PublicKeySource{
				{Name: "release", SecretRef: ferryv1.SecretKeyReference{Name: "cosign"}}}},
			Git: ferryv1.GitSpec{URL: f.repoURL},
			Stages: []ferryv1.StageSpec{{
				Name: "dev", Path: "envs/dev",
				Registry: ferryv1.StageRegistry{Repository: f.stageReg.Host + "/dev/shop"},
				Sync:     ferryv1.SyncSpec{Namespace: "shop-dev"},
			}},
		},
	}
}

func TestSignedDigestIsCopiedAndCommitted(t *testing.T) {
	e := testenv.Need(t, env)
	f := newPipelineFixture(t, e)
	startManager(t, Engines{Git: newGitEngine(t)})
	digest := f.pushRelease(t, "1.0.0", true)
	p := f.promotion()
	if err := e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}

	var got *ferryv1.Promotion
	eventually(t, "dev to be pinned in Git", func() (bool, string) {
		got = getPromotion(t, e.Client, f.ns, p.Name)
		if len(got.Status.Stages) == 0 {
			return false, "no stage status yet"
		}
		st := got.Status.Stages[0]
		return st.Phase == ferryv1.PhaseSyncing && st.LastCommit != "", string(st.Phase) + ": " + st.Message +
			"; " + conditionState(got, ferryv1.ConditionReady)
	})
	if c := got.Status.Candidate; c == nil || c.Digest != digest.DigestStr() || c.Tag != "1.0.0" || !c.Verified || len(c.Signers) != 1 {
		t.Errorf("candidate = %+v", got.Status.Candidate)
	}

	// Git: one commit with the pin and the provenance trailers; comments kept.
	log := f.git.Log("acme/deploy")
	if len(log) != 2 {
		t.Fatalf("want the initial commit and one pin, got %d commits", len(log))
	}
	pinCommit := log[0]
	if pinCommit.SHA != got.Status.Stages[0].LastCommit {
		t.Errorf("status lastCommit %s, branch tip %s", got.Status.Stages[0].LastCommit, pinCommit.SHA)
	}
	wantTrailers := map[string]string{gitops.TrailerPromotion: f.ns + "/shop", gitops.TrailerStage: "dev",
		gitops.TrailerDigest: digest.DigestStr(), gitops.TrailerSource: digest.String()}
	for k, v := range wantTrailers {
		if pinCommit.Trailers[k] != v {
			t.Errorf("trailer %s = %q, want %q", k, pinCommit.Trailers[k], v)
		}
	}
	kust, _ := f.git.File("acme/deploy", "main", "envs/dev/kustomization.yaml")
	if !strings.Contains(kust, `digest: "`+digest.DigestStr()+`"`) || !strings.Contains(kust, "# pinned by Ferry") || strings.Contains(kust, "newTag") {
		t.Errorf("kustomization after the pin:\n%s", kust)
	}

	// Registry: the digest is in the stage registry and still verifies there (its signature came along).
	policy := signature.Policy{Keys: [][]byte{f.signer.PublicKeyPEM}}
	if _, err := signature.Verify(context.Background(), f.stageReg.Host+"/dev/shop@"+digest.DigestStr(), policy, nil); err != nil {
		t.Errorf("the copy in the stage registry does not verify: %v", err)
	}
	for _, reason := range []string{ReasonCandidateVerified, ReasonPromotionStarted, ReasonCopied, ReasonCommitted} {
		if !hasEvent(t, e.Client, f.ns, p.Name, corev1.EventTypeNormal, reason) {
			t.Errorf("no %s event", reason)
		}
	}
}

func TestUnsignedDigestGoesNowhere(t *testing.T) {
	e := testenv.Need(t, env)
	f := newPipelineFixture(t, e)
	startManager(t, Engines{Git: newGitEngine(t)})
	digest := f.pushRelease(t, "1.0.0", false)
	p := f.promotion()
	p.Spec.Verification.SignatureGracePeriod = &metav1.Duration{} // rejected at once; signature_grace_test.go waits
	if err := e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the candidate to be rejected", func() (bool, string) {
		got := getPromotion(t, e.Client, f.ns, p.Name)
		ready := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady)
		c := got.Status.Candidate
		return ready != nil && ready.Reason == ReasonVerificationFailed && c != nil && c.Digest == digest.DigestStr() &&
			!c.Verified && strings.Contains(c.Message, "Unsigned"), conditionState(got, ferryv1.ConditionReady)
	})
	got := getPromotion(t, e.Client, f.ns, p.Name)
	if st := got.Status.Stages[0]; st.InFlightDigest != "" || st.Phase != ferryv1.PhaseIdle {
		t.Errorf("dev moved for an unsigned digest: %+v", st)
	}
	if n := len(f.git.Log("acme/deploy")); n != 1 {
		t.Errorf("an unsigned digest made %d commits", n-1)
	}
	if _, err := remote.Head(mustDigest(t, f.stageReg.Host+"/dev/shop@"+digest.DigestStr())); err == nil {
		t.Error("an unsigned digest was copied into the stage registry")
	}
	if !hasEvent(t, e.Client, f.ns, p.Name, corev1.EventTypeWarning, ReasonVerificationFailed) {
		t.Error("no VerificationFailed event")
	}
}

// TestUnreachableRegistryIsNamedInReady: a source registry that does not answer is retried, and Ready says
// which of Ferry's peers is in the way rather than a bare "Retrying".
func TestUnreachableRegistryIsNamedInReady(t *testing.T) {
	e := testenv.Need(t, env)
	f := newPipelineFixture(t, e)
	startManager(t, Engines{Git: newGitEngine(t)})
	p := f.promotion()
	p.Spec.Source.Image = "127.0.0.1:1/acme/shop" // nothing listens on port 1
	if err := e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Ready=False RegistryUnavailable", func() (bool, string) {
		got := getPromotion(t, e.Client, f.ns, p.Name)
		ready := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady)
		return ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == ReasonRegistryUnavailable &&
			strings.Contains(ready.Message, "127.0.0.1:1"), conditionState(got, ferryv1.ConditionReady)
	})
}

// TestBlackHoleRegistryCostsOneTimeout: a source registry that accepts connections and never answers holds a
// reconcile only until its deadline; the reconcile then ends with an error (retried with backoff) and the status
// is still written.
func TestBlackHoleRegistryCostsOneTimeout(t *testing.T) {
	e := testenv.Need(t, env)
	f := newPipelineFixture(t, e)
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	go func() { // accept and never answer
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	p := f.promotion()
	p.Spec.Source.Image = hole.Addr().String() + "/acme/shop"
	ctx := ctrl.LoggerInto(context.Background(), ctrl.Log)
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	r := &PromotionReconciler{Client: e.Client, APIReader: e.Client, Recorder: events.NewFakeRecorder(100),
		Engines: Engines{Git: newGitEngine(t)}, ReconcileTimeout: time.Second}
	start := time.Now()
	_, err = r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: f.ns, Name: p.Name}})
	if took := time.Since(start); err == nil || took > 15*time.Second {
		t.Fatalf("reconcile against a black hole took %s and returned %v; want an error after about its 1 s deadline", took, err)
	}
	got := getPromotion(t, e.Client, f.ns, p.Name)
	if ready := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady); ready == nil || ready.Status != metav1.ConditionFalse {
		t.Errorf("status not written after the deadline: %s", conditionState(got, ferryv1.ConditionReady))
	}
}

// deploymentYAML is the stage's workload as a platform team writes it.
func deploymentYAML(image string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
        - name: shop
          image: ` + image + `
`
}

func newGitEngine(t testing.TB) *gitops.Engine {
	t.Helper()
	g, err := gitops.New(gitops.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustDigest(t testing.TB, ref string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRegistryWebhookPromotesAtOnce: with polling an hour away, a push notification alone brings the first
// signed digest to dev.
func TestRegistryWebhookPromotesAtOnce(t *testing.T) {
	e := testenv.Need(t, env)
	f := newPipelineFixture(t, e)
	r := startManager(t, Engines{Git: newGitEngine(t)})
	p := f.promotion()
	p.Spec.Interval = &metav1.Duration{Duration: time.Hour}
	if err := e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no candidate yet", func() (bool, string) {
		got := getPromotion(t, e.Client, f.ns, p.Name)
		ready := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady)
		return ready != nil && ready.Reason == ReasonNoCandidate, conditionState(got, ferryv1.ConditionReady)
	})
	digest := f.pushRelease(t, "1.0.0", true)
	r.Pushed(f.source.Host + "/acme/shop")
	eventually(t, "1.0.0 pinned in dev after the notification", func() (bool, string) {
		log := f.git.Log("acme/deploy")
		return log[0].Trailers[gitops.TrailerDigest] == digest.DigestStr(), log[0].Subject
	})
}

// TestRestartAfterPushCommitsOnce covers the worst moment to crash: the pin was pushed but status still says
// Writing. The restarted controller must recognise its own commit and not commit again.
func TestRestartAfterPushCommitsOnce(t *testing.T) {
	e := testenv.Need(t, env)
	f := newPipelineFixture(t, e)
	ctx := context.Background()
	digest := f.pushRelease(t, "1.0.0", true)
	p := f.promotion()
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	// The state a crashed controller left: copied, pushed, status not yet past Writing.
	src := f.source.Host + "/acme/shop@" + digest.DigestStr()
	now := metav1.Now()
	p.Status.Candidate = &ferryv1.CandidateStatus{Digest: digest.DigestStr(), Tag: "1.0.0", Verified: true, DiscoveredAt: &now}
	p.Status.Stages = []ferryv1.StageStatus{{Name: "dev", Phase: ferryv1.PhaseWriting, Since: &now,
		InFlightDigest: digest.DigestStr(), InFlightSource: src, InFlightSince: &now}}
	if err := e.Client.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	git := newGitEngine(t)
	if _, err := copyForTest(ctx, src, f.stageReg.Host+"/dev/shop"); err != nil {
		t.Fatal(err)
	}
	s := &scope{p: p, in: &engineInputs{git: gitops.Remote{URL: f.repoURL, Branch: p.Spec.Git.Branch},
		author: gitops.Author{Name: p.Spec.Git.Author.Name, Email: p.Spec.Git.Author.Email}}}
	before, err := git.Pin(ctx, s.pinRequest(0, false))
	if err != nil || !before.Changed {
		t.Fatalf("the pre-crash push: %+v, %v", before, err)
	}

	startManager(t, Engines{Git: newGitEngine(t)}) // a fresh cache, as after a restart on another node
	eventually(t, "dev to go past Writing", func() (bool, string) {
		got := getPromotion(t, e.Client, f.ns, p.Name)
		st := got.Status.Stages[0]
		return st.Phase == ferryv1.PhaseSyncing, string(st.Phase) + ": " + st.Message
	})
	got := getPromotion(t, e.Client, f.ns, p.Name)
	if lc := got.Status.Stages[0].LastCommit; lc != before.CommitSHA {
		t.Errorf("lastCommit %s, want the pre-crash commit %s", lc, before.CommitSHA)
	}
	if n := len(f.git.Log("acme/deploy")); n != 2 {
		t.Errorf("%d commits after the restart, want the initial one and exactly one pin", n)
	}
}

// copyForTest copies src into dst as the controller's copy step does.
func copyForTest(ctx context.Context, src, dst string) (registry.CopyResult, error) {
	c, err := registry.NewClient(registry.Options{})
	if err != nil {
		return registry.CopyResult{}, err
	}
	defer c.Close()
	return c.Copy(ctx, src, dst)
}

// TestTooManyTagsIsNamedApartFromAnOutage: a source registry listing more tags than Ferry reads is refused, never
// cut short (a cut list could pick the wrong newest tag), and Ready names the limit rather than an outage.
func TestTooManyTagsIsNamedApartFromAnOutage(t *testing.T) {
	e := testenv.Need(t, env)
	f := newPipelineFixture(t, e)
	startManager(t, Engines{Git: newGitEngine(t)})
	tags := make([]string, registry.DefaultMaxTags+1)
	for i := range tags {
		tags[i] = fmt.Sprintf("1.0.%d", i)
	}
	body, err := json.Marshal(map[string]any{"name": "acme/shop", "tags": tags})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/v2/":
			w.WriteHeader(http.StatusOK)
		case "/v2/acme/shop/tags/list":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		default:
			http.NotFound(w, req)
		}
	}))
	defer srv.Close()
	p := f.promotion()
	p.Spec.Source.Image = strings.TrimPrefix(srv.URL, "http://") + "/acme/shop"
	if err := e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Ready=False RegistryLimitExceeded", func() (bool, string) {
		got := getPromotion(t, e.Client, f.ns, p.Name)
		ready := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionReady)
		return ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == ReasonRegistryLimitExceeded &&
			strings.Contains(ready.Message, "spec.source.image"), conditionState(got, ferryv1.ConditionReady)
	})
}
