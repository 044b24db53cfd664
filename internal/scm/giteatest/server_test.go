package giteatest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestUsersReposAndBranches(t *testing.T) {
	srv := Require(t)
	ctx := context.Background()
	owner, err := srv.CreateUser(ctx, "owner")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := srv.CreateRepo(ctx, owner, "app")
	if err != nil {
		t.Fatal(err)
	}
	if repo.FullName() != "owner/app" {
		t.Fatalf("repo %q", repo.FullName())
	}
	sha, err := srv.PushBranch(ctx, owner, repo, "main", "feature/x", map[string]string{"dir/file.txt": "hello\n"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := srv.Client(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := c.GetRepoBranch(repo.Owner, repo.Name, "feature/x")
	if err != nil || b.Commit.ID != sha {
		t.Fatalf("pushed branch: %+v, %v (want %s)", b, err, sha)
	}
	raw, _, err := c.GetFile(repo.Owner, repo.Name, "feature/x", "dir/file.txt")
	if err != nil || string(raw) != "hello\n" {
		t.Fatalf("pushed file %q, %v", raw, err)
	}
	// A second user sees the repository once added as a collaborator.
	other, err := srv.CreateUser(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddCollaborator(ctx, owner, repo, other.Name); err != nil {
		t.Fatal(err)
	}
	oc, _ := srv.Client(ctx, other)
	perm, _, err := oc.CollaboratorPermission(repo.Owner, repo.Name, other.Name)
	if err != nil || perm.Permission != gitea.AccessModeWrite {
		t.Fatalf("collaborator permission %+v, %v", perm, err)
	}
	// The admin token is an admin's.
	ac, _ := srv.Client(ctx, srv.Admin)
	me, _, err := ac.GetMyUserInfo()
	if err != nil || !me.IsAdmin || me.UserName != srv.Admin.Name {
		t.Fatalf("admin: %+v, %v", me, err)
	}
}

// Stop must end the server and remove everything it wrote, so test packages leave nothing behind.
func TestStartStop(t *testing.T) {
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Start(ctx, os.Getenv(EnvBinary))
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(s.URL + "/api/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	s.Stop()
	select {
	case <-s.exited:
	default:
		t.Fatal("gitea still running after Stop")
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("work folder %s left behind: %v", s.dir, err)
	}
	if _, err := http.Get(s.URL + "/api/healthz"); err == nil {
		t.Fatal("server still answers after Stop")
	}
	s.Stop() // idempotent
}

func TestStartRejectsMissingBinary(t *testing.T) {
	if _, err := Start(context.Background(), "/nonexistent/gitea"); err == nil {
		t.Fatal("Start with a missing binary succeeded")
	}
}

// When the chosen port is taken by the time Gitea binds, Start retries on another one.
func TestStartRetriesTakenPort(t *testing.T) {
	Require(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	real := freePort
	calls := 0
	freePort = func() (int, error) {
		calls++
		if calls == 1 {
			return taken.Addr().(*net.TCPAddr).Port, nil
		}
		return real()
	}
	defer func() { freePort = real }()
	s, err := Start(context.Background(), os.Getenv(EnvBinary))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if calls != 2 || strings.HasSuffix(s.URL, ":"+strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)) {
		t.Fatalf("after %d port picks the server is at %s", calls, s.URL)
	}
	if _, _, err := mustClient(t, s).GetMyUserInfo(); err != nil {
		t.Fatalf("server after retry: %v", err)
	}
}

func mustClient(t *testing.T, s *Server) *gitea.Client {
	t.Helper()
	c, err := s.Client(context.Background(), s.Admin)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
