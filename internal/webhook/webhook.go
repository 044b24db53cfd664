// Package webhook receives registry push notifications, so that a new digest is promoted at once instead of at
// the next poll, and forge events (Gitea, GitHub, GitLab: a pull request merged or closed, a branch pushed), so
// that an approval is acted on at once instead of at the next approval poll. It only learns where something
// changed: nothing in a notification is trusted beyond that, since the reconciler reads the registry and asks
// the forge itself. It knows nothing of Promotions.
//
// The endpoints face registries and forges, so they are built to be left on the network: every caller proves a
// shared secret (a bearer token, an HMAC signature of the body, or GitLab's secret token), the server bounds what
// one caller can hold (timeouts, body size, connections), a flood for one repository wakes the controller once
// per interval, and a replica that is not the leader, or whose controller has too many wake-ups waiting, refuses
// with 503 and Retry-After instead of accepting what it would drop.
package webhook

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// distributionEnvelope is the notification format of the CNCF distribution registry (and registries built on
// it): a batch of events, of which pushes of manifests matter.
type distributionEnvelope struct {
	Events []struct {
		Action string `json:"action"`
		Target struct {
			MediaType  string `json:"mediaType"`
			Repository string `json:"repository"`
		} `json:"target"`
		Request struct {
			Host string `json:"host"`
		} `json:"request"`
	} `json:"events"`
}

// genericPush is a minimal format for anything else (a CI step, another registry's adapter):
// {"repository": "registry.example.com/team/app"}.
type genericPush struct {
	Repository string `json:"repository"`
}

// Parse returns the repositories a notification says were pushed to, deduplicated, in the order first seen.
func Parse(body []byte) ([]string, error) {
	var env distributionEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("notification is not JSON: %w", err)
	}
	var repos []string
	if env.Events != nil {
		for _, ev := range env.Events {
			if ev.Action != "push" || ev.Target.Repository == "" || ev.Request.Host == "" {
				continue
			}
			repos = append(repos, ev.Request.Host+"/"+ev.Target.Repository)
		}
	} else {
		var g genericPush
		if err := json.Unmarshal(body, &g); err != nil || g.Repository == "" {
			return nil, errors.New(`notification has neither "events" (distribution) nor "repository"`)
		}
		repos = append(repos, g.Repository)
	}
	return normalise(repos)
}

// normalise parses each repository so that "docker.io/library/x" and "x" compare equal, and drops repeats.
func normalise(repos []string) ([]string, error) {
	seen := map[string]bool{}
	out := make([]string, 0, len(repos))
	for _, r := range repos {
		n, err := Normalise(r)
		if err != nil {
			return nil, err
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// Normalise gives the canonical "registry/path" form of a repository name, for matching notifications
// against Promotions' source images.
func Normalise(repository string) (string, error) {
	r, err := name.NewRepository(repository)
	if err != nil {
		return "", fmt.Errorf("repository %q: %w", repository, err)
	}
	return r.Name(), nil
}
