package publish

import (
	"testing"
)

// FuzzSetImageValues feeds values files of any shape: SetImageValues either sets both values (checked by parsing
// the result again) or refuses, and never panics.
func FuzzSetImageValues(f *testing.F) {
	for _, seed := range []string{
		"image:\n  repository: ghcr.io/x/y # c\n  digest: \"\"\n",
		"image:\n  repository: 'a''b'\n  digest: ''\n",
		"image: {repository: a, digest: b}\n",
		"# é\nimage:\n  repository: \"é\" # ü\n  digest: \"\\\"\"\n",
		"image:\n  repository: |\n    multi\n  digest: x\n",
		"",
	} {
		f.Add(seed)
	}
	const repo, digest = "127.0.0.1:5000/ferry-controller", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	f.Fuzz(func(t *testing.T, values string) {
		out, err := SetImageValues([]byte(values), repo, digest)
		if err != nil {
			return
		}
		for key, want := range map[string]string{"repository": repo, "digest": digest} {
			n, err := imageValue(out, key)
			if err != nil || n.Value != want {
				t.Fatalf("accepted, but image.%s is not %s in:\n%s", key, want, out)
			}
		}
	})
}
