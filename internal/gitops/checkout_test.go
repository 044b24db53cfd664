package gitops

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/gitserver"
)

// listing maps every file under dir (slash paths) to its content; a symlink or other non-regular entry fails.
func listing(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			t.Errorf("%s is not a regular file (%s)", p, d.Type())
			return nil
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func mainRemote(url string) Remote { return Remote{URL: url, Branch: gitserver.DefaultBranch} }

func TestCheckoutWritesFolderAndWholeRepo(t *testing.T) {
	s, url := seed(t)
	e := newEngine(t)
	out := filepath.Join(t.TempDir(), "render") // absent: Checkout creates it
	sha, err := e.Checkout(context.Background(), mainRemote(url), "", "/envs/", out)
	if err != nil {
		t.Fatal(err)
	}
	if sha != s.Head("fleet", "main") {
		t.Fatalf("sha = %s, want the tip", sha)
	}
	got := listing(t, out)
	want := []string{"dev/kustomization.yaml", "prod/kustomization.yaml", "qa/kustomization.yaml", "staging/kustomization.yaml"}
	if !slices.Equal(keys(got), want) || got["prod/kustomization.yaml"] != kustomization("v1") {
		t.Fatalf("checked out %v", got)
	}
	all := t.TempDir() // present and empty
	if _, err := e.Checkout(context.Background(), mainRemote(url), "", "", all); err != nil {
		t.Fatal(err)
	}
	if got := listing(t, all); len(got) != 6 || got["README.md"] != "fleet\n" ||
		!strings.Contains(got["apps/app/deployment.yaml"], "kind: Deployment") {
		t.Fatalf("whole checkout = %v", keys(got))
	}
}

func TestCheckoutOlderRevision(t *testing.T) {
	s, url := seed(t)
	old := s.Head("fleet", "main")
	s.Commit("fleet", "main", map[string]string{"envs/prod/kustomization.yaml": kustomization("v2")}, "bump")
	out := filepath.Join(t.TempDir(), "o")
	sha, err := newEngine(t).Checkout(context.Background(), mainRemote(url), strings.ToUpper(old), "envs/prod", out)
	if err != nil {
		t.Fatal(err)
	}
	if got := listing(t, out); sha != old || got["kustomization.yaml"] != kustomization("v1") {
		t.Fatalf("sha %s, files %v; want %s at v1", sha, got, old)
	}
}

// TestCheckoutMergeCommitOfAPullRequest reads the merge commit a forge prepares at refs/pull/N/merge, which no
// branch reaches, through a fetch by SHA.
func TestCheckoutMergeCommitOfAPullRequest(t *testing.T) {
	s, url := seed(t)
	e := newEngine(t)
	pr, err := e.Pin(context.Background(), prRequest(url, "prod", digestA))
	if err != nil {
		t.Fatal(err)
	}
	s.Commit("fleet", "main", map[string]string{"README.md": "base moved\n"}, "docs")
	merge := s.Merge("fleet", "refs/pull/1/merge", "main", headName("prod", digestA), "Merge pull request #1")
	out := filepath.Join(t.TempDir(), "o")
	sha, err := newEngine(t).Checkout(context.Background(), mainRemote(url), merge, "", out)
	if err != nil {
		t.Fatal(err)
	}
	got := listing(t, out)
	if sha != merge || got["README.md"] != "base moved\n" || !strings.Contains(got["envs/prod/kustomization.yaml"], digestA) {
		t.Fatalf("merge checkout %s = %v (pin %s)", sha, got, pr.CommitSHA)
	}
}

func TestCheckoutFallsBackToBranchHistoryWhenFetchBySHAIsRefused(t *testing.T) {
	s, url := seed(t)
	s.Git(s.RepoDir("fleet"), "config", "uploadpack.allowReachableSHA1InWant", "false")
	old := s.Head("fleet", "main")
	s.Commit("fleet", "main", map[string]string{"README.md": "v2\n"}, "docs")
	merge := s.Merge("fleet", "refs/pull/1/merge", "main", "main", "not on any branch")
	e := newEngine(t)
	out := filepath.Join(t.TempDir(), "o")
	if _, err := e.Checkout(context.Background(), mainRemote(url), old, "", out); err != nil {
		t.Fatalf("revision in the branch's history: %v", err)
	}
	_, err := e.Checkout(context.Background(), mainRemote(url), merge, "", filepath.Join(t.TempDir(), "p"))
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), merge) {
		t.Fatalf("unreachable revision: %v, want ErrNotFound naming %s", err, merge)
	}
}

func TestCheckoutNotFoundLeavesDirAlone(t *testing.T) {
	_, url := seed(t)
	e := newEngine(t)
	unknown := strings.Repeat("ab", 20)
	for name, tc := range map[string]struct{ revision, path, want string }{
		"unknown revision": {unknown, "", "revision " + unknown},
		"missing path":     {"", "envs/nowhere", "path envs/nowhere"},
	} {
		out := filepath.Join(t.TempDir(), "o")
		_, err := e.Checkout(context.Background(), mainRemote(url), tc.revision, tc.path, out)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrNotFound naming %q", name, err, tc.want)
		}
		if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: dir was created (%v)", name, err)
		}
	}
}

func TestCheckoutSymlinkDoesNotEscape(t *testing.T) {
	s, url := seed(t)
	outside := t.TempDir()
	s.Symlink("fleet", "main", "envs/prod/escape", outside, "link out")
	e := newEngine(t)
	for _, out := range []string{t.TempDir(), filepath.Join(t.TempDir(), "absent")} {
		_, err := e.Checkout(context.Background(), mainRemote(url), "", "envs", out)
		if !errors.Is(err, ErrUnsupportedEntry) || !strings.Contains(err.Error(), "envs/prod/escape is a symbolic link") {
			t.Fatalf("error = %v, want ErrUnsupportedEntry naming the link", err)
		}
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Fatalf("dir holds %d entries after the failure, want none", len(entries))
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatal("something was written outside dir")
	}
	// A folder without the link still checks out.
	out := filepath.Join(t.TempDir(), "dev")
	if _, err := e.Checkout(context.Background(), mainRemote(url), "", "envs/dev", out); err != nil {
		t.Fatal(err)
	}
}

func TestCheckoutBadInput(t *testing.T) {
	_, url := seed(t)
	e := newEngine(t)
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ revision, path, dir, want string }{
		"short revision":    {"abc123", "", filepath.Join(t.TempDir(), "o"), `revision "abc123" is not a full commit SHA`},
		"non-hex revision":  {strings.Repeat("z", 40), "", filepath.Join(t.TempDir(), "o"), "not a full commit SHA"},
		"parent path":       {"", "../etc", filepath.Join(t.TempDir(), "o"), `path "../etc" must be a folder inside`},
		"sneaky parent":     {"", "envs/../../etc", filepath.Join(t.TempDir(), "o"), "must be a folder inside"},
		"file path":         {"", "README.md", filepath.Join(t.TempDir(), "o"), "README.md at"},
		"dir not empty":     {"", "", full, "is not empty"},
		"dir missing value": {"", "", "", "checkout dir is required"},
	} {
		_, err := e.Checkout(context.Background(), mainRemote(url), tc.revision, tc.path, tc.dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want %q", name, err, tc.want)
		}
		if tc.dir != "" && tc.dir != full {
			if _, err := os.Stat(tc.dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: dir was created", name)
			}
		}
	}
	if got := listing(t, full); len(got) != 1 || got["x"] != "keep" {
		t.Fatalf("non-empty dir changed: %v", got)
	}
}

// FuzzCheckoutInput: whatever the caller or the server sends, an accepted folder or entry name stays inside dir.
func FuzzCheckoutInput(f *testing.F) {
	for _, seed := range []string{"", "/", "envs/prod/", "../x", "a/../../b", "a/./b", "..", ".git", "a\\b", "a\x00b", "//a//b"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, folder, err := checkoutInput("", s, "dir"); err == nil && folder != "" && !filepath.IsLocal(folder) {
			t.Fatalf("folder %q accepted as %q, which is not local", s, folder)
		}
		if err := checkEntryName(s); err == nil && (!filepath.IsLocal(s) || filepath.Base(s) != s) {
			t.Fatalf("entry name %q accepted", s)
		}
		if want, _, err := checkoutInput(s, "", "dir"); err == nil && (s == "") != want.IsZero() {
			t.Fatalf("revision %q accepted as %s", s, want)
		}
	})
}
