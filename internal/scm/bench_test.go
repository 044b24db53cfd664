package scm

import (
	"context"
	"testing"
)

// BenchmarkGiteaEnsureSettled measures what a reconcile pays while a pull request waits for its
// approver: one EnsurePullRequest against a real Gitea on loopback. Target: no more than 1.5× a bare
// GetPullRequest (BenchmarkGiteaGetPullRequest), i.e. one lookup and no writes; the absolute time is
// Gitea's own and depends on the machine's load.
func BenchmarkGiteaEnsureSettled(b *testing.B) {
	w := newGiteaWorldB(b)
	spec := w.pushedB(b, digestA)
	ctx := context.Background()
	if _, err := w.ferry.EnsurePullRequest(ctx, spec); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := w.ferry.EnsurePullRequest(ctx, spec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGiteaGetPullRequest(b *testing.B) {
	w := newGiteaWorldB(b)
	pr, err := w.ferry.EnsurePullRequest(context.Background(), w.pushedB(b, digestA))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := w.ferry.GetPullRequest(context.Background(), w.repo.FullName(), pr.Number); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBranchName(b *testing.B) {
	for b.Loop() {
		if _, err := BranchName("shop-web", "prod", digestA); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	spec := PullRequestSpec{Repo: "o/r", Base: "main", Head: "ferry/shop-web/prod/0123456789ab", Change: testChange()}
	for b.Loop() {
		if _, _, err := spec.render(false); err != nil {
			b.Fatal(err)
		}
	}
}
