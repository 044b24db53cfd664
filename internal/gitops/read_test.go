package gitops

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestReadFileCurrentDigestAndFindCommit(t *testing.T) {
	s, url := seed(t)
	e := newEngine(t)
	remote := Remote{URL: url, Branch: "main"}
	q := Query{Format: FormatKustomize, Path: "envs/prod", Image: image}

	if d, _, err := e.CurrentDigest(context.Background(), remote, q); err != nil || d != "" {
		t.Fatalf("before any pin: digest %q, err %v", d, err)
	}
	res, err := e.Pin(context.Background(), request(url, "prod", digestA))
	if err != nil {
		t.Fatal(err)
	}
	// A fresh engine reads what the server holds, not what the first engine cached.
	reader := newEngine(t)
	d, sha, err := reader.CurrentDigest(context.Background(), remote, q)
	if err != nil || d != digestA || sha != res.CommitSHA {
		t.Fatalf("current digest %q at %s, err %v", d, sha, err)
	}
	content, _, err := reader.ReadFile(context.Background(), remote, "envs/prod/kustomization.yaml")
	if err != nil || !strings.Contains(string(content), "digest: "+digestA) {
		t.Fatalf("read %q, err %v", content, err)
	}
	if _, _, err := reader.ReadFile(context.Background(), remote, "nope.yaml"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing file: err %v", err)
	}

	s.Commit("fleet", "main", map[string]string{"README.md": "later\n"}, "later")
	c, ok, err := reader.FindCommit(context.Background(), remote, "team-a/app", "prod", digestA)
	if err != nil || !ok || c.SHA != res.CommitSHA || c.Trailers[TrailerStage] != "prod" {
		t.Fatalf("find = %+v %v %v", c, ok, err)
	}
	if _, ok, _ := reader.FindCommit(context.Background(), remote, "team-a/app", "dev", digestA); ok {
		t.Fatal("found a commit for a stage never pinned")
	}
}
