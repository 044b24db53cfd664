package dashboard

import (
	"testing"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

func TestCommitLinksOnlyWhenTheSpecNamesTheForge(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	withPR := func(providers ...ferryv1.SCMProvider) []ferryv1.StageSpec {
		stages := []ferryv1.StageSpec{{Name: "dev"}}
		for _, p := range providers {
			stages = append(stages, ferryv1.StageSpec{Name: string(p), Approval: ferryv1.ApprovalSpec{
				Mode: ferryv1.ApprovalPullRequest, PullRequest: &ferryv1.PullRequestApproval{Provider: p}}})
		}
		return stages
	}
	for _, tc := range []struct {
		name, url string
		stages    []ferryv1.StageSpec
		want      string
	}{
		{"github", "https://github.com/acme/deploy.git", withPR(ferryv1.ProviderGitHub), "https://github.com/acme/deploy/commit/" + sha},
		{"gitlab", "https://gitlab.example.com/group/sub/deploy", withPR(ferryv1.ProviderGitLab), "https://gitlab.example.com/group/sub/deploy/-/commit/" + sha},
		{"gitea on loopback", "http://127.0.0.1:3000/acme/deploy.git/", withPR(ferryv1.ProviderGitea), "http://127.0.0.1:3000/acme/deploy/commit/" + sha},
		{"credentials dropped", "https://ferry:hunter2@github.com/acme/deploy.git", withPR(ferryv1.ProviderGitHub), "https://github.com/acme/deploy/commit/" + sha},
		{"no forge named", "https://github.com/acme/deploy.git", withPR(), ""},
		{"two forges", "https://github.com/acme/deploy.git", withPR(ferryv1.ProviderGitHub, ferryv1.ProviderGitLab), ""},
		{"ssh", "ssh://git@github.com/acme/deploy.git", withPR(ferryv1.ProviderGitHub), ""},
		{"scp-like", "git@github.com:acme/deploy.git", withPR(ferryv1.ProviderGitHub), ""},
		{"no repository path", "https://github.com/", withPR(ferryv1.ProviderGitHub), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &ferryv1.Promotion{Spec: ferryv1.PromotionSpec{Git: ferryv1.GitSpec{URL: tc.url}, Stages: tc.stages}}
			got := ""
			if link := commitLinker(p); link != nil {
				got = link(sha)
				if bad := link("not-a-sha\"><script>"); bad != "" {
					t.Errorf("a malformed SHA got a link: %s", bad)
				}
			}
			if got != tc.want {
				t.Errorf("link = %q, want %q", got, tc.want)
			}
		})
	}
}
