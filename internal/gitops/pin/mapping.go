package pin

import (
	"bytes"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// setKey plans m[key] = value: the value is rewritten when the key exists, otherwise a pair is added right after
// the pair (anchorKey, anchorVal) — on a new line at the same indentation in block style, or as ", key: value" in
// flow style — so that the new line sits next to the image it belongs to.
func (s *source) setKey(m *yaml.Node, key, value string, anchorKey, anchorVal *yaml.Node) error {
	if _, v := lookup(m, key); v != nil {
		if v.Kind != yaml.ScalarNode {
			return s.errorf(v, "%s is not a string", key)
		}
		if v.Value == value {
			return nil
		}
		return s.replace(v, value, isFlow(m))
	}
	_, end, err := s.span(anchorVal, isFlow(m))
	if err != nil {
		return err
	}
	if isFlow(m) {
		s.edits = append(s.edits, edit{start: end, end: end, text: ", " + key + ": " + value, line: anchorVal.Line})
		return nil
	}
	keyStart, ok := s.offset(anchorKey.Line, anchorKey.Column)
	if !ok {
		return s.errorf(anchorKey, "cannot locate key %q", anchorKey.Value)
	}
	indent := strings.Repeat(" ", anchorKey.Column-1)
	if before := s.src[s.lineStarts[anchorKey.Line-1]:keyStart]; bytes.ContainsRune(before, '\t') {
		return s.errorf(anchorKey, "tab before key %q; cannot add %s next to it", anchorKey.Value, key)
	}
	at := s.lineEnd(end)
	text := indent + key + ": " + value + s.newline
	if at == len(s.src) && (at == 0 || s.src[at-1] != '\n') {
		text = s.newline + strings.TrimSuffix(text, s.newline)
	}
	s.edits = append(s.edits, edit{start: at, end: at, text: text, line: anchorVal.Line})
	return nil
}

// removable reports the byte range of a block-style pair that occupies whole lines of its own, so deleting those
// lines removes exactly the pair. A pair that starts a sequence entry ("- newTag: v1") is not removable.
func (s *source) removable(m *yaml.Node, k, v *yaml.Node) (int, int, bool) {
	if isFlow(m) || v.Kind != yaml.ScalarNode || v.Line != k.Line || k.Line < 1 || k.Line > len(s.lineStarts) {
		return 0, 0, false
	}
	lineStart := s.lineStarts[k.Line-1]
	keyStart, ok := s.offset(k.Line, k.Column)
	if !ok || len(bytes.TrimLeft(s.src[lineStart:keyStart], " ")) != 0 {
		return 0, 0, false
	}
	_, end, err := s.span(v, false)
	if err != nil {
		return 0, 0, false
	}
	return lineStart, s.lineEnd(end), true
}

// pinDigest plans m.digest = digest with no tag key left beside it. A tag pair is turned into the digest pair when
// there is no digest yet (the line stays where it was); otherwise the tag's line is removed.
func (s *source) pinDigest(m *yaml.Node, tagKey, digest string, anchorKey, anchorVal *yaml.Node) error {
	dk, dv := lookup(m, "digest")
	tk, tv := lookup(m, tagKey)
	if dv != nil && dv.Kind != yaml.ScalarNode {
		return s.errorf(dv, "digest is not a string")
	}
	if tv != nil && tv.Kind != yaml.ScalarNode {
		return s.errorf(tv, "%s is not a string", tagKey)
	}
	switch {
	case dv != nil && tv == nil:
		return s.setKey(m, "digest", digest, anchorKey, anchorVal)
	case dv == nil && tv != nil:
		return s.renamePair(m, tk, tv, "digest", digest)
	case dv == nil && tv == nil:
		return s.setKey(m, "digest", digest, anchorKey, anchorVal)
	}
	if start, end, ok := s.removable(m, tk, tv); ok {
		s.edits = append(s.edits, edit{start: start, end: end, line: tk.Line})
		return s.setKey(m, "digest", digest, anchorKey, anchorVal)
	}
	if start, end, ok := s.removable(m, dk, dv); ok {
		s.edits = append(s.edits, edit{start: start, end: end, line: dk.Line})
		return s.renamePair(m, tk, tv, "digest", digest)
	}
	return s.errorf(tk, "cannot remove %s next to digest here; edit this entry by hand", tagKey)
}

// renamePair rewrites "oldKey: oldValue" into "key: value" in place.
func (s *source) renamePair(m *yaml.Node, k, v *yaml.Node, key, value string) error {
	if k.Style != 0 {
		return s.errorf(k, "key %q is quoted; edit this entry by hand", k.Value)
	}
	start, end, err := s.span(k, isFlow(m))
	if err != nil {
		return err
	}
	s.edits = append(s.edits, edit{start: start, end: end, text: key, line: k.Line})
	if v.Value == "" && v.Tag == "!!null" {
		return s.errorf(v, "%s has no value; edit this entry by hand", k.Value)
	}
	return s.replace(v, value, isFlow(m))
}
