package dashboard

import (
	"net/url"
	"regexp"
	"strings"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

var commitSHA = regexp.MustCompile(`^[0-9a-f]{7,64}$`)

// commitLinker returns how to link a commit of the Promotion's Git repository to its forge's web page, or nil
// when the spec does not say enough to build a link honestly: the repository must be an http(s) URL, and the
// stages that open pull requests must all name the same forge (spec.stages[].approval.pullRequest.provider),
// which decides the page's path. Credentials in the URL are never shown.
func commitLinker(p *ferryv1.Promotion) func(sha string) string {
	provider := forgeOf(p)
	if provider == "" {
		return nil
	}
	u, err := url.Parse(p.Spec.Git.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil
	}
	base := url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), ".git")}
	if strings.Trim(base.Path, "/") == "" {
		return nil
	}
	page := "/commit/"
	if provider == ferryv1.ProviderGitLab {
		page = "/-/commit/"
	}
	return func(sha string) string {
		if !commitSHA.MatchString(sha) {
			return ""
		}
		return base.String() + page + sha
	}
}

// forgeOf is the one forge the Promotion's stages name, or "" when none or several do.
func forgeOf(p *ferryv1.Promotion) ferryv1.SCMProvider {
	var provider ferryv1.SCMProvider
	for _, s := range p.Spec.Stages {
		pr := s.Approval.PullRequest
		if pr == nil {
			continue
		}
		switch {
		case provider == "":
			provider = pr.Provider
		case provider != pr.Provider:
			return ""
		}
	}
	switch provider {
	case ferryv1.ProviderGitHub, ferryv1.ProviderGitea, ferryv1.ProviderGitLab:
		return provider
	}
	return ""
}
