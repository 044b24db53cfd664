package scm

import (
	"net/url"
	"strings"
)

// CommitURL is the web page of commit sha in the repository at gitURL, on the forge cfg talks to, or "" when that
// page cannot be named with confidence: the Git URL must be on the forge's own host (github.com and gitlab.com
// when cfg has no API URL), the repository path must be owner/name (GitLab: groups allowed) and sha a full hex
// commit. Nothing is fetched; the page is where the forge shows commits ("/commit/<sha>", GitLab "/-/commit/<sha>").
func CommitURL(cfg Config, gitURL, sha string) string {
	root := webRoot(cfg)
	if root == nil || !shaPattern.MatchString(sha) {
		return ""
	}
	host, repo := gitHostAndPath(gitURL)
	if host == "" || !strings.EqualFold(host, root.Hostname()) {
		return ""
	}
	if _, err := validateRepo(repo, cfg.Provider == "gitlab"); err != nil {
		return ""
	}
	segment := "/commit/"
	if cfg.Provider == "gitlab" {
		segment = "/-/commit/"
	}
	page := *root
	page.Path = strings.TrimSuffix(root.Path, "/") + "/" + repo + segment + sha
	page.RawPath = ""
	out := page.String()
	if strings.ContainsAny(out, "()<>[] \"'") { // it is put in a Markdown link
		return ""
	}
	return out
}

// webRoot is the forge's web address: the configured root with GitHub Enterprise's "/api/v3" or GitLab's "/api/v4"
// taken off, or github.com / gitlab.com.
func webRoot(cfg Config) *url.URL {
	raw := cfg.APIURL
	switch {
	case raw == "" && cfg.Provider == "github":
		raw = "https://github.com"
	case raw == "" && cfg.Provider == "gitlab":
		raw = "https://gitlab.com"
	case raw == "":
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return nil
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	for _, api := range []string{"/api/v3", "/api/v4"} {
		u.Path = strings.TrimSuffix(u.Path, api)
	}
	u.RawPath, u.Fragment = "", ""
	return u
}

// gitHostAndPath splits a Git URL (https://, http://, ssh:// or scp-like git@host:path) into its host and the
// repository path without ".git".
func gitHostAndPath(gitURL string) (host, path string) {
	if u, err := url.Parse(gitURL); err == nil && u.Host != "" {
		host, path = u.Hostname(), u.Path
	} else if at, colon := strings.Index(gitURL, "@"), strings.Index(gitURL, ":"); at >= 0 && colon > at {
		host, path = gitURL[at+1:colon], gitURL[colon+1:]
	} else {
		return "", ""
	}
	return host, strings.TrimSuffix(strings.Trim(path, "/"), ".git")
}
