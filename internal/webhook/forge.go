package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Forge names a forge whose webhooks Ferry takes; it is the last element of the forge endpoint's path.
type Forge string

// The forges whose webhooks Ferry takes.
const (
	ForgeGitea  Forge = "gitea"
	ForgeGitHub Forge = "github"
	ForgeGitLab Forge = "gitlab"
)

// Forges lists the forges in the order the docs name them.
var Forges = []Forge{ForgeGitea, ForgeGitHub, ForgeGitLab}

// ForgePathPrefix is where forges post: ForgePathPrefix + "gitea", "github" or "gitlab".
const ForgePathPrefix = "/hooks/forge/"

// ForgeChange is what a forge event tells Ferry: in which repository and on which branch a pull request was
// closed (merged or not), or a branch was pushed to. It is a hint of where to look, nothing more: the reconciler
// asks the forge itself whether the pull request is merged and reads the merge from Git.
type ForgeChange struct {
	// Repository is the repository's path on the forge, lower case: "owner/name", or "group/sub/name" on GitLab.
	Repository string
	// Branch is the pull request's base branch, or the branch pushed to.
	Branch string
	// PullRequest is the number of the pull request closed or merged; 0 for a push.
	PullRequest int64
}

// maxNameBytes bounds a repository path or branch name taken from an event; forges allow far less.
const maxNameBytes = 1024

// ParseForgeEvent reads an event of forge, named by its event header (X-Gitea-Event, X-GitHub-Event or
// X-Gitlab-Event). relevant is false for what Ferry does not act on (a ping, an opened or edited pull request, a
// tag pushed); err names what is wrong with an event Ferry would act on but cannot read.
func ParseForgeEvent(forge Forge, event string, body []byte) (change ForgeChange, relevant bool, err error) {
	switch forge {
	case ForgeGitea, ForgeGitHub:
		return parseGitHubStyle(event, body)
	case ForgeGitLab:
		return parseGitLab(event, body)
	}
	return ForgeChange{}, false, fmt.Errorf("unknown forge %q", forge)
}

// githubStyleEvent holds the fields Ferry reads of GitHub's and Gitea's pull_request and push events (Gitea's
// payloads follow GitHub's for these fields).
type githubStyleEvent struct {
	Action      string `json:"action"`
	Number      int64  `json:"number"`
	Ref         string `json:"ref"`
	PullRequest *struct {
		Number int64 `json:"number"`
		Merged bool  `json:"merged"`
		Base   struct {
			Ref string `json:"ref"`
		} `json:"base"`
	} `json:"pull_request"`
	Repository struct {
		FullName string `json:"full_name"`
		CloneURL string `json:"clone_url"`
	} `json:"repository"`
}

func parseGitHubStyle(event string, body []byte) (ForgeChange, bool, error) {
	if event != "pull_request" && event != "push" {
		return ForgeChange{}, false, nil // ping, issues, …: nothing to look at
	}
	var ev githubStyleEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return ForgeChange{}, false, fmt.Errorf("%s event is not JSON (set the webhook's content type to application/json): %w", event, err)
	}
	repo, err := repositoryPath(ev.Repository.FullName, ev.Repository.CloneURL)
	if err != nil {
		return ForgeChange{}, false, err
	}
	if event == "push" {
		return pushChange(repo, ev.Ref)
	}
	if ev.PullRequest == nil {
		return ForgeChange{}, false, errors.New(`pull_request event without "pull_request"`)
	}
	if ev.Action != "closed" {
		return ForgeChange{}, false, nil // opened, edited, synchronized, labelled: the approval is still open
	}
	number := ev.PullRequest.Number
	if number == 0 {
		number = ev.Number
	}
	return pullRequestChange(repo, ev.PullRequest.Base.Ref, number)
}

// gitlabEvent holds the fields Ferry reads of GitLab's "Merge Request Hook" and "Push Hook" events.
type gitlabEvent struct {
	ObjectKind string `json:"object_kind"`
	Ref        string `json:"ref"`
	Project    struct {
		PathWithNamespace string `json:"path_with_namespace"`
		GitHTTPURL        string `json:"git_http_url"`
	} `json:"project"`
	ObjectAttributes *struct {
		IID          int64  `json:"iid"`
		TargetBranch string `json:"target_branch"`
		State        string `json:"state"`
		Action       string `json:"action"`
	} `json:"object_attributes"`
}

// GitLab's event header values Ferry acts on.
const (
	gitlabMergeRequestHook = "Merge Request Hook"
	gitlabPushHook         = "Push Hook"
)

func parseGitLab(event string, body []byte) (ForgeChange, bool, error) {
	if event != gitlabMergeRequestHook && event != gitlabPushHook {
		return ForgeChange{}, false, nil
	}
	var ev gitlabEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return ForgeChange{}, false, fmt.Errorf("%s is not JSON: %w", event, err)
	}
	repo, err := repositoryPath(ev.Project.PathWithNamespace, ev.Project.GitHTTPURL)
	if err != nil {
		return ForgeChange{}, false, err
	}
	if event == gitlabPushHook {
		return pushChange(repo, ev.Ref)
	}
	mr := ev.ObjectAttributes
	if mr == nil {
		return ForgeChange{}, false, errors.New(`merge request event without "object_attributes"`)
	}
	closed := mr.Action == "merge" || mr.Action == "close" || mr.State == "merged" || mr.State == "closed"
	if !closed {
		return ForgeChange{}, false, nil
	}
	return pullRequestChange(repo, mr.TargetBranch, mr.IID)
}

// pushChange is a push to ref; a tag pushed is not relevant.
func pushChange(repo, ref string) (ForgeChange, bool, error) {
	branch, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok {
		if strings.HasPrefix(ref, "refs/") {
			return ForgeChange{}, false, nil // a tag or another namespace
		}
		return ForgeChange{}, false, fmt.Errorf("push event with ref %q, want refs/heads/<branch>", cut(ref))
	}
	if err := checkName("branch", branch); err != nil {
		return ForgeChange{}, false, err
	}
	return ForgeChange{Repository: repo, Branch: branch}, true, nil
}

func pullRequestChange(repo, base string, number int64) (ForgeChange, bool, error) {
	if number <= 0 {
		return ForgeChange{}, false, fmt.Errorf("pull request number %d: want a positive number", number)
	}
	if err := checkName("base branch", base); err != nil {
		return ForgeChange{}, false, err
	}
	return ForgeChange{Repository: repo, Branch: base, PullRequest: number}, true, nil
}

// repositoryPath is the repository's path on the forge, lower case: fullName ("owner/name"), else the path of
// cloneURL without ".git".
func repositoryPath(fullName, cloneURL string) (string, error) {
	p := fullName
	if p == "" && cloneURL != "" {
		u, err := url.Parse(cloneURL)
		if err != nil {
			return "", fmt.Errorf("repository clone URL %q: %w", cut(cloneURL), err)
		}
		p = strings.TrimSuffix(u.Path, ".git")
	}
	p = strings.ToLower(strings.Trim(p, "/"))
	if err := checkName("repository", p); err != nil {
		return "", err
	}
	if !strings.Contains(p, "/") {
		return "", fmt.Errorf("repository %q does not name an owner and a repository", p)
	}
	return p, nil
}

// checkName refuses an empty, oversized or unprintable name.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("event names no %s", what)
	}
	if len(s) > maxNameBytes {
		return fmt.Errorf("%s longer than %d bytes", what, maxNameBytes)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s %q holds a control character", what, cut(s))
		}
	}
	return nil
}

// cut shortens what an error quotes from an event.
func cut(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
