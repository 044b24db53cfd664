package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/gitserver"
)

const pinDigest = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

// runPinCommand runs `ferry pin` in-process, as a user would.
func runPinCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"pin"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// checkout clones a fresh repository from a real Git server, so the test can ask git what changed.
func checkout(t *testing.T, files map[string]string) (*gitserver.Server, string) {
	t.Helper()
	s := gitserver.Start(t)
	url := s.NewRepo("cfg", files)
	dir := filepath.Join(t.TempDir(), "cfg")
	s.Git("", "clone", "--quiet", url, dir)
	return s, dir
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  annotations:
    note: "was ghcr.io/acme/app:v1"
spec:
  template:
    spec:
      containers:
        - name: app
          image: ghcr.io/acme/app:v1 # the app
`

func TestPinCommandEditsOnlyImageLines(t *testing.T) {
	s, dir := checkout(t, map[string]string{
		"base/deployment.yaml":      deployment,
		"overlays/prod/values.yaml": "app:\n  image:\n    repository: ghcr.io/acme/app\n    tag: v1\n",
	})
	out, err := runPinCommand(t, "--dir", dir, "--image", "ghcr.io/acme/app", "--digest", pinDigest, "--path", "base")
	if err != nil || strings.TrimSpace(out) != "base/deployment.yaml" {
		t.Fatalf("out %q err %v", out, err)
	}
	if stat := s.Git(dir, "diff", "--numstat"); stat != "1\t1\tbase/deployment.yaml" {
		t.Fatalf("git diff --numstat = %q, want one line changed", stat)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "base/deployment.yaml"))
	if !strings.Contains(string(got), "image: ghcr.io/acme/app@"+pinDigest+" # the app") ||
		!strings.Contains(string(got), `note: "was ghcr.io/acme/app:v1"`) {
		t.Fatalf("file:\n%s", got)
	}

	out, err = runPinCommand(t, "--dir", dir, "--image", "ghcr.io/acme/app", "--digest", pinDigest, "--path", "base")
	if err != nil || strings.TrimSpace(out) != "already pinned" {
		t.Fatalf("second run: out %q err %v", out, err)
	}

	out, err = runPinCommand(t, "--dir", dir, "--image", "ghcr.io/acme/app", "--digest", pinDigest,
		"--helm-values", "overlays/prod/values.yaml", "--key", "app.image")
	if err != nil || strings.TrimSpace(out) != "overlays/prod/values.yaml" {
		t.Fatalf("helm: out %q err %v", out, err)
	}
	got, _ = os.ReadFile(filepath.Join(dir, "overlays/prod/values.yaml"))
	// The tag stays for people (charts that take both run the digest); only the digest line is added.
	if want := "app:\n  image:\n    repository: ghcr.io/acme/app\n    tag: v1\n    digest: " + pinDigest + "\n"; string(got) != want {
		t.Fatalf("values:\n%s\nwant:\n%s", got, want)
	}
}

func TestPinCommandKustomization(t *testing.T) {
	_, dir := checkout(t, map[string]string{
		"envs/prod/kustomization.yaml": "resources: [../../base]\nimages:\n- name: ghcr.io/acme/app\n  newTag: v1\n",
		"base/deployment.yaml":         deployment,
	})
	out, err := runPinCommand(t, "--dir", dir, "--image", "ghcr.io/acme/app:v2", "--digest", pinDigest, "--path", "envs/prod")
	if err != nil || strings.TrimSpace(out) != "envs/prod/kustomization.yaml" {
		t.Fatalf("out %q err %v", out, err)
	}
	base, _ := os.ReadFile(filepath.Join(dir, "base/deployment.yaml"))
	if string(base) != deployment {
		t.Fatal("the base manifest changed although the kustomization carries the pin")
	}
}

func TestPinCommandErrors(t *testing.T) {
	files := map[string]string{
		"bad/deployment.yaml":  "kind: Deployment\nspec:\n  template: {spec: {containers: [{image: ghcr.io/acme/app:v1}]}}\n  replicas: : 2\n",
		"good/deployment.yaml": deployment,
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"malformed YAML", []string{"--path", "."}, "bad/deployment.yaml:4:"},
		{"image not found", []string{"--path", "good", "--image", "ghcr.io/acme/other"}, "image ghcr.io/acme/other not found"},
		{"bad digest", []string{"--path", "good", "--digest", "sha256:nothex"}, "--digest"},
		{"missing path", []string{"--path", "nowhere"}, "path nowhere not found"},
		{"helm key without file", []string{"--key", "a.b"}, "--helm-values and --key go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := checkout(t, files)
			args := append([]string{"--dir", dir, "--image", "ghcr.io/acme/app", "--digest", pinDigest}, tt.args...)
			out, err := runPinCommand(t, args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("out %q err %v, want %q", out, err, tt.want)
			}
			if status := s.Git(dir, "status", "--porcelain"); status != "" {
				t.Fatalf("files changed on error:\n%s", status)
			}
		})
	}
}
