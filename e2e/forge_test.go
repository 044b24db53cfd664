package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/gitserver"
	"github.com/ferrycd/ferry/internal/scm/giteatest"
)

// forge is a deploy repository on the package's real Gitea: owned by the platform team, written by Ferry's bot
// account, and approved by a release manager who merges Ferry's pull requests.
type forge struct {
	gitea          *giteatest.Server
	owner, bot, rm giteatest.User
	repo           giteatest.Repo
}

// newForge creates the accounts (unique per test, since Gitea is shared), the repository with files on main,
// and gives the bot and the release manager write access.
func newForge(t *testing.T, files map[string]string) *forge {
	t.Helper()
	g := giteatest.Require(t)
	ctx := t.Context()
	suffix := fmt.Sprintf("%06d", rand.IntN(1_000_000))
	f := &forge{gitea: g}
	var err error
	for _, u := range []struct {
		to   *giteatest.User
		name string
	}{{&f.owner, "platform-" + suffix}, {&f.bot, "ferry-bot-" + suffix}, {&f.rm, "release-manager-" + suffix}} {
		if *u.to, err = g.CreateUser(ctx, u.name); err != nil {
			t.Fatalf("creating Gitea user %s: %v\n%s", u.name, err, g.Log())
		}
	}
	if f.repo, err = g.CreateRepo(ctx, f.owner, "deploy"); err != nil {
		t.Fatalf("creating the deploy repository: %v", err)
	}
	for _, u := range []string{f.bot.Name, f.rm.Name} {
		if err := g.AddCollaborator(ctx, f.owner, f.repo, u); err != nil {
			t.Fatalf("giving %s write access: %v", u, err)
		}
	}
	f.seed(t, files)
	return f
}

// seed commits files to main as the platform team, with the git CLI.
func (f *forge) seed(t *testing.T, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
			"GIT_AUTHOR_NAME=Platform Team", "GIT_AUTHOR_EMAIL=platform@example.test",
			"GIT_COMMITTER_NAME=Platform Team", "GIT_COMMITTER_EMAIL=platform@example.test")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", args[0], err, strings.ReplaceAll(string(out), f.owner.Token, "<token>"))
		}
	}
	git("clone", "--quiet", "--branch", "main", f.gitea.GitURL(f.owner, f.repo), ".")
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("add", "--all")
	git("commit", "--quiet", "-m", "Stages of shop")
	git("push", "--quiet", "origin", "main")
}

// cloneURL is where Ferry reaches the repository (base is Gitea itself or a proxy in front of it).
func (f *forge) cloneURL(base string) string { return base + "/" + f.repo.FullName() + ".git" }

// log reads main's history as the owner sees it.
func (f *forge) log(t *testing.T) []gitserver.LogEntry {
	t.Helper()
	return gitLog(t, f.gitea.GitURL(f.owner, f.repo), "main")
}

// secrets are Ferry's credentials for the repository (Git over HTTP) and for Gitea's API (pull requests):
// the bot's token in both.
func (f *forge) secrets() []*corev1.Secret {
	return []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "git", Namespace: promotionNamespace},
			Data: map[string][]byte{"username": []byte(f.bot.Name), "password": []byte(f.bot.Token)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "gitea", Namespace: promotionNamespace},
			Data: map[string][]byte{"token": []byte(f.bot.Token)}},
	}
}

// approveByPullRequest gives the Promotion the bot's Git credentials and approves stage by pull request on
// apiURL.
func (f *forge) approveByPullRequest(p *ferryv1.Promotion, stage, apiURL string) {
	p.Spec.Git.SecretRef = &ferryv1.LocalObjectReference{Name: "git"}
	for i := range p.Spec.Stages {
		if p.Spec.Stages[i].Name == stage {
			p.Spec.Stages[i].Approval = ferryv1.ApprovalSpec{Mode: ferryv1.ApprovalPullRequest,
				PullRequest: &ferryv1.PullRequestApproval{Provider: ferryv1.ProviderGitea, APIURL: apiURL,
					TokenSecretRef: ferryv1.SecretKeyReference{Name: "gitea"}, Labels: []string{"promotion"}}}
		}
	}
}

// pullRequests lists every pull request of the repository, open or closed.
func (f *forge) pullRequests(t *testing.T) []*gitea.PullRequest {
	t.Helper()
	c, err := f.gitea.Client(t.Context(), f.owner)
	if err != nil {
		t.Fatal(err)
	}
	prs, _, err := c.ListRepoPullRequests(f.repo.Owner, f.repo.Name, gitea.ListPullRequestsOptions{
		State: gitea.StateAll, ListOptions: gitea.ListOptions{PageSize: 50}})
	if err != nil {
		t.Fatalf("listing pull requests: %v", err)
	}
	return prs
}

// merge is the release manager approving: once Gitea has checked the pull request is mergeable, merge it
// through the API, and return the merged pull request.
func (f *forge) merge(t *testing.T, number int64) *gitea.PullRequest {
	t.Helper()
	c, err := f.gitea.Client(t.Context(), f.rm)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		pr, _, err := c.GetPullRequest(f.repo.Owner, f.repo.Name, number)
		if err != nil {
			t.Fatalf("reading pull request #%d: %v", number, err)
		}
		if pr.Mergeable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pull request #%d never became mergeable", number)
		}
		time.Sleep(100 * time.Millisecond) // polling Gitea's asynchronous mergeability check, not waiting for time
	}
	ok, _, err := c.MergePullRequest(f.repo.Owner, f.repo.Name, number, gitea.MergePullRequestOption{
		Style: gitea.MergeStyleMerge, Title: fmt.Sprintf("Approve shop for prod (#%d)", number)})
	if err != nil || !ok {
		t.Fatalf("merging pull request #%d as %s: ok=%v err=%v", number, f.rm.Name, ok, err)
	}
	pr, _, err := c.GetPullRequest(f.repo.Owner, f.repo.Name, number)
	if err != nil {
		t.Fatal(err)
	}
	if !pr.HasMerged || pr.MergedCommitID == nil {
		t.Fatalf("pull request #%d is not merged after the merge call: %+v", number, pr)
	}
	return pr
}

// holdingProxy stands in front of a server (Gitea) and, for the first request a rule matches, lets the server
// carry the request out, then holds the response back until the test releases it. A controller killed while
// a response is held has done the side effect on the server but never learned that it did — the hardest
// moment to crash at.
type holdingProxy struct {
	URL   string
	proxy *httputil.ReverseProxy
	mu    sync.Mutex
	rules []*holdRule
}

type holdRule struct {
	match   func(*http.Request) bool
	used    bool
	reached chan struct{} // closed once the server has answered the matched request
	release chan struct{} // closed by the test to let the response go
}

func newHoldingProxy(t *testing.T, target string) *holdingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{proxy: &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Host = u.Host
	}}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// hold arms a rule; the returned rule says when it was reached and is released with release().
func (p *holdingProxy) hold(match func(*http.Request) bool) *holdRule {
	r := &holdRule{match: match, reached: make(chan struct{}), release: make(chan struct{})}
	p.mu.Lock()
	p.rules = append(p.rules, r)
	p.mu.Unlock()
	return r
}

func (r *holdRule) letGo() { close(r.release) }

func (p *holdingProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rule := p.claim(req)
	if rule == nil {
		p.proxy.ServeHTTP(w, req)
		return
	}
	rec := httptest.NewRecorder()
	p.proxy.ServeHTTP(rec, req)
	close(rule.reached)
	select {
	case <-rule.release:
	case <-req.Context().Done():
		<-rule.release
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = io.Copy(w, bytes.NewReader(rec.Body.Bytes()))
}

func (p *holdingProxy) claim(req *http.Request) *holdRule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if !r.used && r.match(req) {
			r.used = true
			return r
		}
	}
	return nil
}

// gitPush matches a push (git-receive-pack) to the repository.
func gitPush(req *http.Request) bool {
	return req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/git-receive-pack")
}

// openPullRequest matches Gitea's API call that opens a pull request.
func openPullRequest(req *http.Request) bool {
	return req.Method == http.MethodPost && strings.HasPrefix(req.URL.Path, "/api/v1/repos/") &&
		strings.HasSuffix(req.URL.Path, "/pulls")
}

func describePRs(prs []*gitea.PullRequest) string {
	var parts []string
	for _, pr := range prs {
		head := ""
		if pr.Head != nil {
			head = pr.Head.Ref
		}
		parts = append(parts, fmt.Sprintf("#%d %s from %s merged=%v", pr.Index, pr.State, head, pr.HasMerged))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}
