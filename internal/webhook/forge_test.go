package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Events as the forges document them, trimmed to a few of their fields besides those Ferry reads.
const (
	// GitHub: X-GitHub-Event: pull_request, action "closed" with "merged": true.
	githubMerged = `{"action":"closed","number":7,
 "pull_request":{"url":"https://api.github.com/repos/Acme/Deploy/pulls/7","number":7,"state":"closed","merged":true,
  "merged_by":{"login":"release-manager"},"head":{"ref":"ferry/shop/prod/abc","sha":"1111"},
  "base":{"ref":"main","sha":"2222","repo":{"full_name":"Acme/Deploy"}}},
 "repository":{"id":1,"name":"Deploy","full_name":"Acme/Deploy","clone_url":"https://github.com/Acme/Deploy.git"},
 "sender":{"login":"release-manager"}}`
	githubOpened = `{"action":"opened","number":8,"pull_request":{"number":8,"merged":false,"base":{"ref":"main"}},
 "repository":{"full_name":"Acme/Deploy"}}`
	githubPush = `{"ref":"refs/heads/main","before":"2222","after":"3333",
 "repository":{"full_name":"Acme/Deploy","clone_url":"https://github.com/Acme/Deploy.git"},"pusher":{"name":"rm"}}`
	githubTagPush = `{"ref":"refs/tags/v1.0.0","repository":{"full_name":"Acme/Deploy"}}`
	githubPing    = `{"zen":"Keep it logically awesome.","hook_id":1,"repository":{"full_name":"Acme/Deploy"}}`

	// Gitea: X-Gitea-Event: pull_request, action "closed" with "merged": true; the repository as GitHub's.
	giteaMerged = `{"action":"closed","number":3,
 "pull_request":{"id":9,"number":3,"state":"closed","merged":true,"merged_by":{"login":"rm"},
  "base":{"label":"main","ref":"main","repo":{"full_name":"platform/deploy"}}},
 "repository":{"id":4,"full_name":"platform/deploy","clone_url":"http://127.0.0.1:3000/platform/deploy.git"}}`

	// GitLab: X-Gitlab-Event: Merge Request Hook, object_attributes.action "merge", state "merged".
	gitlabMerged = `{"object_kind":"merge_request","event_type":"merge_request","user":{"username":"rm"},
 "project":{"id":1,"path_with_namespace":"platform/apps/deploy","git_http_url":"https://gitlab.example.com/platform/apps/deploy.git"},
 "object_attributes":{"id":99,"iid":12,"target_branch":"release","source_branch":"ferry/x","state":"merged","action":"merge"}}`
	gitlabUpdated = `{"object_kind":"merge_request","project":{"path_with_namespace":"platform/apps/deploy"},
 "object_attributes":{"iid":12,"target_branch":"release","state":"opened","action":"update"}}`
	gitlabPush = `{"object_kind":"push","ref":"refs/heads/release","project":{"path_with_namespace":"platform/apps/deploy"}}`
)

func TestParseForgeEvent(t *testing.T) {
	cases := []struct {
		name        string
		forge       Forge
		event, body string
		want        ForgeChange
		relevant    bool
		wantErr     string
	}{
		{"github merged", ForgeGitHub, "pull_request", githubMerged, ForgeChange{"acme/deploy", "main", 7}, true, ""},
		{"github opened", ForgeGitHub, "pull_request", githubOpened, ForgeChange{}, false, ""},
		{"github push", ForgeGitHub, "push", githubPush, ForgeChange{"acme/deploy", "main", 0}, true, ""},
		{"github tag push", ForgeGitHub, "push", githubTagPush, ForgeChange{}, false, ""},
		{"github ping", ForgeGitHub, "ping", githubPing, ForgeChange{}, false, ""},
		{"gitea merged", ForgeGitea, "pull_request", giteaMerged, ForgeChange{"platform/deploy", "main", 3}, true, ""},
		{"gitlab merged", ForgeGitLab, "Merge Request Hook", gitlabMerged, ForgeChange{"platform/apps/deploy", "release", 12}, true, ""},
		{"gitlab updated", ForgeGitLab, "Merge Request Hook", gitlabUpdated, ForgeChange{}, false, ""},
		{"gitlab push", ForgeGitLab, "Push Hook", gitlabPush, ForgeChange{"platform/apps/deploy", "release", 0}, true, ""},
		{"gitlab pipeline", ForgeGitLab, "Pipeline Hook", `{}`, ForgeChange{}, false, ""},
		{"clone URL when no full name", ForgeGitHub, "push", `{"ref":"refs/heads/main","repository":{"clone_url":"https://h/A/B.git"}}`,
			ForgeChange{"a/b", "main", 0}, true, ""},
		{"form-encoded", ForgeGitHub, "pull_request", "payload=%7B%7D", ForgeChange{}, false, "application/json"},
		{"no repository", ForgeGitHub, "pull_request", `{"action":"closed","pull_request":{"number":1,"base":{"ref":"main"}}}`, ForgeChange{}, false, "names no repository"},
		{"no owner", ForgeGitea, "push", `{"ref":"refs/heads/main","repository":{"full_name":"deploy"}}`, ForgeChange{}, false, "owner"},
		{"no number", ForgeGitHub, "pull_request", `{"action":"closed","pull_request":{"base":{"ref":"main"}},"repository":{"full_name":"a/b"}}`, ForgeChange{}, false, "number 0"},
		{"no base", ForgeGitHub, "pull_request", `{"action":"closed","pull_request":{"number":2},"repository":{"full_name":"a/b"}}`, ForgeChange{}, false, "base branch"},
		{"no pull request", ForgeGitHub, "pull_request", `{"action":"closed","repository":{"full_name":"a/b"}}`, ForgeChange{}, false, `without "pull_request"`},
		{"bare ref", ForgeGitHub, "push", `{"ref":"main","repository":{"full_name":"a/b"}}`, ForgeChange{}, false, "refs/heads/"},
		{"control character", ForgeGitHub, "push", `{"ref":"refs/heads/ma\nin","repository":{"full_name":"a/b"}}`, ForgeChange{}, false, "control character"},
		{"gitlab without attributes", ForgeGitLab, "Merge Request Hook", `{"project":{"path_with_namespace":"a/b"}}`, ForgeChange{}, false, "object_attributes"},
		{"unknown forge", Forge("bitbucket"), "push", githubPush, ForgeChange{}, false, "unknown forge"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, relevant, err := ParseForgeEvent(tc.forge, tc.event, []byte(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || relevant != tc.relevant || got != tc.want {
				t.Fatalf("got %+v relevant=%v err=%v; want %+v relevant=%v", got, relevant, err, tc.want, tc.relevant)
			}
		})
	}
}

func FuzzParseForgeEvent(f *testing.F) {
	for _, seed := range []struct{ forge, event, body string }{
		{"github", "pull_request", githubMerged}, {"github", "push", githubPush}, {"gitea", "pull_request", giteaMerged},
		{"gitlab", "Merge Request Hook", gitlabMerged}, {"gitlab", "Push Hook", gitlabPush}, {"github", "push", githubTagPush},
	} {
		f.Add(seed.forge, seed.event, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, forge, event string, body []byte) {
		change, relevant, err := ParseForgeEvent(Forge(forge), event, body)
		if err != nil || !relevant {
			if change != (ForgeChange{}) {
				t.Fatalf("an event not acted on still names %+v", change)
			}
			return
		}
		if change.Repository != strings.ToLower(change.Repository) || !strings.Contains(change.Repository, "/") ||
			change.Branch == "" || change.PullRequest < 0 || len(change.Repository) > maxNameBytes || len(change.Branch) > maxNameBytes {
			t.Fatalf("accepted %+v", change)
		}
	})
}

// forgeChanges records the changes a ForgeHandler passed on.
type forgeChanges struct {
	mu   sync.Mutex
	seen []ForgeChange
}

func (c *forgeChanges) changed(ch ForgeChange) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, ch)
	return true
}

func (c *forgeChanges) get() []ForgeChange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ForgeChange(nil), c.seen...)
}

const forgeSecretValue = "forge-webhook-secret-0123456789"

// serveForges starts a webhook server with only the forge endpoints and records what they pass on.
func serveForges(t *testing.T) (*testServer, *forgeChanges) {
	t.Helper()
	changes := &forgeChanges{}
	return serve(t, Config{ForgeSecret: []byte(forgeSecretValue), ForgeChanged: changes.changed}), changes
}

func hexMAC(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestForgeEndpoints(t *testing.T) {
	s, changes := serveForges(t)
	good, wrong := forgeSecretValue, "not-the-forge-secret-0123456789"
	cases := []struct {
		name        string
		path, body  string
		header      []string
		wantCode    int
		wantChanged *ForgeChange
	}{
		{"gitea signed", "gitea", giteaMerged, []string{"X-Gitea-Event", "pull_request", GiteaSignatureHeader, hexMAC(good, giteaMerged)},
			http.StatusAccepted, &ForgeChange{"platform/deploy", "main", 3}},
		{"gitea wrong secret", "gitea", giteaMerged, []string{"X-Gitea-Event", "pull_request", GiteaSignatureHeader, hexMAC(wrong, giteaMerged)},
			http.StatusUnauthorized, nil},
		{"gitea GitHub-style header only", "gitea", giteaMerged, []string{"X-Gitea-Event", "pull_request", SignatureHeader, "sha256=" + hexMAC(good, giteaMerged)},
			http.StatusUnauthorized, nil},
		{"github signed", "github", githubMerged, []string{"X-GitHub-Event", "pull_request", SignatureHeader, "sha256=" + hexMAC(good, githubMerged)},
			http.StatusAccepted, &ForgeChange{"acme/deploy", "main", 7}},
		{"github signature of another body", "github", githubMerged, []string{"X-GitHub-Event", "pull_request", SignatureHeader, "sha256=" + hexMAC(good, githubOpened)},
			http.StatusUnauthorized, nil},
		{"github unsigned", "github", githubMerged, []string{"X-GitHub-Event", "pull_request"}, http.StatusUnauthorized, nil},
		{"github ping", "github", githubPing, []string{"X-GitHub-Event", "ping", SignatureHeader, "sha256=" + hexMAC(good, githubPing)},
			http.StatusOK, nil},
		{"github wrong event for the body", "github", githubMerged, []string{"X-GitHub-Event", "issues", SignatureHeader, "sha256=" + hexMAC(good, githubMerged)},
			http.StatusOK, nil},
		{"github opened", "github", githubOpened, []string{"X-GitHub-Event", "pull_request", SignatureHeader, "sha256=" + hexMAC(good, githubOpened)},
			http.StatusOK, nil},
		{"github malformed", "github", `{"action":`, []string{"X-GitHub-Event", "pull_request", SignatureHeader, "sha256=" + hexMAC(good, `{"action":`)},
			http.StatusBadRequest, nil},
		{"gitlab token", "gitlab", gitlabMerged, []string{"X-Gitlab-Event", "Merge Request Hook", GitLabTokenHeader, good},
			http.StatusAccepted, &ForgeChange{"platform/apps/deploy", "release", 12}},
		{"gitlab wrong token", "gitlab", gitlabMerged, []string{"X-Gitlab-Event", "Merge Request Hook", GitLabTokenHeader, wrong},
			http.StatusUnauthorized, nil},
		{"gitlab no token", "gitlab", gitlabMerged, []string{"X-Gitlab-Event", "Merge Request Hook"}, http.StatusUnauthorized, nil},
		{"gitlab push", "gitlab", gitlabPush, []string{"X-Gitlab-Event", "Push Hook", GitLabTokenHeader, good},
			http.StatusAccepted, &ForgeChange{"platform/apps/deploy", "release", 0}},
		{"unknown forge", "bitbucket", githubMerged, nil, http.StatusNotFound, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(changes.get())
			resp, body := postTo(t, s, ForgePathPrefix+tc.path, tc.body, tc.header...)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("%s: %s", resp.Status, body)
			}
			got := changes.get()[before:]
			switch {
			case tc.wantChanged == nil && len(got) != 0:
				t.Fatalf("woke %+v", got)
			case tc.wantChanged != nil && (len(got) != 1 || got[0] != *tc.wantChanged):
				t.Fatalf("woke %+v, want %+v", got, *tc.wantChanged)
			}
		})
	}
}

func TestForgeEndpointsRefuseGetAndHugeBodies(t *testing.T) {
	s, changes := serveForges(t)
	req, err := http.NewRequest(http.MethodGet, "http://"+s.addr+ForgePathPrefix+"github", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %s", resp.Status)
	}
	huge := strings.Repeat("x", int(DefaultLimits().MaxBodyBytes)+1)
	if resp, _ := postTo(t, s, ForgePathPrefix+"gitlab", huge, "X-Gitlab-Event", "Push Hook", GitLabTokenHeader, forgeSecretValue); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("huge body: %s", resp.Status)
	}
	// Only the forge endpoints are served without registry credentials.
	if resp, _ := postTo(t, s, Path, push("a/b"), bearerHeader(forgeSecretValue)...); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("registry endpoint without registry credentials: %s", resp.Status)
	}
	if got := changes.get(); len(got) != 0 {
		t.Fatalf("woke %+v", got)
	}
}

func TestForgeSecretMustBeLong(t *testing.T) {
	_, err := NewServer(":0", Config{ForgeSecret: []byte("short-secret"), ForgeChanged: func(ForgeChange) bool { return true }}, nil)
	if err == nil || !strings.Contains(err.Error(), "at least 16") || strings.Contains(err.Error(), "short-secret") {
		t.Fatalf("short forge secret: %v", err)
	}
}

// postTo posts body to path on the test server's address.
func postTo(t *testing.T, s *testServer, path, body string, header ...string) (*http.Response, string) {
	t.Helper()
	saved := s.url
	s.url = "http://" + s.addr + path
	defer func() { s.url = saved }()
	return s.post(t, "", body, header...)
}
