package pin

import (
	"strings"
	"testing"
)

// Pinning a values file keeps every comment and the tag; only the digest changes, or is added next to the tag.
func TestHelmValuesKeepsCommentsAndTag(t *testing.T) {
	tests := []struct {
		name, key, in, want string
		tgt                 Target
	}{{
		name: "tag with a comment",
		key:  "image",
		tgt:  target("ghcr.io/acme/app"),
		in: "# shop values\nimage:\n  # where the shop comes from\n  repository: ghcr.io/acme/app # source\n" +
			"  tag: v1.4.2 # kept for humans\n  pullPolicy: IfNotPresent\n# end\n",
		want: "# shop values\nimage:\n  # where the shop comes from\n  repository: ghcr.io/acme/app # source\n" +
			"  tag: v1.4.2 # kept for humans\n  digest: " + d2 + "\n  pullPolicy: IfNotPresent\n# end\n",
	}, {
		name: "digest replaced, tag and comments untouched",
		key:  "app.image",
		tgt:  target("ghcr.io/acme/app"),
		in:   "app:\n  image:\n    repository: ghcr.io/acme/app\n    digest: " + d1 + " # pinned by Ferry\n    tag: v1 # human\n",
		want: "app:\n  image:\n    repository: ghcr.io/acme/app\n    digest: " + d2 + " # pinned by Ferry\n    tag: v1 # human\n",
	}, {
		name: "empty digest key filled",
		key:  "image",
		tgt:  target("ghcr.io/acme/app"),
		in:   "image:\n  repository: ghcr.io/acme/app\n  digest:\n  tag: v1\n",
		want: "image:\n  repository: ghcr.io/acme/app\n  digest: " + d2 + "\n  tag: v1\n",
	}, {
		name: "tag last in the file without a newline",
		key:  "image",
		tgt:  target("ghcr.io/acme/app"),
		in:   "image:\n  repository: ghcr.io/acme/app\n  tag: v1",
		want: "image:\n  repository: ghcr.io/acme/app\n  tag: v1\n  digest: " + d2,
	}, {
		name: "flow map",
		key:  "image",
		tgt:  target("ghcr.io/acme/app"),
		in:   "image: {repository: ghcr.io/acme/app, tag: v1} # inline\n",
		want: "image: {repository: ghcr.io/acme/app, tag: v1, digest: " + d2 + "} # inline\n",
	}, {
		name: "moved to another registry, tag kept",
		key:  "image",
		tgt:  Target{Image: "ghcr.io/acme/app", NewImage: "prod.example.com/acme/app", Digest: d2},
		in:   "image:\n  registry: ghcr.io # moved by Ferry\n  repository: acme/app\n  tag: v1\n",
		want: "image:\n  registry: prod.example.com # moved by Ferry\n  repository: acme/app\n  tag: v1\n  digest: " + d2 + "\n",
	}, {
		name: "string: comments kept, the tag becomes the digest",
		key:  "image",
		tgt:  target("ghcr.io/acme/app"),
		in:   "# the image\nimage: ghcr.io/acme/app:v1.4.2 # kept for humans\n",
		want: "# the image\nimage: ghcr.io/acme/app@" + d2 + " # kept for humans\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkHelmPin(t, tt.key, tt.in, tt.want, tt.tgt) })
	}
}

// checkHelmPin pins tgt at key in the values in, expects want, and expects pinning the result again to change
// nothing.
func checkHelmPin(t *testing.T, key, in, want string, tgt Target) {
	t.Helper()
	res, err := HelmValues("values.yaml", []byte(in), key, tgt)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Output) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", res.Output, want)
	}
	again, err := HelmValues("values.yaml", res.Output, key, tgt)
	if err != nil || again.Changed {
		t.Fatalf("pinning again: changed=%v err=%v", again.Changed, err)
	}
}

// The previous digest is reported, from either shape.
func TestHelmValuesPreviousDigest(t *testing.T) {
	for in, key := range map[string]string{
		"image:\n  repository: ghcr.io/acme/app\n  tag: v1\n  digest: " + d1 + "\n": "image",
		"image: ghcr.io/acme/app@" + d1 + "\n":                                      "image",
	} {
		res, err := HelmValues("values.yaml", []byte(in), key, target("ghcr.io/acme/app"))
		if err != nil || res.PreviousDigest != d1 || !strings.Contains(string(res.Output), d2) {
			t.Errorf("%q: previous %q, err %v, output:\n%s", in, res.PreviousDigest, err, res.Output)
		}
	}
}
