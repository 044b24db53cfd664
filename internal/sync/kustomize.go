package sync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	gosync "sync"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// kustomizeMu serialises builds: kustomize keeps its OpenAPI schema in package-level state.
var kustomizeMu gosync.Mutex

var kustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// renderKustomize builds the kustomization in dir. The checkout is first copied into an in-memory file system, so
// that kustomize can read nothing outside it (no /etc, no service account token), and every kustomization in it
// is checked for remote references, which kustomize would otherwise clone or download.
func renderKustomize(root *os.Root, dir string) ([]*unstructured.Unstructured, error) {
	if findKustomization(root.FS(), dir) == "" {
		return nil, fmt.Errorf("no kustomization.yaml in %s", dir)
	}
	mem, err := copyToMemory(root.FS())
	if err != nil {
		return nil, err
	}
	if err := checkNoRemote(mem); err != nil {
		return nil, err
	}
	kustomizeMu.Lock()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, path.Join("/", dir))
	kustomizeMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out, err := resMap.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: encoding output: %w", dir, err)
	}
	return DecodeDocuments("kustomize build "+dir, out)
}

func findKustomization(fsys fs.FS, dir string) string {
	for _, name := range kustomizationNames {
		if info, err := fs.Stat(fsys, path.Join(dir, name)); err == nil && info.Mode().IsRegular() {
			return path.Join(dir, name)
		}
	}
	return ""
}

// copyToMemory copies the checkout (without .git) into an in-memory file system rooted at "/".
func copyToMemory(fsys fs.FS) (filesys.FileSystem, error) {
	mem := filesys.MakeFsInMemory()
	total := 0
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading checkout at %s: %w", p, err)
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return fs.SkipDir
			}
			return mem.MkdirAll("/" + p)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if info, err := fs.Stat(fsys, p); err == nil && info.IsDir() {
				return fmt.Errorf("%s: symbolic links to folders are not supported", p)
			}
		}
		data, err := readBounded(fsys, p)
		if err != nil {
			return err
		}
		if total += len(data); total > maxTotalSize {
			return fmt.Errorf("checkout holds more than %d bytes", maxTotalSize)
		}
		return mem.WriteFile("/"+p, data)
	})
	if err != nil {
		return nil, err
	}
	return mem, nil
}

// checkNoRemote refuses kustomizations that reference anything outside the checkout.
func checkNoRemote(mem filesys.FileSystem) error {
	var errs []error
	err := mem.Walk("/", func(p string, info fs.FileInfo, err error) error {
		if err != nil || info.IsDir() || !isKustomizationName(path.Base(p)) {
			return err
		}
		data, err := mem.ReadFile(p)
		if err != nil {
			return err
		}
		errs = append(errs, checkKustomization(mem, p, data)...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("scanning kustomizations: %w", err)
	}
	return errors.Join(errs...)
}

func isKustomizationName(name string) bool {
	for _, n := range kustomizationNames {
		if name == n {
			return true
		}
	}
	return false
}

// checkKustomization lists the remote references of one kustomization file. Folder references (resources,
// components, bases) must exist in the checkout; file references must not be URLs; Helm charts are refused
// because inflating them runs helm and downloads charts.
func checkKustomization(mem filesys.FileSystem, file string, data []byte) []error {
	var k map[string]any
	if err := yaml.Unmarshal(data, &k); err != nil {
		return []error{fmt.Errorf("%s: invalid YAML: %w", strings.TrimPrefix(file, "/"), err)}
	}
	dir := path.Dir(file)
	name := strings.TrimPrefix(file, "/")
	var errs []error
	for _, field := range []string{"resources", "components", "bases"} {
		for _, ref := range stringList(k[field]) {
			if looksRemote(ref) || !mem.Exists(path.Join(dir, ref)) {
				errs = append(errs, fmt.Errorf("%s: %s entry %q is not in the checkout (remote resources are never fetched)", name, field, ref))
			}
		}
	}
	for _, ref := range fileRefs(k) {
		if strings.Contains(ref, "://") {
			errs = append(errs, fmt.Errorf("%s: %q is a URL (remote files are never fetched)", name, ref))
		}
	}
	for _, field := range []string{"helmCharts", "helmChartInflationGenerator", "helmGlobals"} {
		if _, ok := k[field]; ok {
			errs = append(errs, fmt.Errorf("%s: %s is not supported (Helm charts are not rendered)", name, field))
		}
	}
	return errs
}

// looksRemote recognises the reference forms kustomize treats as Git repositories or URLs.
func looksRemote(ref string) bool {
	return strings.Contains(ref, "://") || strings.HasPrefix(ref, "git@") || strings.HasPrefix(ref, "git::") ||
		strings.Contains(ref, "?ref=") || strings.Contains(ref, "?version=") || strings.Contains(ref, "?timeout=") ||
		strings.HasPrefix(ref, "github.com/") || strings.HasPrefix(ref, "gitlab.com/") || strings.HasPrefix(ref, "bitbucket.org/")
}

// fileRefs collects the file paths a kustomization may load.
func fileRefs(k map[string]any) []string {
	refs := stringList(k["crds"])
	refs = append(refs, stringList(k["configurations"])...)
	refs = append(refs, stringList(k["patchesStrategicMerge"])...)
	for _, field := range []string{"generators", "transformers", "validators"} {
		refs = append(refs, stringList(k[field])...)
	}
	for _, field := range []string{"patches", "patchesJson6902", "replacements"} {
		for _, item := range mapList(k[field]) {
			if p, ok := item["path"].(string); ok {
				refs = append(refs, p)
			}
		}
	}
	for _, field := range []string{"configMapGenerator", "secretGenerator"} {
		for _, item := range mapList(k[field]) {
			refs = append(refs, stringList(item["files"])...)
			refs = append(refs, stringList(item["envs"])...)
			if p, ok := item["env"].(string); ok {
				refs = append(refs, p)
			}
		}
	}
	if openapi, ok := k["openapi"].(map[string]any); ok {
		if p, ok := openapi["path"].(string); ok {
			refs = append(refs, p)
		}
	}
	return refs
}

func stringList(v any) []string {
	items, _ := v.([]any)
	out := make([]string, 0, len(items))
	for _, item := range items {
		if s, ok := item.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func mapList(v any) []map[string]any {
	items, _ := v.([]any)
	out := make([]map[string]any, 0, len(items))
	for _, item := range items {
		if m, ok := item.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}
