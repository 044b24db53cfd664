package helmchart

import (
	"regexp"
	"strings"
	"testing"
)

func contains(s, substr string) bool { return strings.Contains(s, substr) }

// containerImages returns every image of every container, init container and ephemeral container in the objects,
// wherever a pod template sits.
func containerImages(o objects) []string {
	var images []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if k == "containers" || k == "initContainers" || k == "ephemeralContainers" {
					if list, ok := child.([]any); ok {
						for _, c := range list {
							if m, ok := c.(map[string]any); ok {
								image, _ := m["image"].(string)
								images = append(images, image)
								images = append(images, reportedImage(m)...)
							}
						}
					}
				}
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	for _, u := range o {
		walk(u.Object)
	}
	return images
}

// reportedImage is the FERRY_IMAGE a container reports as the image it runs (see docs/release.md), if it sets one:
// it must name the same pinned image as the container itself.
func reportedImage(container map[string]any) []string {
	env, _ := container["env"].([]any)
	for _, e := range env {
		if m, ok := e.(map[string]any); ok && m["name"] == "FERRY_IMAGE" {
			value, _ := m["value"].(string)
			return []string{value}
		}
	}
	return nil
}

var byDigest = regexp.MustCompile(`^[^@]+@sha256:[0-9a-f]{64}$`)

// TestEveryImageIsPinnedByDigest: every container the chart runs, with any toggle, is repository@sha256:… from the
// values, never a tag, and the image the controller reports (FERRY_IMAGE) is the same.
func TestEveryImageIsPinnedByDigest(t *testing.T) {
	const repo = "registry.example.com:5000/ferry/ferry-controller"
	const digest = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	for name, sets := range map[string][]string{
		"defaults":       {"image.digest=" + digest},
		"own repository": {"image.repository=" + repo, "image.digest=" + digest},
		"everything on": {"image.repository=" + repo, "image.digest=" + digest, "monitoring.serviceMonitor.enabled=true",
			"monitoring.prometheusRule.enabled=true", "monitoring.dashboard.enabled=true"},
	} {
		t.Run(name, func(t *testing.T) {
			vals := setValues(t, sets...)
			want := "ghcr.io/ferrycd/ferry-controller@" + digest
			if r, ok := vals["image"].(map[string]any)["repository"].(string); ok {
				want = r + "@" + digest
			}
			images := containerImages(render(t, sets...))
			if len(images) < 2 {
				t.Fatalf("images %q: want the controller's and the FERRY_IMAGE it reports", images)
			}
			for _, image := range images {
				if image != want || !byDigest.MatchString(image) {
					t.Errorf("container image %q; want %q", image, want)
				}
			}
		})
	}
}

// TestRenderingRefusesWhatIsNotADigest: without a digest, with a malformed one, with a tag, or with a repository
// that carries a tag or digest, rendering fails with a message naming image.digest.
func TestRenderingRefusesWhatIsNotADigest(t *testing.T) {
	valid := "image.digest=" + testDigest
	for name, sets := range map[string][]string{
		"no digest":                  {},
		"empty digest":               {"image.digest="},
		"a tag as digest":            {"image.digest=v1.2.3"},
		"short digest":               {"image.digest=sha256:0123abcd"},
		"upper-case hex":             {"image.digest=sha256:" + strings.Repeat("AB", 32)},
		"another algorithm":          {"image.digest=sha512:" + strings.Repeat("ab", 32)},
		"a tag beside the digest":    {valid, "image.tag=v1.2.3"},
		"a tag in the repository":    {valid, "image.repository=ghcr.io/ferrycd/ferry-controller:v1.2.3"},
		"a digest in the repository": {valid, "image.repository=ghcr.io/ferrycd/ferry-controller@" + testDigest},
	} {
		t.Run(name, func(t *testing.T) {
			manifest, err := renderChart(t, sets...)
			if err == nil {
				t.Fatalf("rendered with %v:\n%s", sets, firstLines(manifest, 5))
			}
			if !contains(err.Error(), "image.digest") {
				t.Errorf("the error does not name image.digest: %v", err)
			}
		})
	}
}

// TestUnknownValuesAreRefused: a value the chart does not act on (a typo, a key from another chart) fails the
// render instead of being ignored.
func TestUnknownValuesAreRefused(t *testing.T) {
	for _, set := range []string{"replica=3", "image.digets=" + testDigest, "monitoring.serviceMonitor.enable=true",
		"auditWebhook.certificate.source=vault", "logLevel=trace", "watchNamespaces={Not_A_Namespace}"} {
		t.Run(set, func(t *testing.T) {
			if _, err := renderChart(t, withDigest(set)...); err == nil {
				t.Errorf("--set %s was accepted", set)
			}
		})
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
