package main

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func startTestRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// runFerry runs the CLI in-process, as a user would invoke it.
func runFerry(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestCopyCommand(t *testing.T) {
	src := startTestRegistry(t)
	dst := startTestRegistry(t)
	repo, _ := name.NewRepository(src + "/team/app")
	img, err := random.Image(2048, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repo.Tag("v1"), img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	sig, _ := random.Image(64, 1)
	if err := remote.Write(repo.Tag("sha256-"+d.Hex+".sig"), sig); err != nil {
		t.Fatal(err)
	}

	out, err := runFerry(t, "copy", repo.Digest(d.String()).String(), dst+"/prod/app")
	if err != nil {
		t.Fatalf("ferry copy: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if want := dst + "/prod/app@" + d.String(); lines[0] != want {
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	if !strings.Contains(out, "blobs: 6 copied, 0 mounted, 0 already present") || !strings.Contains(out, "signature tags: 1 copied") {
		t.Errorf("summary does not account for the copy:\n%s", out)
	}
	ref, err := name.ParseReference(lines[0])
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Head(ref)
	if err != nil || got.Digest != d {
		t.Fatalf("destination: %v, %v", got, err)
	}

	out, err = runFerry(t, "copy", repo.Digest(d.String()).String(), dst+"/prod/app")
	if err != nil || !strings.Contains(out, "0 B moved") || !strings.Contains(out, "manifests: 0 copied, 2 already present") {
		t.Errorf("second copy: %v\n%s", err, out)
	}
}

func TestCopyCommandRejectsBadInput(t *testing.T) {
	src := startTestRegistry(t)
	dst := startTestRegistry(t)
	repo, _ := name.NewRepository(src + "/app")
	img, _ := random.Image(256, 1)
	if err := remote.Write(repo.Tag("v1"), img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	badConfig := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(badConfig, []byte(`{"auths": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"copy", repo.Tag("v1").String(), dst + "/app"}, "a digest is required"},
		{[]string{"copy", repo.Digest(d.String()).String(), dst + "/app:v1"}, "destination"},
		{[]string{"copy", repo.Digest(d.String()).String()}, "accepts 2 arg(s)"},
		{[]string{"copy", "--docker-config", badConfig, repo.Digest(d.String()).String(), dst + "/app"}, "dockerconfigjson"},
		{[]string{"copy", "--jobs", "0", repo.Digest(d.String()).String(), dst + "/app"}, "--jobs"},
	} {
		out, err := runFerry(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ferry %v: error %v, want %q\n%s", tc.args, err, tc.want, out)
		}
	}
	dstRepo, _ := name.NewRepository(dst + "/app")
	if _, err := remote.Head(dstRepo.Digest(d.String())); err == nil {
		t.Error("a rejected copy wrote to the destination")
	}
	if tags, err := remote.List(dstRepo); err == nil && len(tags) > 0 {
		t.Errorf("a rejected copy created tags %v", tags)
	}
}
