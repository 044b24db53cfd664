package gitserver

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCloneCommitPushOverHTTP(t *testing.T) {
	s := Start(t)
	url := s.NewRepo("team/app", map[string]string{"deploy/app.yaml": "image: a\n", "README.md": "hi\n"})
	work := filepath.Join(t.TempDir(), "w")
	s.Git("", "clone", "--quiet", url, work)
	if got, _ := os.ReadFile(filepath.Join(work, "deploy/app.yaml")); string(got) != "image: a\n" {
		t.Fatalf("cloned content = %q", got)
	}
	if err := os.WriteFile(filepath.Join(work, "deploy/app.yaml"), []byte("image: b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Git(work, "commit", "--quiet", "-am", "bump\n\nFerry-Stage: prod")
	s.Git(work, "push", "--quiet", "origin", "main")

	log := s.Log("team/app")
	if len(log) != 2 || log[0].Subject != "bump" || log[0].Trailers["Ferry-Stage"] != "prod" {
		t.Fatalf("log = %+v", log)
	}
	if got, _ := s.File("team/app", "main", "deploy/app.yaml"); got != "image: b\n" {
		t.Fatalf("server content = %q", got)
	}
	if n := s.PushRequests("team/app"); n != 1 {
		t.Fatalf("push requests = %d, want 1", n)
	}
}

func TestProtectedBranchRejectsPush(t *testing.T) {
	s := Start(t)
	url := s.NewRepo("app", map[string]string{"a": "1\n"})
	work := filepath.Join(t.TempDir(), "w")
	s.Git("", "clone", "--quiet", url, work)
	s.ProtectBranch("app", "main", "main is protected")
	s.Git(work, "commit", "--quiet", "--allow-empty", "-m", "x")
	_, err := s.run(work, nil, "push", "origin", "main")
	if err == nil || !strings.Contains(err.Error(), "main is protected") {
		t.Fatalf("push error = %v, want the hook's message", err)
	}
	if n := len(s.Log("app")); n != 1 {
		t.Fatalf("log has %d commits, want 1", n)
	}
}

func TestBasicAuthAndIntercept(t *testing.T) {
	s := Start(t)
	url := s.NewRepo("app", map[string]string{"a": "1\n"})
	s.RequireBasicAuth("ferry", "s3cret")
	if _, err := s.run("", nil, "ls-remote", url); err == nil {
		t.Fatal("ls-remote without credentials succeeded")
	}
	authURL := strings.Replace(url, "http://", "http://ferry:s3cret@", 1)
	if _, err := s.run("", nil, "ls-remote", authURL); err != nil {
		t.Fatalf("ls-remote with credentials: %v", err)
	}
	s.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return true
	})
	if _, err := s.run("", nil, "ls-remote", authURL); err == nil {
		t.Fatal("ls-remote succeeded through an interceptor that fails every request")
	}
}

func TestCommitServerSideAndDelete(t *testing.T) {
	s := Start(t)
	s.NewRepo("app", map[string]string{"a": "1\n", "b": "2\n"})
	sha := s.Commit("app", "main", map[string]string{"a": "", "c": "3\n"}, "change")
	if s.Head("app", "main") != sha {
		t.Fatal("head did not move to the new commit")
	}
	if _, ok := s.File("app", "main", "a"); ok {
		t.Fatal("a still exists")
	}
	if got, _ := s.File("app", "main", "c"); got != "3\n" {
		t.Fatalf("c = %q", got)
	}
}
