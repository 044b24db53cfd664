package pin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// ErrNotFound means what the pin was asked to change does not exist: a path, a key, or any reference to the image.
var ErrNotFound = errors.New("not found")

type notFoundError struct{ msg string }

func (e *notFoundError) Error() string        { return e.msg }
func (e *notFoundError) Is(target error) bool { return target == ErrNotFound }

// NotFoundf formats an error that says what is missing and matches ErrNotFound with errors.Is.
func NotFoundf(format string, args ...any) error {
	return &notFoundError{msg: fmt.Sprintf(format, args...)}
}

// SyntaxError is malformed YAML, located at file:line.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Result is what a pin did to one file.
type Result struct {
	Output  []byte // the edited file (the input when nothing changed)
	Matched int    // references to the image found
	Changed bool
	// PreviousDigest is the digest the first matching reference held before the edit ("" when it had none).
	PreviousDigest string
	Lines          []int // 1-based lines of the input that were edited
}

// source is a YAML file's bytes with the parser's documents and the edits planned against it.
type source struct {
	file       string
	src        []byte
	lineStarts []int
	newline    string
	docs       []*yaml.Node
	edits      []edit
}

type edit struct {
	start, end int // byte offsets in src; start==end inserts
	text       string
	line       int
}

var lineInError = regexp.MustCompile(`line (\d+)`)

func parse(file string, src []byte) (*source, error) {
	s := &source{file: file, src: src, lineStarts: []int{0}, newline: "\n"}
	if bytes.Contains(src, []byte("\r\n")) {
		s.newline = "\r\n"
	}
	for i, b := range src {
		if b == '\n' {
			s.lineStarts = append(s.lineStarts, i+1)
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		if err != nil {
			return nil, s.syntaxError(err)
		}
		s.docs = append(s.docs, &doc)
	}
}

func (s *source) syntaxError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := lineInError.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.TrimSpace(strings.Replace(msg, m[0]+":", "", 1))
	}
	return &SyntaxError{File: s.file, Line: line, Msg: msg}
}

func (s *source) errorf(n *yaml.Node, format string, args ...any) error {
	return &SyntaxError{File: s.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)}
}

// offset turns the parser's 1-based line and (character) column into a byte offset.
func (s *source) offset(line, col int) (int, bool) {
	if line < 1 || line > len(s.lineStarts) || col < 1 {
		return 0, false
	}
	off := s.lineStarts[line-1]
	for i := 1; i < col; i++ {
		if off >= len(s.src) || s.src[off] == '\n' {
			return 0, false
		}
		_, size := utf8.DecodeRune(s.src[off:])
		off += size
	}
	return off, true
}

// span finds the bytes of scalar n in the source, and checks that they really spell n's value, so that an edit
// never lands anywhere else. Anchors, explicit tags and block scalars are refused rather than guessed at.
func (s *source) span(n *yaml.Node, inFlow bool) (int, int, error) {
	if n.Kind != yaml.ScalarNode || n.Anchor != "" || n.Style&(yaml.TaggedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return 0, 0, s.errorf(n, "value %q uses an anchor, tag or block style that cannot be edited in place", n.Value)
	}
	start, ok := s.offset(n.Line, n.Column)
	if !ok {
		return 0, 0, s.errorf(n, "cannot locate value %q", n.Value)
	}
	end := s.scalarEnd(start, n.Style, inFlow)
	if end < 0 || !s.spells(s.src[start:end], n) {
		return 0, 0, s.errorf(n, "value %q spans lines or is written in a way that cannot be edited in place", n.Value)
	}
	return start, end, nil
}

func (s *source) scalarEnd(start int, style yaml.Style, inFlow bool) int {
	src := s.src
	switch {
	case style&yaml.DoubleQuotedStyle != 0:
		for i := start + 1; i < len(src) && src[i] != '\n'; i++ {
			if src[i] == '\\' {
				i++
			} else if src[i] == '"' {
				return i + 1
			}
		}
		return -1
	case style&yaml.SingleQuotedStyle != 0:
		for i := start + 1; i < len(src) && src[i] != '\n'; i++ {
			if src[i] == '\'' {
				if i+1 < len(src) && src[i+1] == '\'' {
					i++
					continue
				}
				return i + 1
			}
		}
		return -1
	}
	end := start
	for end < len(src) && src[end] != '\n' && src[end] != '\r' {
		if (src[end] == '#' && end > start && (src[end-1] == ' ' || src[end-1] == '\t')) ||
			(src[end] == ':' && (end+1 == len(src) || strings.IndexByte(" \t\r\n", src[end+1]) >= 0)) ||
			(inFlow && (src[end] == ',' || src[end] == ']' || src[end] == '}')) {
			break
		}
		end++
	}
	return start + len(bytes.TrimRight(src[start:end], " \t"))
}

// spells reports whether raw (the source text of a scalar) decodes to n's value.
func (s *source) spells(raw []byte, n *yaml.Node) bool {
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
		return string(raw) == n.Value
	}
	var v string
	return yaml.Unmarshal(raw, &v) == nil && v == n.Value
}

// quote writes value in the same style as n was written, so a quoted image stays quoted.
func quote(n *yaml.Node, value string) string {
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		return strconv.Quote(value)
	case n.Style&yaml.SingleQuotedStyle != 0:
		return "'" + strings.ReplaceAll(value, "'", "''") + "'"
	}
	return value
}

// replace plans rewriting scalar n to value.
func (s *source) replace(n *yaml.Node, value string, inFlow bool) error {
	start, end, err := s.span(n, inFlow)
	if err != nil {
		return err
	}
	s.edits = append(s.edits, edit{start: start, end: end, text: quote(n, value), line: n.Line})
	return nil
}

// apply returns the source with every planned edit made, checking that no two edits overlap.
func (s *source) apply() ([]byte, []int, error) {
	sort.SliceStable(s.edits, func(i, j int) bool { return s.edits[i].start < s.edits[j].start })
	var out bytes.Buffer
	var lines []int
	pos := 0
	for _, e := range s.edits {
		if e.start < pos {
			return nil, nil, &SyntaxError{File: s.file, Line: e.line, Msg: "overlapping edits; edit this file by hand"}
		}
		out.Write(s.src[pos:e.start])
		out.WriteString(e.text)
		pos = e.end
		if len(lines) == 0 || lines[len(lines)-1] != e.line {
			lines = append(lines, e.line)
		}
	}
	out.Write(s.src[pos:])
	return out.Bytes(), lines, nil
}

// lineEnd is the offset just after the newline ending the line that holds offset off (len(src) at the end).
func (s *source) lineEnd(off int) int {
	if i := bytes.IndexByte(s.src[off:], '\n'); i >= 0 {
		return off + i + 1
	}
	return len(s.src)
}

// mapping helpers

func lookup(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

func scalarValue(m *yaml.Node, key string) (string, bool) {
	_, v := lookup(m, key)
	if v == nil || v.Kind != yaml.ScalarNode {
		return "", false
	}
	return v.Value, true
}

func isFlow(n *yaml.Node) bool { return n.Style&yaml.FlowStyle != 0 }
