package gitserver

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultBranch is the branch NewRepo creates.
const DefaultBranch = "main"

// NewRepo creates a bare repository holding files (path → content) in one commit on DefaultBranch and returns its
// clone URL. It uses git fast-import, so seeding ten thousand files takes well under a second.
func (s *Server) NewRepo(name string, files map[string]string) string {
	s.t.Helper()
	dir := s.RepoDir(name)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		s.t.Fatalf("creating %s: %v", dir, err)
	}
	s.Git(s.root, "init", "--quiet", "--bare", "--initial-branch="+DefaultBranch, dir)
	s.Git(dir, "config", "http.receivepack", "true")
	// Like the hosted forges, serve any commit reachable from a ref by SHA (e.g. a pull request's merge commit).
	s.Git(dir, "config", "uploadpack.allowReachableSHA1InWant", "true")
	s.Commit(name, DefaultBranch, files, "initial import")
	return s.RepoURL(name)
}

// Commit lands a commit on branch directly in the bare repository, as a person pushing from elsewhere would.
// Files map paths to contents; an empty content deletes the path. It returns the new commit's SHA.
func (s *Server) Commit(repo, branch string, files map[string]string, message string) string {
	s.t.Helper()
	dir := s.RepoDir(repo)
	parent, _ := s.run(dir, nil, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch)
	var in bytes.Buffer
	fmt.Fprintf(&in, "commit refs/heads/%s\ncommitter Test Human <human@example.com> now\n", branch)
	fmt.Fprintf(&in, "data %d\n%s\n", len(message), message)
	if parent != "" {
		fmt.Fprintf(&in, "from %s\n", parent)
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if files[p] == "" {
			fmt.Fprintf(&in, "D %s\n", p)
			continue
		}
		fmt.Fprintf(&in, "M 100644 inline %s\ndata %d\n%s\n", p, len(files[p]), files[p])
	}
	if _, err := s.run(dir, in.Bytes(), "fast-import", "--quiet", "--date-format=now"); err != nil {
		s.t.Fatalf("committing to %s/%s: %v", repo, branch, err)
	}
	return s.Git(dir, "rev-parse", "refs/heads/"+branch)
}

// Symlink lands a commit on branch that adds a symbolic link at path pointing at target; it returns the SHA.
func (s *Server) Symlink(repo, branch, path, target, message string) string {
	s.t.Helper()
	dir := s.RepoDir(repo)
	var in bytes.Buffer
	fmt.Fprintf(&in, "commit refs/heads/%s\ncommitter Test Human <human@example.com> now\n", branch)
	fmt.Fprintf(&in, "data %d\n%s\nfrom refs/heads/%s^0\n", len(message), message, branch)
	fmt.Fprintf(&in, "M 120000 inline %s\ndata %d\n%s\n", path, len(target), target)
	if _, err := s.run(dir, in.Bytes(), "fast-import", "--quiet", "--date-format=now"); err != nil {
		s.t.Fatalf("adding symlink %s to %s/%s: %v", path, repo, branch, err)
	}
	return s.Git(dir, "rev-parse", "refs/heads/"+branch)
}

// Merge makes a merge commit of branch from into branch into and stores it at ref, as a forge prepares
// refs/pull/N/merge (pass "refs/heads/"+into to merge for real). It returns the merge commit's SHA.
func (s *Server) Merge(repo, ref, into, from, message string) string {
	s.t.Helper()
	dir := s.RepoDir(repo)
	tree := s.Git(dir, "merge-tree", "--write-tree", "refs/heads/"+into, "refs/heads/"+from)
	tree, _, _ = strings.Cut(tree, "\n")
	sha := s.Git(dir, "commit-tree", tree, "-p", "refs/heads/"+into, "-p", "refs/heads/"+from, "-m", message)
	s.Git(dir, "update-ref", ref, sha)
	return sha
}

// LogEntry is one commit as the server sees it.
type LogEntry struct {
	SHA      string
	Subject  string
	Message  string
	Author   string // "Name <email>"
	Trailers map[string]string
	Parents  []string
}

// Log lists the commits of DefaultBranch, newest first.
func (s *Server) Log(repo string) []LogEntry {
	s.t.Helper()
	return s.BranchLog(repo, DefaultBranch)
}

// BranchLog lists the commits of branch, newest first.
func (s *Server) BranchLog(repo, branch string) []LogEntry {
	s.t.Helper()
	out := s.Git(s.RepoDir(repo), "log", "--format=%H%x1f%P%x1f%an <%ae>%x1f%B%x1f%(trailers:only,unfold)%x1e",
		"refs/heads/"+branch)
	var entries []LogEntry
	for _, rec := range strings.Split(out, "\x1e") {
		f := strings.Split(strings.TrimLeft(rec, "\n"), "\x1f")
		if len(f) != 5 {
			continue
		}
		e := LogEntry{SHA: f[0], Parents: strings.Fields(f[1]), Author: f[2], Message: f[3],
			Trailers: map[string]string{}}
		e.Subject, _, _ = strings.Cut(f[3], "\n")
		for _, line := range strings.Split(f[4], "\n") {
			if k, v, ok := strings.Cut(line, ": "); ok {
				e.Trailers[k] = v
			}
		}
		entries = append(entries, e)
	}
	return entries
}

// Branches lists the repository's branches, sorted.
func (s *Server) Branches(repo string) []string {
	s.t.Helper()
	out := s.Git(s.RepoDir(repo), "for-each-ref", "--format=%(refname:short)", "refs/heads/")
	return strings.Fields(out)
}

// Head is the SHA of branch's tip.
func (s *Server) Head(repo, branch string) string {
	s.t.Helper()
	return s.Git(s.RepoDir(repo), "rev-parse", "refs/heads/"+branch)
}

// File reads path at branch's tip; ok is false when the path does not exist.
func (s *Server) File(repo, branch, path string) (content string, ok bool) {
	s.t.Helper()
	out, err := s.runRaw(s.RepoDir(repo), "show", "refs/heads/"+branch+":"+path)
	if err != nil {
		return "", false
	}
	return out, true
}

func (s *Server) runRaw(dir string, args ...string) (string, error) {
	cmd := s.command(dir, args...)
	out, err := cmd.Output()
	return string(out), err
}

// SetHook installs a server-side hook script (e.g. "pre-receive", "update") in the repository.
func (s *Server) SetHook(repo, hook, script string) {
	s.t.Helper()
	p := filepath.Join(s.RepoDir(repo), "hooks", hook)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatalf("creating hooks folder: %v", err)
	}
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		s.t.Fatalf("writing hook %s: %v", hook, err)
	}
}

// RemoveHook deletes a hook installed with SetHook.
func (s *Server) RemoveHook(repo, hook string) {
	s.t.Helper()
	if err := os.Remove(filepath.Join(s.RepoDir(repo), "hooks", hook)); err != nil && !os.IsNotExist(err) {
		s.t.Fatalf("removing hook %s: %v", hook, err)
	}
}

// ProtectBranch installs a pre-receive hook that rejects every update of branch with message, the way a hosted
// Git service rejects pushes to a protected branch.
func (s *Server) ProtectBranch(repo, branch, message string) {
	s.SetHook(repo, "pre-receive", fmt.Sprintf(`#!/bin/sh
while read old new ref; do
  if [ "$ref" = "refs/heads/%s" ]; then
    echo %q >&2
    exit 1
  fi
done
exit 0
`, branch, message))
}
