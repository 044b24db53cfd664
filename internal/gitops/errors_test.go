package gitops

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/gitserver"
)

// assertUntouched checks that the server still has only the seeded commit and never accepted a push.
func assertUntouched(t *testing.T, s *gitserver.Server, tip string) {
	t.Helper()
	if got := s.Head("fleet", "main"); got != tip {
		t.Fatalf("branch moved from %s to %s", tip, got)
	}
	if n := s.PushRequests("fleet"); n != 0 {
		t.Fatalf("server saw %d successful push requests, want 0", n)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(s *gitserver.Server)
		mutate func(r *Request)
		is     error
		want   string
	}{{
		name: "malformed YAML names file and line",
		setup: func(s *gitserver.Server) {
			s.Commit("fleet", "main", map[string]string{"envs/prod/kustomization.yaml": "images:\n  - name: ghcr.io/acme/app\n    newTag: v1: v2\n"}, "break it")
		},
		want: "envs/prod/kustomization.yaml:3:",
	}, {
		name:   "image not present",
		mutate: func(r *Request) { r.Image = "ghcr.io/acme/missing" },
		is:     ErrNotFound,
		want:   "image ghcr.io/acme/missing not found",
	}, {
		name:   "path missing",
		mutate: func(r *Request) { r.Path = "envs/nowhere" },
		want:   "path envs/nowhere not found",
	}, {
		name:   "path escaping the repository",
		mutate: func(r *Request) { r.Path = "../etc" },
		want:   `path "../etc" leaves the repository`,
	}, {
		name:   "digest malformed",
		mutate: func(r *Request) { r.Digest = "sha256:xyz" },
		want:   `digest "sha256:xyz"`,
	}, {
		name:   "template fails to render",
		mutate: func(r *Request) { r.MessageTemplate = "Promote {{.Image}} {{index .Trailers 3}}" },
		want:   "rendering message template",
	}, {
		name:   "template does not parse",
		mutate: func(r *Request) { r.MessageTemplate = "Promote {{.Image" },
		want:   "parsing message template",
	}, {
		name:   "multi-line trailer",
		mutate: func(r *Request) { r.Source = "a\nFerry-Digest: sha256:evil" },
		want:   "trailer Ferry-Source must be a single line",
	}, {
		name:   "missing author",
		mutate: func(r *Request) { r.Author = Author{} },
		want:   "needs a name and an e-mail address",
	}, {
		name:   "missing branch",
		mutate: func(r *Request) { r.Branch = "release" },
		is:     ErrNotFound,
		want:   "branch release does not exist",
	}, {
		name:   "plain HTTP to a remote host",
		mutate: func(r *Request) { r.URL = "http://git.example.com/fleet.git" },
		want:   "plain HTTP on a non-loopback host",
	}, {
		name:   "password inside the URL",
		mutate: func(r *Request) { r.URL = strings.Replace(r.URL, "http://", "http://u:secret@", 1) },
		want:   "must not hold a password",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, url := seed(t)
			if tt.setup != nil {
				tt.setup(s)
			}
			tip := s.Head("fleet", "main")
			req := request(url, "prod", digestA)
			if tt.mutate != nil {
				tt.mutate(&req)
			}
			_, err := newEngine(t).Pin(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), tt.want) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks the password: %v", err)
			}
			assertUntouched(t, s, tip)
		})
	}
}

func TestAuth(t *testing.T) {
	s, url := seed(t)
	s.RequireBasicAuth("ferry", "t0ken")
	tip := s.Head("fleet", "main")
	req := request(url, "prod", digestA)
	req.Auth = Auth{Username: "ferry", Password: "wrong-t0ken"}
	_, err := newEngine(t).Pin(context.Background(), req)
	if !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "wrong-t0ken") {
		t.Fatalf("err = %v, want ErrAuth without the secret", err)
	}
	assertUntouched(t, s, tip)

	req.Auth.Password = "t0ken"
	if res, err := newEngine(t).Pin(context.Background(), req); err != nil || !res.Changed {
		t.Fatalf("with the right token: %+v, %v", res, err)
	}
}

func TestProtectedBranchIsNotRetriedAndCacheStaysAtRemoteTip(t *testing.T) {
	s, url := seed(t)
	s.ProtectBranch("fleet", "main", "branch main is protected: open a pull request")
	tip := s.Head("fleet", "main")
	e := newEngine(t)
	res, err := e.Pin(context.Background(), request(url, "prod", digestA))
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "branch main is protected") || res.Attempts != 1 {
		t.Fatalf("res = %+v err = %v, want one rejected attempt quoting the hook", res, err)
	}
	if s.Head("fleet", "main") != tip || len(s.Log("fleet")) != 1 {
		t.Fatal("the rejected commit landed")
	}
	// Once the branch is open again, the same engine makes exactly one commit on the remote tip: nothing of the
	// rejected attempt is left in its cache.
	s.RemoveHook("fleet", "pre-receive")
	res, err = e.Pin(context.Background(), request(url, "prod", digestA))
	if err != nil || !res.Changed {
		t.Fatalf("after unprotecting: %+v, %v", res, err)
	}
	log := s.Log("fleet")
	if len(log) != 2 || log[0].Parents[0] != tip {
		t.Fatalf("log = %+v", log)
	}
}

func TestPushRejectedForAnotherReasonIsNotRetried(t *testing.T) {
	s, url := seed(t)
	posts := 0
	s.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			posts++
			http.Error(w, "push too large for this proxy", http.StatusRequestEntityTooLarge)
			return true
		}
		return false
	})
	tip := s.Head("fleet", "main")
	_, err := newEngine(t).Pin(context.Background(), request(url, "prod", digestA))
	if !errors.Is(err, ErrRejected) || posts != 1 {
		t.Fatalf("err = %v after %d pushes, want one rejected push", err, posts)
	}
	assertUntouched(t, s, tip)
}

func TestUpdateHookRefusalIsNotRetried(t *testing.T) {
	s, url := seed(t)
	s.SetHook("fleet", "update", "#!/bin/sh\necho 'commits must be signed' >&2\nexit 1\n")
	tip := s.Head("fleet", "main")
	res, err := newEngine(t).Pin(context.Background(), request(url, "prod", digestA))
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "commits must be signed") || res.Attempts > 2 {
		t.Fatalf("res = %+v err = %v", res, err)
	}
	if s.Head("fleet", "main") != tip {
		t.Fatal("branch moved")
	}
}
