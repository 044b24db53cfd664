package giteatest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// PushBranch uses the git CLI, as u, to create branch from base in repo with files written (paths
// relative to the repository root) in one commit, and pushes it. It returns the commit's SHA. With branch
// equal to base the commit goes onto base itself.
func (s *Server) PushBranch(ctx context.Context, u User, repo Repo, base, branch string, files map[string]string) (string, error) {
	dir, err := os.MkdirTemp("", "ferry-git-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
			"GIT_AUTHOR_NAME="+u.Name, "GIT_AUTHOR_EMAIL="+u.Email,
			"GIT_COMMITTER_NAME="+u.Name, "GIT_COMMITTER_EMAIL="+u.Email)
		out, err := cmd.CombinedOutput()
		if err != nil {
			// The clone URL holds a test token; keep it out of failure messages anyway.
			msg := strings.ReplaceAll(string(out), u.Token, "<token>")
			return "", fmt.Errorf("git %s: %w\n%s", args[0], err, msg)
		}
		return strings.TrimSpace(string(out)), nil
	}
	if _, err := git("clone", "--quiet", "--branch", base, s.GitURL(u, repo), "."); err != nil {
		return "", err
	}
	if branch != base {
		if _, err := git("checkout", "--quiet", "-b", branch); err != nil {
			return "", err
		}
	}
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	if _, err := git("add", "--all"); err != nil {
		return "", err
	}
	if _, err := git("commit", "--quiet", "-m", "Pin "+branch); err != nil {
		return "", err
	}
	if _, err := git("push", "--quiet", "origin", branch); err != nil {
		return "", err
	}
	return git("rev-parse", "HEAD")
}
