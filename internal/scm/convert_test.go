package scm

import (
	"encoding/json"
	"testing"

	"code.gitea.io/sdk/gitea"
	"github.com/google/go-github/v89/github"
	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// FuzzProviderResponses decodes arbitrary JSON into each SDK's pull request type, as the SDKs do
// with a forge's answer, and runs the conversions written here: missing or null nested objects must
// not panic, and merge details must only appear on merged pull requests.
func FuzzProviderResponses(f *testing.F) {
	f.Add([]byte(`{"number":1,"state":"open","head":{"ref":"ferry/a/b/0123456789ab"},"labels":[{"name":"ferry"}]}`))
	f.Add([]byte(`{"number":2,"state":"closed","merged":true,"merged_by":null,"merge_commit_sha":"abc","merged_at":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"iid":3,"state":"merged","merge_user":null,"merged_by":{"username":"x"},"sha":"def","reviewers":[null]}`))
	f.Add([]byte(`{"index":4,"state":"closed","merged":false,"merge_commit_sha":"x","head":null,"requested_reviewers":[null,{"login":"u"}]}`))
	f.Add([]byte(`{"state":"locked","labels":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out []PullRequest
		var gt gitea.PullRequest
		if json.Unmarshal(data, &gt) == nil {
			out = append(out, fromGitea(&gt))
		}
		var gh github.PullRequest
		if json.Unmarshal(data, &gh) == nil {
			out = append(out, fromGitHub(&gh))
		}
		var gl gitlab.BasicMergeRequest
		if json.Unmarshal(data, &gl) == nil {
			out = append(out, fromGitLab(&gl))
		}
		for _, pr := range out {
			switch pr.State {
			case StateOpen, StateClosed, StateMerged:
			default:
				t.Fatalf("state %q", pr.State)
			}
			if pr.State != StateMerged && (pr.MergeCommitSHA != "" || pr.MergedBy != "" || !pr.MergedAt.IsZero()) {
				t.Fatalf("merge details on a %s pull request: %+v", pr.State, pr)
			}
			if pr.Approved() && pr.Rejected() {
				t.Fatalf("approved and rejected: %+v", pr)
			}
		}
	})
}
