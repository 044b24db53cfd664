package pin

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/ferrycd/ferry/internal/workload"
)

// planner finds the references in a parsed file and plans their edits.
type planner func(s *source) (matched int, previous string, err error)

// run parses, plans, applies, and then checks the result by planning again on the output: a second pass must find
// the same references and want no edit, or the file is left alone and an error says so.
func run(file string, src []byte, t Target, plan planner) (Result, error) {
	if err := t.Validate(); err != nil {
		return Result{}, err
	}
	s, err := parse(file, src)
	if err != nil {
		return Result{}, err
	}
	matched, prev, err := plan(s)
	if err != nil {
		return Result{}, err
	}
	res := Result{Output: src, Matched: matched, PreviousDigest: prev}
	if len(s.edits) == 0 {
		return res, nil
	}
	out, lines, err := s.apply()
	if err != nil {
		return Result{}, err
	}
	check, err := parse(file, out)
	if err != nil {
		return Result{}, fmt.Errorf("%s: edited file no longer parses (%v); edit it by hand", file, err)
	}
	if again, _, err := plan(check); err != nil || again != matched || len(check.edits) != 0 {
		return Result{}, fmt.Errorf("%s: edit did not converge; edit it by hand", file)
	}
	res.Output, res.Changed, res.Lines = out, true, lines
	return res, nil
}

func notFound(t Target, file string) error {
	return NotFoundf("image %s not found in %s", Repository(t.Image), file)
}

func rootMapping(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		return doc.Content[0]
	}
	return nil
}

// Kustomization pins the image in a kustomization's `images:` list. An entry matches when its `name` or `newName`
// is the image; it ends up with `newName` (only when the pinned repository differs from `name`), `digest`, and
// no `newTag`.
func Kustomization(file string, src []byte, t Target) (Result, error) {
	res, err := run(file, src, t, func(s *source) (int, string, error) {
		matched, prev := 0, ""
		for _, doc := range s.docs {
			_, images := lookup(rootMapping(doc), "images")
			if images == nil || images.Kind != yaml.SequenceNode {
				continue
			}
			for _, entry := range images.Content {
				ok, err := s.pinKustomizeEntry(entry, t)
				if err != nil {
					return 0, "", err
				}
				if ok {
					if matched == 0 {
						prev, _ = scalarValue(entry, "digest")
					}
					matched++
				}
			}
		}
		return matched, prev, nil
	})
	if err == nil && res.Matched == 0 {
		return res, notFound(t, file)
	}
	return res, err
}

func (s *source) pinKustomizeEntry(entry *yaml.Node, t Target) (bool, error) {
	nk, nv := lookup(entry, "name")
	if nv == nil || nv.Kind != yaml.ScalarNode {
		return false, nil
	}
	newName, hasNewName := scalarValue(entry, "newName")
	if !t.matches(nv.Value) && !(hasNewName && t.matches(newName)) {
		return false, nil
	}
	target := t.repo()
	if hasNewName && !sameRepo(newName, target) || !hasNewName && !sameRepo(nv.Value, target) {
		if err := s.setKey(entry, "newName", target, nk, nv); err != nil {
			return false, err
		}
	}
	return true, s.pinDigest(entry, "newTag", t.Digest, nk, nv)
}

// containerLists are the pod spec fields whose containers have images to pin.
var containerLists = []string{"initContainers", "containers", "ephemeralContainers"}

// Manifests pins every container image of the workloads in a (multi-document) manifest file: the containers,
// initContainers and ephemeralContainers of each pod spec. Only those fields are read, so a look-alike string in
// a ConfigMap, an annotation or an environment variable is never touched.
func Manifests(file string, src []byte, t Target) (Result, error) {
	return run(file, src, t, func(s *source) (int, string, error) {
		var w manifestWalk
		for _, doc := range s.docs {
			if err := w.object(s, rootMapping(doc), t); err != nil {
				return 0, "", err
			}
		}
		return w.matched, w.prev, nil
	})
}

type manifestWalk struct {
	matched int
	prev    string
}

func (w *manifestWalk) object(s *source, obj *yaml.Node, t Target) error {
	kind, _ := scalarValue(obj, "kind")
	if kind == "List" || strings.HasSuffix(kind, "List") {
		_, items := lookup(obj, "items")
		if items != nil && items.Kind == yaml.SequenceNode {
			for _, item := range items.Content {
				if err := w.object(s, item, t); err != nil {
					return err
				}
			}
		}
		return nil
	}
	path, ok := workload.PodSpecPathOfKind(kind)
	if !ok {
		return nil
	}
	spec := obj
	for _, key := range path {
		if _, spec = lookup(spec, key); spec == nil {
			return nil
		}
	}
	for _, list := range containerLists {
		_, containers := lookup(spec, list)
		if containers == nil || containers.Kind != yaml.SequenceNode {
			continue
		}
		for _, c := range containers.Content {
			if err := w.container(s, c, t); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *manifestWalk) container(s *source, c *yaml.Node, t Target) error {
	_, image := lookup(c, "image")
	if image == nil || image.Kind != yaml.ScalarNode || !t.matches(Repository(image.Value)) {
		return nil
	}
	if w.matched == 0 {
		w.prev = DigestOf(image.Value)
	}
	w.matched++
	if image.Value == t.pinned() {
		return nil
	}
	return s.replace(image, t.pinned(), isFlow(c))
}
