package sync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Format is how a stage's folder is turned into objects. The values match the Promotion API's manifest formats,
// but for FormatHelm.
type Format string

// Supported formats.
const (
	// FormatKustomize builds the kustomization.yaml of the stage folder.
	FormatKustomize Format = "Kustomize"
	// FormatPlain reads every *.yaml, *.yml and *.json file directly in the stage folder (not in subfolders).
	FormatPlain Format = "Plain"
	// FormatHelm renders the Helm chart in the stage folder, offline, as RenderRequest.Helm says. The API calls
	// this format HelmValues, after where the digest is pinned; rendering is about the chart.
	FormatHelm Format = "Helm"
)

// Limits that keep a hostile or broken checkout from exhausting memory.
const (
	maxFileSize  = 8 << 20
	maxTotalSize = 64 << 20
	maxObjects   = 10000
)

// RenderRequest names a stage folder inside a checkout.
type RenderRequest struct {
	// Root is the checkout on disk. Nothing outside it is ever read: symbolic links that leave it are refused.
	Root string
	// Path is the stage folder, relative to Root, using forward slashes ("" or "." for Root itself).
	Path string
	// Format says how to read the folder.
	Format Format
	// Helm says how to render the chart, for FormatHelm.
	Helm HelmOptions
}

// Render reads the stage folder and returns its objects in a stable order: plain files by file name then document
// order, kustomize in its output order, a Helm chart by template path then document order. Every object has
// apiVersion, kind and metadata.name, and no two objects share kind, namespace and name. Errors name the file
// (relative to Root) and the document.
func Render(req RenderRequest) ([]*unstructured.Unstructured, error) {
	stagePath, err := cleanStagePath(req.Path)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(req.Root)
	if err != nil {
		return nil, fmt.Errorf("opening checkout %s: %w", req.Root, err)
	}
	defer root.Close()
	info, err := root.Stat(stagePath)
	if err != nil {
		return nil, fmt.Errorf("stage path %q: %w", req.Path, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("stage path %q is not a folder", req.Path)
	}
	var objs []*unstructured.Unstructured
	switch req.Format {
	case FormatKustomize:
		objs, err = renderKustomize(root, stagePath)
	case FormatPlain:
		objs, err = renderPlain(root.FS(), stagePath)
	case FormatHelm:
		objs, err = renderHelm(root, stagePath, req.Helm)
	default:
		return nil, fmt.Errorf("manifest format %q is not supported (want %s, %s or %s)", req.Format, FormatKustomize, FormatPlain, FormatHelm)
	}
	if err != nil {
		return nil, err
	}
	if err := checkDuplicates(objs); err != nil {
		return nil, err
	}
	return objs, nil
}

// cleanStagePath turns a slash path relative to the checkout into a clean fs path, refusing ways out of it.
func cleanStagePath(p string) (string, error) {
	if p == "" {
		return ".", nil
	}
	if path.IsAbs(p) || filepath.IsAbs(p) || strings.Contains(p, `\`) {
		return "", fmt.Errorf("stage path %q must be relative to the checkout, with forward slashes", p)
	}
	clean := path.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("stage path %q leaves the checkout", p)
	}
	return clean, nil
}

// renderPlain decodes every manifest file directly in dir, sorted by name.
func renderPlain(fsys fs.FS, dir string) ([]*unstructured.Unstructured, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if isKustomizationName(e.Name()) {
			return nil, fmt.Errorf("%s: a kustomization in a folder read as %s (set the format to %s)", path.Join(dir, e.Name()), FormatPlain, FormatKustomize)
		}
		if isManifestFile(e.Name()) && !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var objs []*unstructured.Unstructured
	total := 0
	for _, name := range names {
		file := path.Join(dir, name)
		data, err := readBounded(fsys, file)
		if err != nil {
			return nil, err
		}
		if total += len(data); total > maxTotalSize {
			return nil, fmt.Errorf("manifests in %s exceed %d bytes", dir, maxTotalSize)
		}
		decoded, err := DecodeDocuments(file, data)
		if err != nil {
			return nil, err
		}
		objs = append(objs, decoded...)
		if len(objs) > maxObjects {
			return nil, fmt.Errorf("manifests in %s hold more than %d objects", dir, maxObjects)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no *.yaml, *.yml or *.json files in %s", dir)
	}
	return objs, nil
}

func isManifestFile(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// readBounded reads a regular file, refusing anything larger than maxFileSize.
func readBounded(fsys fs.FS, file string) ([]byte, error) {
	info, err := fs.Stat(fsys, file)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("reading %s: not a regular file", file)
	}
	if info.Size() > maxFileSize {
		return nil, fmt.Errorf("reading %s: %d bytes, more than the %d allowed", file, info.Size(), maxFileSize)
	}
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return data, nil
}

// checkDuplicates refuses two objects with the same group, kind, namespace and name: the second would silently
// replace the first when applied.
func checkDuplicates(objs []*unstructured.Unstructured) error {
	seen := map[string]bool{}
	var errs []error
	for _, o := range objs {
		key := fmt.Sprintf("%s/%s/%s", o.GroupVersionKind().GroupKind(), o.GetNamespace(), o.GetName())
		if seen[key] {
			errs = append(errs, fmt.Errorf("%s is declared more than once", describe(o)))
		}
		seen[key] = true
	}
	return errors.Join(errs...)
}

// describe names an object for error messages: Kind "namespace/name" and, when known, where it was declared.
func describe(o *unstructured.Unstructured) string {
	name := o.GetName()
	if ns := o.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	s := fmt.Sprintf("%s %q", o.GetKind(), name)
	if g := o.GroupVersionKind().Group; g != "" {
		s = fmt.Sprintf("%s.%s %q", o.GetKind(), g, name)
	}
	return s
}
