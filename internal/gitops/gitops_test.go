package gitops

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/gitserver"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	image   = "ghcr.io/acme/app"
)

func kustomization(tag string) string {
	return `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
# managed by ferry
resources:
  - deployment.yaml
images:
  - name: ghcr.io/acme/app
    newTag: ` + tag + `
`
}

func seed(t *testing.T) (*gitserver.Server, string) {
	t.Helper()
	s := gitserver.Start(t)
	url := s.NewRepo("fleet", map[string]string{
		"envs/dev/kustomization.yaml":     kustomization("v1"),
		"envs/prod/kustomization.yaml":    kustomization("v1"),
		"envs/staging/kustomization.yaml": kustomization("v1"),
		"envs/qa/kustomization.yaml":      kustomization("v1"),
		"apps/app/deployment.yaml":        "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: ghcr.io/acme/app:v1\n",
		"README.md":                       "fleet\n",
	})
	return s, url
}

func newEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := New(Options{CacheDir: t.TempDir(), RetryBase: 5 * time.Millisecond,
		Now: func() time.Time { return time.Unix(1_800_000_000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func request(url, stage, digest string) Request {
	return Request{
		Remote: Remote{URL: url, Branch: "main"},
		Format: FormatKustomize, Path: "envs/" + stage, Image: image, Digest: digest,
		Promotion: "team-a/app", Stage: stage, Source: "ghcr.io/acme/app:v2",
		Author: Author{Name: "Ferry", Email: "ferry@example.com"},
	}
}

func TestPinCommitsAndPushes(t *testing.T) {
	s, url := seed(t)
	e := newEngine(t)
	res, err := e.Pin(context.Background(), request(url, "prod", digestA))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || len(res.Files) != 1 || res.Files[0] != "envs/prod/kustomization.yaml" || res.Attempts != 1 {
		t.Fatalf("result = %+v", res)
	}
	log := s.Log("fleet")
	if len(log) != 2 || log[0].SHA != res.CommitSHA {
		t.Fatalf("server log = %+v, want the pin on top of the import", log)
	}
	head := log[0]
	want := map[string]string{TrailerPromotion: "team-a/app", TrailerStage: "prod", TrailerDigest: digestA,
		TrailerSource: "ghcr.io/acme/app:v2"}
	for k, v := range want {
		if head.Trailers[k] != v {
			t.Errorf("trailer %s = %q, want %q", k, head.Trailers[k], v)
		}
	}
	if _, ok := head.Trailers[TrailerRollback]; ok {
		t.Error("Ferry-Rollback trailer on a promotion")
	}
	if head.Subject != "Promote ghcr.io/acme/app to "+digestA+" in prod" || head.Author != "Ferry <ferry@example.com>" {
		t.Errorf("subject %q author %q", head.Subject, head.Author)
	}
	got, _ := s.File("fleet", "main", "envs/prod/kustomization.yaml")
	if want := strings.Replace(kustomization("v1"), "newTag: v1", "digest: "+digestA, 1); got != want {
		t.Fatalf("file:\n%s\nwant:\n%s", got, want)
	}
	diff := s.Git(s.RepoDir("fleet"), "diff", "--stat", "HEAD~1", "HEAD")
	if !strings.Contains(diff, "1 file changed, 1 insertion(+), 1 deletion(-)") {
		t.Fatalf("diff = %s", diff)
	}
	if fsck := s.Git(s.RepoDir("fleet"), "fsck", "--strict"); strings.Contains(fsck, "error") {
		t.Fatalf("fsck: %s", fsck)
	}

	// A second pin of another digest fetches nothing new (the cache holds our own commit) and records the previous digest.
	res2, err := e.Pin(context.Background(), request(url, "prod", digestB))
	if err != nil {
		t.Fatal(err)
	}
	log = s.Log("fleet")
	if !res2.Changed || res2.PreviousDigest != digestA || log[0].Trailers[TrailerPreviousDigest] != digestA {
		t.Fatalf("second pin = %+v, trailers %v", res2, log[0].Trailers)
	}
}

func TestPinTwiceOrWithFreshCacheCommitsOnce(t *testing.T) {
	s, url := seed(t)
	req := request(url, "prod", digestA)
	first, err := newEngine(t).Pin(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	// Someone else lands an unrelated commit on top, so the pin is no longer the tip.
	s.Commit("fleet", "main", map[string]string{"README.md": "changed\n"}, "docs")
	for _, e := range []*Engine{newEngine(t), newEngine(t)} {
		res, err := e.Pin(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed || !res.Recognized || res.CommitSHA != first.CommitSHA {
			t.Fatalf("repeat pin = %+v, want recognition of %s", res, first.CommitSHA)
		}
	}
	if n := len(s.Log("fleet")); n != 3 {
		t.Fatalf("server has %d commits, want 3 (import, pin, docs)", n)
	}
	if n := s.PushRequests("fleet"); n != 1 {
		t.Fatalf("push requests = %d, want 1", n)
	}
}

func TestAlreadyPinnedByContentMakesNoCommit(t *testing.T) {
	s, url := seed(t)
	s.Commit("fleet", "main", map[string]string{"envs/qa/kustomization.yaml": strings.Replace(kustomization("v1"),
		"newTag: v1", "digest: "+digestA, 1)}, "pinned by hand")
	tip := s.Head("fleet", "main")
	res, err := newEngine(t).Pin(context.Background(), request(url, "qa", digestA))
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed || res.Recognized || res.CommitSHA != tip || s.Head("fleet", "main") != tip {
		t.Fatalf("result = %+v, want no commit and the tip %s", res, tip)
	}
}

func TestRollbackIsANewPinWithTrailer(t *testing.T) {
	s, url := seed(t)
	e := newEngine(t)
	for _, d := range []string{digestA, digestB} {
		if _, err := e.Pin(context.Background(), request(url, "prod", d)); err != nil {
			t.Fatal(err)
		}
	}
	rb := request(url, "prod", digestA)
	rb.Rollback, rb.RollbackBy = true, "on-call\nalice" // a line break must not break the trailer
	res, err := e.Pin(context.Background(), rb)
	if err != nil || !res.Changed || res.PreviousDigest != digestB {
		t.Fatalf("rollback = %+v, %v", res, err)
	}
	head := s.Log("fleet")[0]
	if head.Trailers[TrailerRollback] != "on-call alice" || !strings.HasPrefix(head.Subject, "Roll back") {
		t.Fatalf("rollback commit = %+v", head)
	}
	if res, _ := e.Pin(context.Background(), rb); res.Changed || !res.Recognized {
		t.Fatalf("repeated rollback = %+v", res)
	}
}

func TestCacheIsReclonedWhenItCollectsTooManyPacks(t *testing.T) {
	s, url := seed(t)
	e, err := New(Options{CacheDir: t.TempDir(), MaxPacks: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range []string{digestA, digestB, digestA, digestB, digestA} {
		// Another writer moves the branch every time, so each pin has to fetch (one new pack each).
		s.Commit("fleet", "main", map[string]string{"README.md": fmt.Sprintf("change %d\n", i)}, "other")
		if res, err := e.Pin(context.Background(), request(url, "prod", d)); err != nil || !res.Changed {
			t.Fatalf("pin %d: %+v %v", i, res, err)
		}
		packs, _ := filepath.Glob(filepath.Join(e.repos[firstKey(e)].dir, "objects", "pack", "*.pack"))
		if len(packs) > 3 {
			t.Fatalf("cache holds %d packs, want at most MaxPacks+1", len(packs))
		}
	}
	if n := len(s.Log("fleet")); n != 11 {
		t.Fatalf("server has %d commits, want 11", n)
	}
}

func firstKey(e *Engine) string {
	for k := range e.repos {
		return k
	}
	return ""
}

// TestForgedTrailersAreNotAdopted: a commit with Ferry's trailers for a digest whose files pin something else —
// anyone who can push can write trailers — is not taken for Ferry's pin; the digest is pinned on top of it.
func TestForgedTrailersAreNotAdopted(t *testing.T) {
	s, url := seed(t)
	req := request(url, "qa", digestA)
	forged := s.Commit("fleet", "main", map[string]string{"envs/qa/kustomization.yaml": strings.Replace(kustomization("v1"),
		"newTag: v1", "digest: "+digestB, 1)},
		"Promote\n\n"+TrailerPromotion+": "+req.Promotion+"\n"+TrailerStage+": qa\n"+TrailerDigest+": "+digestA+"\n")
	res, err := newEngine(t).Pin(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Recognized || !res.Changed || res.CommitSHA == forged {
		t.Fatalf("result = %+v: the forged commit %s was adopted", res, forged)
	}
	if got, _ := s.File("fleet", "main", "envs/qa/kustomization.yaml"); !strings.Contains(got, digestA) || strings.Contains(got, digestB) {
		t.Errorf("qa pins:\n%s", got)
	}
}
