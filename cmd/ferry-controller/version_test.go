package main

import (
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/version"
)

func TestVersionTextReportsTheImageFromTheEnvironment(t *testing.T) {
	const image = "registry.example/ferry-controller@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct{ env, want string }{
		{image, "image: " + image + "\n"},
		{"", "image: unknown\n"},
		{"registry.example/ferry-controller:v1", "image: unknown\n"}, // a tag says nothing about which build runs
	} {
		t.Setenv(version.ImageEnv, tc.env)
		out := versionText(version.Get())
		if !strings.HasPrefix(out, "ferry-controller ") || !strings.HasSuffix(out, tc.want) {
			t.Errorf("FERRY_IMAGE=%q: --version printed %q, want it to end with %q", tc.env, out, tc.want)
		}
	}
}
