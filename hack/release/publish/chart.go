package publish

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	yaml "go.yaml.in/yaml/v3"
)

// CopyChart copies the chart in src to dst (replacing it) and sets image.repository and image.digest in its
// values.yaml to the pushed image. Only those two values change, in place: the file's comments and layout stay.
// A chart without both values is refused, since a copy that still named another image would install it.
func CopyChart(src, dst string, d name.Digest) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := copyTree(src, dst); err != nil {
		return fmt.Errorf("copying the chart %s: %w", src, err)
	}
	valuesFile := filepath.Join(dst, "values.yaml")
	raw, err := os.ReadFile(valuesFile)
	if err != nil {
		return fmt.Errorf("reading the chart's values: %w", err)
	}
	out, err := SetImageValues(raw, d.Context().Name(), d.DigestStr())
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(src, "values.yaml"), err)
	}
	return os.WriteFile(valuesFile, out, 0o644)
}

// SetImageValues returns values.yaml with image.repository and image.digest replaced, checking the result.
func SetImageValues(values []byte, repository, digest string) ([]byte, error) {
	lines := strings.Split(string(values), "\n")
	for _, key := range []string{"repository", "digest"} {
		n, err := imageValue(values, key)
		if err != nil {
			return nil, err
		}
		val := repository
		if key == "digest" {
			val = digest
		}
		if n.Line < 1 || n.Line > len(lines) || n.Column < 1 || n.Column > len(lines[n.Line-1]) {
			return nil, fmt.Errorf("image.%s: cannot find its value in the text", key)
		}
		line := lines[n.Line-1]
		start := n.Column - 1
		end := start + rawScalarLen(line[start:])
		lines[n.Line-1] = line[:start] + fmt.Sprintf("%q", val) + line[end:]
	}
	out := []byte(strings.Join(lines, "\n"))
	for key, want := range map[string]string{"repository": repository, "digest": digest} {
		n, err := imageValue(out, key)
		if err != nil || n.Value != want {
			return nil, fmt.Errorf("setting image.%s to %s did not take (the value is not a one-line scalar?)", key, want)
		}
	}
	return out, nil
}

// imageValue finds the scalar node of image.<key> in a values file.
func imageValue(values []byte, key string) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(values, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 {
		return nil, errors.New("values.yaml is empty")
	}
	image := mappingValue(doc.Content[0], "image")
	if image == nil {
		return nil, errors.New("no image: mapping in values.yaml")
	}
	n := mappingValue(image, key)
	if n == nil || n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("no image.%s value in values.yaml", key)
	}
	return n, nil
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// rawScalarLen is the length of the scalar at the start of s as written: a quoted string with its quotes, or a
// plain one up to a comment or the end of the line.
func rawScalarLen(s string) int {
	switch {
	case strings.HasPrefix(s, `"`):
		for i := 1; i < len(s); i++ {
			if s[i] == '\\' {
				i++
			} else if s[i] == '"' {
				return i + 1
			}
		}
	case strings.HasPrefix(s, `'`):
		for i := 1; i < len(s); i++ {
			if s[i] == '\'' && (i+1 == len(s) || s[i+1] != '\'') {
				return i + 1
			} else if s[i] == '\'' {
				i++
			}
		}
	default:
		if i := strings.Index(s, " #"); i >= 0 {
			return len(strings.TrimRight(s[:i], " "))
		}
		return len(strings.TrimRight(s, " \r"))
	}
	return len(s)
}

// copyTree copies regular files and folders; symbolic links are refused, so the copy holds only the chart.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case e.IsDir():
			return os.MkdirAll(target, 0o755)
		case !e.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}
