package pin

import (
	"bytes"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

func parses(b []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			return err.Error() == "EOF"
		}
	}
}

// FuzzManifests checks on arbitrary YAML that pinning never panics, that its output still parses, that only
// lines holding the pinned reference differ, and that pinning again changes nothing.
func FuzzManifests(f *testing.F) {
	f.Add([]byte(manifests))
	f.Add([]byte("kind: Pod\nspec:\n  containers:\n  - image: ghcr.io/acme/app:v1\n"))
	f.Add([]byte("kind: Deployment\nspec: {template: {spec: {containers: [{image: \"ghcr.io/acme/app\"}]}}}\n"))
	f.Add([]byte("kind: Job\r\nspec:\r\n  template:\r\n    spec:\r\n      containers:\r\n      - image: 'ghcr.io/acme/app:x' #c\r\n"))
	f.Add([]byte("kind: Pod\nspec:\n  containers:\n  - image: ghcr.io/acme/app\n    continued\n"))
	f.Add([]byte("kind: Pod\nspec:\n  containers:\n  - image: |\n      ghcr.io/acme/app\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tgt := target("ghcr.io/acme/app")
		res, err := Manifests("f.yaml", in, tgt)
		if err != nil || !res.Changed {
			return
		}
		if !parses(res.Output) {
			t.Fatalf("output does not parse:\n%s", res.Output)
		}
		before, after := strings.Split(string(in), "\n"), strings.Split(string(res.Output), "\n")
		if len(before) != len(after) {
			t.Fatalf("line count changed from %d to %d", len(before), len(after))
		}
		for i := range before {
			if before[i] != after[i] && !strings.Contains(after[i], tgt.pinned()) {
				t.Fatalf("line %d changed without holding the pin: %q → %q", i+1, before[i], after[i])
			}
		}
		again, err := Manifests("f.yaml", res.Output, tgt)
		if err != nil || again.Changed {
			t.Fatalf("second pin changed=%v err=%v", again.Changed, err)
		}
	})
}

// FuzzKustomization and FuzzHelmValues check that an edit never breaks the file and that it converges.
func FuzzKustomization(f *testing.F) {
	f.Add([]byte("images:\n- name: ghcr.io/acme/app\n  newTag: v1\n"))
	f.Add([]byte("images:\n- newTag: v1\n  name: ghcr.io/acme/app\n  digest: x\n"))
	f.Add([]byte("images: [{name: ghcr.io/acme/app, newTag: v1}]\n"))
	f.Add([]byte("images:\n- name: ghcr.io/acme/app\n  newTag:\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkConverges(t, in, func(b []byte) (Result, error) { return Kustomization("k.yaml", b, target("ghcr.io/acme/app")) })
	})
}

// FuzzHelmValues also checks that a values file keeps every line it had: the tag and every comment stay, only the
// lines holding the image change, and a map keeps its tag's value.
func FuzzHelmValues(f *testing.F) {
	f.Add([]byte("image:\n  repository: ghcr.io/acme/app\n  tag: v1\n"), "image")
	f.Add([]byte("a:\n  b: ghcr.io/acme/app:v1\n"), "a.b")
	f.Add([]byte("image: {registry: ghcr.io, repository: acme/app, tag: v1}\n"), "image")
	f.Add([]byte("image:\n  repository: ghcr.io/acme/app # c\n  tag: v1.4.2 # kept for humans\n  digest:\n"), "image")
	f.Add([]byte("image:\n  digest: \"\"\n  repository: ghcr.io/acme/app\n  tag: 'v1'\n"), "image")
	f.Add([]byte("image:\r\n  repository: ghcr.io/acme/app\r\n  tag: v1"), "image")
	f.Fuzz(func(t *testing.T, in []byte, key string) {
		pinIt := func(b []byte) (Result, error) { return HelmValues("v.yaml", b, key, target("ghcr.io/acme/app")) }
		checkConverges(t, in, pinIt)
		res, err := pinIt(in)
		if err != nil || !res.Changed {
			return
		}
		checkLinesKept(t, in, res.Output)
		if before, ok := helmTag(in, key); ok {
			if after, _ := helmTag(res.Output, key); after != before {
				t.Fatalf("tag %q became %q", before, after)
			}
		}
	})
}

// checkLinesKept fails unless every line of in is in out, or holds one of the image's parts Ferry rewrites.
func checkLinesKept(t *testing.T, in, out []byte) {
	t.Helper()
	left := map[string]int{}
	for _, l := range strings.Split(string(out), "\n") {
		left[strings.TrimSuffix(l, "\r")]++
	}
	for i, l := range strings.Split(string(in), "\n") {
		l = strings.TrimSuffix(l, "\r")
		if left[l] > 0 {
			left[l]--
			continue
		}
		if !strings.Contains(l, "digest") && !strings.Contains(l, "ghcr.io") && !strings.Contains(l, "acme/app") {
			t.Fatalf("line %d %q is gone:\n%s", i+1, l, out)
		}
	}
}

// helmTag is the tag of the map at key, when there is one.
func helmTag(src []byte, key string) (string, bool) {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil {
		return "", false
	}
	node := rootMapping(&doc)
	for _, p := range strings.Split(key, ".") {
		if _, node = lookup(node, p); node == nil {
			return "", false
		}
	}
	return scalarValue(node, "tag")
}

func checkConverges(t *testing.T, in []byte, pin func([]byte) (Result, error)) {
	res, err := pin(in)
	if err != nil || !res.Changed {
		return
	}
	if !parses(res.Output) {
		t.Fatalf("output does not parse:\n%s", res.Output)
	}
	again, err := pin(res.Output)
	if err != nil || again.Changed {
		t.Fatalf("second pin changed=%v err=%v", again.Changed, err)
	}
}
