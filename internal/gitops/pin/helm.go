package pin

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// HelmValues pins the image at a dotted key path (e.g. "app.image") of a Helm values file. Two shapes are
// understood:
//   - a string: it becomes "repository@sha256:…". A tag in it is dropped: the string is the reference the workload
//     runs, and a tag beside the digest there would show as what runs while the digest decides;
//   - a map in the common chart convention {registry?, repository, tag?, digest?}: `digest` is set (rewritten in
//     place, or added on the line after `tag`, else after `repository`), and `repository` (and `registry` when
//     present) are rewritten only when the image moved to another repository. Everything else stays as written —
//     the tag, comments, other keys — so the chart's templates must prefer `digest` when it is set; Ferry's Helm
//     renderer refuses a chart whose rendered containers do not run the pinned digest.
//
// Comments are never removed.
func HelmValues(file string, src []byte, key string, t Target) (Result, error) {
	path := strings.Split(key, ".")
	for _, p := range path {
		if p == "" {
			return Result{}, fmt.Errorf("key %q is not a dotted path like image or app.image", key)
		}
	}
	return run(file, src, t, func(s *source) (int, string, error) {
		if len(s.docs) != 1 {
			return 0, "", fmt.Errorf("%s: a values file must hold exactly one YAML document, found %d", file, len(s.docs))
		}
		node := rootMapping(s.docs[0])
		for _, p := range path {
			if _, node = lookup(node, p); node == nil {
				return 0, "", NotFoundf("key %s not found in %s", key, file)
			}
		}
		switch node.Kind {
		case yaml.ScalarNode:
			return s.pinHelmString(node, key, t)
		case yaml.MappingNode:
			return s.pinHelmMap(node, key, t)
		}
		return 0, "", s.errorf(node, "key %s holds neither an image string nor a map with repository", key)
	})
}

func (s *source) pinHelmString(n *yaml.Node, key string, t Target) (int, string, error) {
	if !t.matches(Repository(n.Value)) {
		return 0, "", NotFoundf("key %s in %s holds %q, not image %s", key, s.file, n.Value,
			Repository(t.Image))
	}
	if n.Value != t.pinned() {
		if err := s.replace(n, t.pinned(), false); err != nil {
			return 0, "", err
		}
	}
	return 1, DigestOf(n.Value), nil
}

func (s *source) pinHelmMap(m *yaml.Node, key string, t Target) (int, string, error) {
	rk, rv := lookup(m, "repository")
	if rv == nil || rv.Kind != yaml.ScalarNode {
		return 0, "", s.errorf(m, "key %s is a map without a repository string", key)
	}
	registry, hasRegistry := scalarValue(m, "registry")
	current := rv.Value
	if hasRegistry && registry != "" {
		current = registry + "/" + rv.Value
	}
	if !t.matches(current) && !t.matches(rv.Value) {
		return 0, "", NotFoundf("key %s in %s holds repository %q, not image %s", key, s.file,
			current, Repository(t.Image))
	}
	prev, _ := scalarValue(m, "digest")
	if !sameRepo(current, t.repo()) {
		if err := s.moveRepository(m, rk, rv, hasRegistry, t.repo()); err != nil {
			return 0, "", err
		}
	}
	return 1, prev, s.setHelmDigest(m, t.Digest, rk, rv)
}

// setHelmDigest plans m.digest = digest and leaves the tag where it is, for people to read. A new digest line goes
// right after the tag's (else the repository's), so the two read together.
func (s *source) setHelmDigest(m *yaml.Node, digest string, rk, rv *yaml.Node) error {
	_, dv := lookup(m, "digest")
	if dv != nil && dv.Kind == yaml.ScalarNode && dv.Tag == "!!null" && dv.Value == "" {
		// "digest:" with nothing after it: the value goes right after the colon.
		at, ok := s.offset(dv.Line, dv.Column)
		if !ok {
			return s.errorf(dv, "cannot locate the empty digest")
		}
		s.edits = append(s.edits, edit{start: at, end: at, text: " " + digest, line: dv.Line})
		return nil
	}
	ak, av := rk, rv
	if tk, tv := lookup(m, "tag"); tv != nil && tv.Kind == yaml.ScalarNode && tv.Line == tk.Line {
		if _, _, err := s.span(tv, isFlow(m)); err == nil {
			ak, av = tk, tv
		}
	}
	return s.setKey(m, "digest", digest, ak, av)
}

// moveRepository points the map at another repository, splitting it into registry and path when the chart keeps
// them apart.
func (s *source) moveRepository(m, rk, rv *yaml.Node, hasRegistry bool, repo string) error {
	if !hasRegistry {
		return s.setKey(m, "repository", repo, rk, rv)
	}
	registry, path := "docker.io", repo
	if first, rest, ok := strings.Cut(repo, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		registry, path = first, rest
	}
	if err := s.setKey(m, "registry", registry, rk, rv); err != nil {
		return err
	}
	return s.setKey(m, "repository", path, rk, rv)
}
