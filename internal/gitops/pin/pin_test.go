package pin

import (
	"errors"
	"strings"
	"testing"
)

const (
	d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func target(image string) Target { return Target{Image: image, Digest: d2} }

func TestKustomization(t *testing.T) {
	tests := []struct {
		name, in, want string
		tgt            Target
	}{{
		name: "newTag becomes digest in place, comments kept",
		tgt:  target("ghcr.io/acme/app"),
		in: `# top comment
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [deploy.yaml]   # trailing
images:
  - name: ghcr.io/acme/other
    newTag: v9
  - name: ghcr.io/acme/app  # the app
    newTag: v1 # old tag
`,
		want: `# top comment
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [deploy.yaml]   # trailing
images:
  - name: ghcr.io/acme/other
    newTag: v9
  - name: ghcr.io/acme/app  # the app
    digest: ` + d2 + ` # old tag
`,
	}, {
		name: "digest replaced and newTag line dropped",
		tgt:  target("ghcr.io/acme/app"),
		in:   "images:\n- name: ghcr.io/acme/app\n  newTag: v1\n  digest: " + d1 + "\n",
		want: "images:\n- name: ghcr.io/acme/app\n  digest: " + d2 + "\n",
	}, {
		name: "newTag first on the entry line is renamed, digest line dropped",
		tgt:  target("ghcr.io/acme/app"),
		in:   "images:\n- newTag: v1\n  name: ghcr.io/acme/app\n  digest: " + d1 + "\n",
		want: "images:\n- digest: " + d2 + "\n  name: ghcr.io/acme/app\n",
	}, {
		name: "digest and newName inserted after name",
		tgt:  Target{Image: "ghcr.io/acme/app", NewImage: "registry.prod/acme/app", Digest: d2},
		in:   "images:\n  - name: ghcr.io/acme/app\n    # keep me\nresources: []\n",
		want: "images:\n  - name: ghcr.io/acme/app\n    newName: registry.prod/acme/app\n    digest: " + d2 + "\n    # keep me\nresources: []\n",
	}, {
		name: "placeholder name matched through newName",
		tgt:  target("ghcr.io/acme/app"),
		in:   "images:\n- name: app\n  newName: ghcr.io/acme/app\n  newTag: \"1.2\"\n",
		want: "images:\n- name: app\n  newName: ghcr.io/acme/app\n  digest: \"" + d2 + "\"\n",
	}, {
		name: "flow entry",
		tgt:  target("ghcr.io/acme/app"),
		in:   "images: [{name: ghcr.io/acme/app}]\n",
		want: "images: [{name: ghcr.io/acme/app, digest: " + d2 + "}]\n",
	}, {
		name: "docker hub short name matches",
		tgt:  target("docker.io/library/nginx"),
		in:   "images:\n- name: nginx\n  newTag: \"1.25\"\n",
		want: "images:\n- name: nginx\n  digest: \"" + d2 + "\"\n",
	}, {
		name: "CRLF line endings kept",
		tgt:  target("ghcr.io/acme/app"),
		in:   "images:\r\n- name: ghcr.io/acme/app\r\nresources: []\r\n",
		want: "images:\r\n- name: ghcr.io/acme/app\r\n  digest: " + d2 + "\r\nresources: []\r\n",
	}, {
		name: "no trailing newline",
		tgt:  target("ghcr.io/acme/app"),
		in:   "images:\n- name: ghcr.io/acme/app",
		want: "images:\n- name: ghcr.io/acme/app\n  digest: " + d2,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Kustomization("kustomization.yaml", []byte(tt.in), tt.tgt)
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Output) != tt.want {
				t.Fatalf("got:\n%s\nwant:\n%s", res.Output, tt.want)
			}
			if !res.Changed || res.Matched != 1 {
				t.Fatalf("changed=%v matched=%d", res.Changed, res.Matched)
			}
			again, err := Kustomization("kustomization.yaml", res.Output, tt.tgt)
			if err != nil || again.Changed {
				t.Fatalf("second pin: changed=%v err=%v, want already pinned", again.Changed, err)
			}
		})
	}
}

func TestKustomizationPreviousDigestAndNotFound(t *testing.T) {
	in := "images:\n- name: ghcr.io/acme/app\n  digest: " + d1 + "\n"
	res, err := Kustomization("k.yaml", []byte(in), target("ghcr.io/acme/app"))
	if err != nil || res.PreviousDigest != d1 || len(res.Lines) != 1 || res.Lines[0] != 3 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	_, err = Kustomization("k.yaml", []byte(in), target("ghcr.io/acme/missing"))
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "image ghcr.io/acme/missing not found in k.yaml") {
		t.Fatalf("err = %v", err)
	}
}

const manifests = `# leading comment
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  annotations:
    image: ghcr.io/acme/app:v1
data:
  image: ghcr.io/acme/app:v1
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  annotations: {note: "ghcr.io/acme/app:v1"}
spec:
  template:
    spec:
      initContainers:
        - name: migrate
          image: "ghcr.io/acme/app:v1"   # quoted
      containers:
        - name: app
          image: ghcr.io/acme/app:v1 # main
          env:
            - name: IMAGE
              value: ghcr.io/acme/app:v1
        - {name: sidecar, image: ghcr.io/acme/sidecar:v3}
---
kind: CronJob
apiVersion: batch/v1
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: job
            image: 'ghcr.io/acme/app@` + d1 + `'
---
apiVersion: v1
kind: List
items:
- kind: Pod
  spec:
    ephemeralContainers: [{name: debug, image: ghcr.io/acme/app}]
`

func TestManifests(t *testing.T) {
	res, err := Manifests("all.yaml", []byte(manifests), target("ghcr.io/acme/app"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer(
		`image: "ghcr.io/acme/app:v1"   # quoted`, `image: "ghcr.io/acme/app@`+d2+`"   # quoted`,
		`image: ghcr.io/acme/app:v1 # main`, `image: ghcr.io/acme/app@`+d2+` # main`,
		`image: 'ghcr.io/acme/app@`+d1+`'`, `image: 'ghcr.io/acme/app@`+d2+`'`,
		`image: ghcr.io/acme/app}]`, `image: ghcr.io/acme/app@`+d2+`}]`,
	).Replace(manifests)
	if string(res.Output) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", res.Output, want)
	}
	if res.Matched != 4 || res.PreviousDigest != "" || len(res.Lines) != 4 {
		t.Fatalf("matched=%d prev=%q lines=%v", res.Matched, res.PreviousDigest, res.Lines)
	}
	again, err := Manifests("all.yaml", res.Output, target("ghcr.io/acme/app"))
	if err != nil || again.Changed || again.Matched != 4 || again.PreviousDigest != d2 {
		t.Fatalf("second pin: %+v %v", again, err)
	}
}

func TestManifestsNoMatchIsZeroMatches(t *testing.T) {
	res, err := Manifests("cm.yaml", []byte("kind: ConfigMap\ndata:\n  image: ghcr.io/acme/app:v1\n"), target("ghcr.io/acme/app"))
	if err != nil || res.Matched != 0 || res.Changed {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

func TestMalformedYAMLNamesFileAndLine(t *testing.T) {
	_, err := Manifests("bad.yaml", []byte("kind: Pod\nspec:\n  containers:\n  - image: [a\n"), target("a"))
	var se *SyntaxError
	if !errors.As(err, &se) || se.File != "bad.yaml" || se.Line == 0 || !strings.HasPrefix(err.Error(), "bad.yaml:") {
		t.Fatalf("err = %v", err)
	}
}

func TestRefusesAnchorsInsteadOfGuessing(t *testing.T) {
	in := "kind: Pod\nspec:\n  containers:\n  - image: &img ghcr.io/acme/app:v1\n  - image: *img\n"
	if _, err := Manifests("a.yaml", []byte(in), target("ghcr.io/acme/app")); err == nil {
		t.Fatal("anchored image was edited")
	}
}

func TestHelmValues(t *testing.T) {
	tests := []struct {
		name, key, in, want string
		tgt                 Target
	}{{
		name: "string",
		key:  "app.image",
		tgt:  target("ghcr.io/acme/app"),
		in:   "app:\n  # the image\n  image: ghcr.io/acme/app:1.0 # pinned by ferry\n  replicas: 2\n",
		want: "app:\n  # the image\n  image: ghcr.io/acme/app@" + d2 + " # pinned by ferry\n  replicas: 2\n",
	}, {
		name: "map with tag: the tag is kept, the digest added after it",
		key:  "image",
		tgt:  target("ghcr.io/acme/app"),
		in:   "image:\n  repository: ghcr.io/acme/app\n  tag: \"1.0\"\n  pullPolicy: IfNotPresent\n",
		want: "image:\n  repository: ghcr.io/acme/app\n  tag: \"1.0\"\n  digest: " + d2 + "\n  pullPolicy: IfNotPresent\n",
	}, {
		name: "map with tag and digest: the digest is rewritten in place",
		key:  "image",
		tgt:  target("ghcr.io/acme/app"),
		in:   "image:\n  repository: ghcr.io/acme/app\n  tag: \"1.0\"\n  digest: \"\"\n",
		want: "image:\n  repository: ghcr.io/acme/app\n  tag: \"1.0\"\n  digest: \"" + d2 + "\"\n",
	}, {
		name: "map with registry, moved to another registry",
		key:  "image",
		tgt:  Target{Image: "ghcr.io/acme/app", NewImage: "prod.example.com/acme/app", Digest: d2},
		in:   "image:\n  registry: ghcr.io\n  repository: acme/app\n",
		want: "image:\n  registry: prod.example.com\n  repository: acme/app\n  digest: " + d2 + "\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkHelmPin(t, tt.key, tt.in, tt.want, tt.tgt) })
	}
}

func TestHelmValuesErrors(t *testing.T) {
	in := []byte("image:\n  repository: ghcr.io/acme/other\nname: x\n")
	for key, want := range map[string]string{
		"missing.key": "key missing.key not found in values.yaml",
		"image":       `holds repository "ghcr.io/acme/other", not image ghcr.io/acme/app`,
		"name":        `holds "x", not image ghcr.io/acme/app`,
		"a..b":        "not a dotted path",
	} {
		_, err := HelmValues("values.yaml", in, key, target("ghcr.io/acme/app"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("key %s: err = %v, want %q", key, err, want)
		}
	}
}

func TestValidateDigest(t *testing.T) {
	for _, d := range []string{"", "sha256:abc", "sha256:" + strings.Repeat("A", 64), "md5:" + strings.Repeat("a", 64)} {
		if ValidateDigest(d) == nil {
			t.Errorf("digest %q accepted", d)
		}
	}
	if err := ValidateDigest(d1); err != nil {
		t.Error(err)
	}
}
