package pin

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Format names the kind of file a pin edits.
type Format string

const (
	FormatKustomize Format = "kustomize"
	FormatManifests Format = "manifests"
	FormatHelm      Format = "helm"
)

// Request says where and what to pin in a tree of files.
type Request struct {
	Format Format
	// Path is slash-separated and relative to the tree's root: for kustomize a kustomization file or its folder;
	// for manifests a file or a folder (every *.yaml / *.yml below it); for helm the values file.
	Path string
	// HelmKey is the dotted key path of the image in the values file (helm only).
	HelmKey string
	Target
}

// Validate checks the request and names the offending field.
func (r Request) Validate() error {
	switch r.Format {
	case FormatKustomize, FormatManifests:
	case FormatHelm:
		if r.HelmKey == "" {
			return errors.New("helm key is required for the helm format")
		}
	default:
		return fmt.Errorf("format %q is not one of kustomize, manifests, helm", r.Format)
	}
	if _, err := cleanPath(r.Path); err != nil {
		return err
	}
	return r.Target.Validate()
}

// cleanPath turns a user's path into an fs.FS path ("" and "/" mean the root), refusing anything that climbs out
// of the tree.
func cleanPath(p string) (string, error) {
	c := path.Clean("./" + strings.TrimPrefix(p, "/"))
	if c == ".." || strings.HasPrefix(c, "../") || !fs.ValidPath(c) {
		return "", fmt.Errorf("path %q leaves the repository", p)
	}
	return c, nil
}

// FileChange is the new content of one edited file.
type FileChange struct {
	Path   string // slash-separated, relative to the tree's root
	Output []byte
	Lines  []int
}

// Plan is everything a pin would change in a tree; an empty Changes means the image is already pinned.
type Plan struct {
	Changes        []FileChange
	Matched        int
	PreviousDigest string
}

// Apply computes the pin on a tree of files without writing anything. Errors name the path, file and line.
func Apply(tree fs.FS, req Request) (Plan, error) {
	if err := req.Validate(); err != nil {
		return Plan{}, err
	}
	root, _ := cleanPath(req.Path)
	files, err := filesFor(tree, root, req.Format)
	if err != nil {
		return Plan{}, err
	}
	var plan Plan
	for _, name := range files {
		src, err := fs.ReadFile(tree, name)
		if err != nil {
			return Plan{}, fmt.Errorf("reading %s: %w", name, err)
		}
		res, err := pinFile(name, src, req)
		if err != nil {
			return Plan{}, err
		}
		if res.Matched > 0 && plan.Matched == 0 {
			plan.PreviousDigest = res.PreviousDigest
		}
		plan.Matched += res.Matched
		if res.Changed {
			plan.Changes = append(plan.Changes, FileChange{Path: name, Output: res.Output, Lines: res.Lines})
		}
	}
	if plan.Matched == 0 {
		return Plan{}, NotFoundf("image %s not found under %s", Repository(req.Image), req.Path)
	}
	return plan, nil
}

func pinFile(name string, src []byte, req Request) (Result, error) {
	switch req.Format {
	case FormatKustomize:
		return Kustomization(name, src, req.Target)
	case FormatHelm:
		return HelmValues(name, src, req.HelmKey, req.Target)
	}
	return Manifests(name, src, req.Target)
}

var kustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// filesFor lists the files a pin reads below root, sorted, so that results and commits are deterministic.
func filesFor(tree fs.FS, root string, format Format) ([]string, error) {
	info, err := fs.Stat(tree, root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, NotFoundf("path %s not found", root)
		}
		return nil, fmt.Errorf("reading path %s: %w", root, err)
	}
	if !info.IsDir() {
		return []string{root}, nil
	}
	switch format {
	case FormatHelm:
		return nil, fmt.Errorf("path %s is a folder; the helm format needs the values file", root)
	case FormatKustomize:
		for _, n := range kustomizationNames {
			switch _, err := fs.Stat(tree, path.Join(root, n)); {
			case err == nil:
				return []string{path.Join(root, n)}, nil
			case !errors.Is(err, fs.ErrNotExist): // there, but not readable (too large): say why
				return nil, fmt.Errorf("reading %s: %w", path.Join(root, n), err)
			}
		}
		return nil, NotFoundf("path %s holds no kustomization.yaml", root)
	}
	var files []string
	err = fs.WalkDir(tree, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		if !d.IsDir() && d.Type().IsRegular() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", root, err)
	}
	sort.Strings(files)
	return files, nil
}
