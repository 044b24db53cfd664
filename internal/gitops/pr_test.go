package gitops

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/gitserver"
)

func headName(stage, digest string) string {
	return "ferry/shop/" + stage + "/" + strings.TrimPrefix(digest, "sha256:")[:12]
}

func prRequest(url, stage, digest string) Request {
	req := request(url, stage, digest)
	req.Branch = headName(stage, digest)
	req.BaseBranch = gitserver.DefaultBranch
	return req
}

// countUploads counts fetch requests (upload-pack POSTs) that reach the server.
func countUploads(s *gitserver.Server) *atomic.Int64 {
	var n atomic.Int64
	s.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			n.Add(1)
		}
		return false
	})
	return &n
}

func TestPinCreatesHeadFromBaseAndRecognisesItAfterwards(t *testing.T) {
	s, url := seed(t)
	base := s.Head("fleet", "main")
	req := prRequest(url, "prod", digestA)
	res, err := newEngine(t).Pin(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || !res.Created || res.Recognized {
		t.Fatalf("first pin = %+v, want a new commit creating the branch", res)
	}
	log := s.BranchLog("fleet", req.Branch)
	if len(log) != 2 || log[0].SHA != res.CommitSHA || !slices.Equal(log[0].Parents, []string{base}) {
		t.Fatalf("head log = %+v, want the pin on top of base %s", log, base)
	}
	if s.Head("fleet", "main") != base {
		t.Fatal("the base branch moved")
	}
	if got, _ := s.File("fleet", req.Branch, "envs/prod/kustomization.yaml"); !strings.Contains(got, "digest: "+digestA) {
		t.Fatalf("head file = %s", got)
	}
	// A restart (fresh cache) and the same engine again both recognise the commit; nothing is pushed.
	for _, e := range []*Engine{newEngine(t), newEngine(t)} {
		again, err := e.Pin(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if again.Changed || again.Created || !again.Recognized || again.CommitSHA != res.CommitSHA {
			t.Fatalf("repeat pin = %+v, want recognition of %s", again, res.CommitSHA)
		}
	}
	if n := s.PushRequests("fleet"); n != 1 {
		t.Fatalf("push requests = %d, want 1", n)
	}
}

func TestHeadIgnoresBaseThatMovedAfterItWasCreated(t *testing.T) {
	s, url := seed(t)
	e := newEngine(t)
	req := prRequest(url, "prod", digestA)
	first, err := e.Pin(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	s.Commit("fleet", "main", map[string]string{"README.md": "moved\n"}, "base moves on")
	again, err := e.Pin(context.Background(), req)
	if err != nil || !again.Recognized || again.CommitSHA != first.CommitSHA {
		t.Fatalf("repeat pin after the base moved = %+v, %v", again, err)
	}
	// Another pin on the same head builds on the head's tip, not on the new base.
	other := req
	other.Digest = digestB
	res, err := e.Pin(context.Background(), other)
	if err != nil || !res.Changed || res.Created {
		t.Fatalf("second digest on the head = %+v, %v", res, err)
	}
	log := s.BranchLog("fleet", req.Branch)
	if len(log) != 3 || !slices.Equal(log[0].Parents, []string{first.CommitSHA}) {
		t.Fatalf("head log = %+v, want a second pin on top of %s", log, first.CommitSHA)
	}
	if got, _ := s.File("fleet", req.Branch, "README.md"); got != "fleet\n" {
		t.Fatalf("head picked up the base's later change: README = %q", got)
	}
}

func TestPRBranchesShareTheCachedBase(t *testing.T) {
	s, url := seed(t)
	e := newEngine(t)
	if _, err := e.Pin(context.Background(), prRequest(url, "dev", digestA)); err != nil {
		t.Fatal(err)
	}
	uploads := countUploads(s)
	res, err := e.Pin(context.Background(), prRequest(url, "qa", digestA))
	if err != nil || !res.Created {
		t.Fatalf("second PR branch = %+v, %v", res, err)
	}
	if n := uploads.Load(); n != 0 {
		t.Fatalf("second PR branch fetched %d times, want 0 (the base is cached)", n)
	}
	entries, err := os.ReadDir(e.opts.CacheDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("cache dir holds %d entries, want one repository", len(entries))
	}
}

// TestConcurrentPRBranchesForDifferentStages creates four heads from one base at once: two writers share an
// Engine (and its cache), two have their own. Each head gets exactly its pin; the base is untouched.
func TestConcurrentPRBranchesForDifferentStages(t *testing.T) {
	s, url := seed(t)
	base := s.Head("fleet", "main")
	shared := newEngine(t)
	stages := []string{"dev", "qa", "staging", "prod"}
	engines := []*Engine{shared, shared, newEngine(t), newEngine(t)}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, len(stages))
	for i, stage := range stages {
		wg.Add(1)
		go func(e *Engine, stage string) {
			defer wg.Done()
			<-start
			res, err := e.Pin(context.Background(), prRequest(url, stage, digestA))
			if err == nil && (!res.Created || !res.Changed) {
				err = fmt.Errorf("%s: %+v, want a created branch", stage, res)
			}
			if err != nil {
				errs <- err
			}
		}(engines[i], stage)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, stage := range stages {
		log := s.BranchLog("fleet", headName(stage, digestA))
		if len(log) != 2 || log[0].Trailers[TrailerStage] != stage || !slices.Equal(log[0].Parents, []string{base}) {
			t.Errorf("%s head log = %+v", stage, log)
		}
	}
	if s.Head("fleet", "main") != base {
		t.Error("the base branch moved")
	}
}

// TestTwoWritersCreatingTheSameHeadLandOnce: the loser of the create race sees the winner's commit.
func TestTwoWritersCreatingTheSameHeadLandOnce(t *testing.T) {
	s, url := seed(t)
	req := prRequest(url, "prod", digestA)
	results := make([]Result, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(i int, e *Engine) {
			defer wg.Done()
			results[i], errs[i] = e.Pin(context.Background(), req)
		}(i, newEngine(t))
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("errors: %v, %v", errs[0], errs[1])
	}
	if n := len(s.BranchLog("fleet", req.Branch)); n != 2 {
		t.Fatalf("head has %d commits, want 2", n)
	}
	created := 0
	for _, r := range results {
		if r.Created {
			created++
		}
		if r.CommitSHA != s.Head("fleet", req.Branch) {
			t.Errorf("result %+v does not name the head", r)
		}
	}
	if created != 1 {
		t.Fatalf("results = %+v, want exactly one creation", results)
	}
}

func TestPinAlreadyOnBaseCreatesNoBranch(t *testing.T) {
	s, url := seed(t)
	e := newEngine(t)
	merged, err := e.Pin(context.Background(), request(url, "prod", digestA)) // as if a PR was merged
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Pin(context.Background(), prRequest(url, "prod", digestA))
	if err != nil || res.Created || !res.Recognized || res.CommitSHA != merged.CommitSHA {
		t.Fatalf("pin = %+v, %v, want recognition of the base's %s", res, err, merged.CommitSHA)
	}
	if got := s.Branches("fleet"); !slices.Equal(got, []string{"main"}) {
		t.Fatalf("branches = %v, want only main", got)
	}
}

func TestPRBadInput(t *testing.T) {
	s, url := seed(t)
	tip := s.Head("fleet", "main")
	same := prRequest(url, "prod", digestA)
	same.BaseBranch = same.Branch
	badBase := prRequest(url, "prod", digestA)
	badBase.BaseBranch = "main..x"
	noBase := prRequest(url, "prod", digestA)
	noBase.BaseBranch = "release"
	for name, tc := range map[string]struct {
		req  Request
		want string
	}{
		"base equals head": {same, "must differ"},
		"invalid base":     {badBase, `"main..x" is not a valid branch name`},
		"missing base":     {noBase, "release does not exist"},
	} {
		_, err := newEngine(t).Pin(context.Background(), tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want %q", name, err, tc.want)
		}
	}
	if _, err := newEngine(t).Pin(context.Background(), noBase); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing base: %v, want ErrNotFound", err)
	}
	assertUntouched(t, s, tip)
	if got := s.Branches("fleet"); !slices.Equal(got, []string{"main"}) {
		t.Fatalf("branches = %v, want only main", got)
	}
}

func TestDeleteBranch(t *testing.T) {
	s, url := seed(t)
	e := newEngine(t)
	req := prRequest(url, "prod", digestA)
	if _, err := e.Pin(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteBranch(context.Background(), req.Remote); err != nil {
		t.Fatal(err)
	}
	if got := s.Branches("fleet"); !slices.Equal(got, []string{"main"}) {
		t.Fatalf("branches after delete = %v", got)
	}
	if err := e.DeleteBranch(context.Background(), req.Remote); err != nil {
		t.Fatalf("deleting a missing branch: %v, want success", err)
	}
	// The cache forgot the branch: pinning again creates it afresh.
	res, err := e.Pin(context.Background(), req)
	if err != nil || !res.Created {
		t.Fatalf("pin after delete = %+v, %v", res, err)
	}
	s.ProtectBranch("fleet", req.Branch, "branch is protected")
	err = e.DeleteBranch(context.Background(), req.Remote)
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "branch is protected") {
		t.Fatalf("deleting a protected branch: %v, want ErrRejected with the server's message", err)
	}
	if !slices.Contains(s.Branches("fleet"), req.Branch) {
		t.Fatal("protected branch was deleted")
	}
}

// TestBranchesSharingACacheSurviveCompaction: with a cache that is dropped at every second fetch, pull-request
// writers, a base that keeps moving and checkouts of the base all share one cache at once. Every write lands,
// every checkout matches the server, and git fsck finds the cache whole afterwards.
func TestBranchesSharingACacheSurviveCompaction(t *testing.T) {
	s, url := seed(t)
	e, err := New(Options{CacheDir: t.TempDir(), MaxPacks: 1, RetryBase: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stages := []string{"dev", "qa", "staging", "prod"}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(stages)+8)
	for _, stage := range stages {
		wg.Add(1)
		go func(stage string) {
			defer wg.Done()
			for _, d := range []string{digestA, digestB} {
				req := prRequest(url, stage, digestA)
				req.Digest = d
				if res, err := e.Pin(context.Background(), req); err != nil || !res.Changed {
					errs <- fmt.Errorf("%s %s: %+v %v", stage, d, res, err)
				}
			}
		}(stage)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 8 {
			want := s.Commit("fleet", "main", map[string]string{"README.md": fmt.Sprintf("v%d\n", i)}, "docs")
			out := filepath.Join(t.TempDir(), "o")
			sha, err := e.Checkout(context.Background(), mainRemote(url), want, "", out)
			if b, _ := os.ReadFile(filepath.Join(out, "README.md")); err != nil || sha != want || string(b) != fmt.Sprintf("v%d\n", i) {
				errs <- fmt.Errorf("checkout %d: %s %q %v", i, sha, b, err)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Each head holds its two pins on top of whichever tip of main it was created from (main keeps moving here,
	// so only Ferry's own commits are counted).
	for _, stage := range stages {
		pins := 0
		for _, c := range s.BranchLog("fleet", headName(stage, digestA)) {
			if c.Trailers[TrailerStage] == stage {
				pins++
			}
		}
		if pins != 2 {
			t.Errorf("%s head has %d pin commits, want 2", stage, pins)
		}
	}
	s.Git(e.repos[firstKey(e)].dir, "fsck", "--no-dangling", "--no-progress")
}

// TestPackFetchedAcrossACompactionIsDiscarded holds one branch's download at the server while fetches of another
// branch compact the cache. The held pack was negotiated against the dropped cache (the server may leave out
// what the cache said it had), so storing it could leave a commit without its trees: the fetch must start over.
// git's upload-pack happens to send whole trees on shallow fetches, so the restart is checked at the protocol
// level (one more fetch request), and the cache with git fsck.
func TestPackFetchedAcrossACompactionIsDiscarded(t *testing.T) {
	s, url := seed(t)
	e, err := New(Options{CacheDir: t.TempDir(), MaxPacks: 1})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.repo(mainRemote(url))
	if err != nil {
		t.Fatal(err)
	}
	other := "feature-0"
	for i := 1; c.fetchLock(other) == c.fetchLock("main"); i++ {
		other = fmt.Sprintf("feature-%d", i) // a branch whose fetches never wait on main's
	}
	checkout := func(r Remote) error {
		_, err := e.Checkout(context.Background(), r, "", "", filepath.Join(t.TempDir(), "o"))
		return err
	}
	if err := checkout(mainRemote(url)); err != nil { // the cache now holds main; the held fetch will "have" it
		t.Fatal(err)
	}
	s.Git(s.RepoDir("fleet"), "branch", other, "main")
	s.Commit("fleet", other, map[string]string{"feature.txt": "on the branch\n"}, "feature")

	held, release := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	var fetches atomic.Int64
	armed.Store(true)
	s.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			fetches.Add(1)
			if armed.CompareAndSwap(true, false) {
				close(held)
				<-release
			}
		}
		return false
	})
	done := make(chan error, 1)
	go func() { done <- checkout(Remote{URL: url, Branch: other}) }()
	<-held
	for i := range 3 { // three new packs of main: the third fetch finds two packs and compacts
		s.Commit("fleet", "main", map[string]string{"README.md": fmt.Sprintf("v%d\n", i)}, "docs")
		if err := checkout(mainRemote(url)); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("checkout of the held branch: %v", err)
	}
	if n := fetches.Load(); n != 5 {
		t.Fatalf("%d fetch requests, want 5: the held one, three of main, and the held one again", n)
	}
	s.Git(c.dir, "fsck", "--no-dangling", "--no-progress")
}
