package sync

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/testenv"
)

// benchTree is a stage of 20 Deployments and 20 ConfigMaps, as plain files and as a kustomization over them.
func benchTree(b *testing.B) string {
	files := map[string]string{}
	var resources []string
	for i := range 20 {
		name := fmt.Sprintf("app%02d.yaml", i)
		manifest := deployment(fmt.Sprintf("web%02d", i), "registry.example.com/shop:1.0") + "---\n" + configMap(fmt.Sprintf("cfg%02d", i))
		files["plain/"+name], files["kustomize/"+name] = manifest, manifest
		resources = append(resources, name)
	}
	files["kustomize/kustomization.yaml"] = "resources: [" + strings.Join(resources, ", ") + "]\nimages:\n- name: registry.example.com/shop\n  digest: " + digestA + "\n"
	root := b.TempDir()
	writeFiles(b, root, files)
	return root
}

func BenchmarkRender(b *testing.B) {
	root := benchTree(b)
	for _, format := range []Format{FormatPlain, FormatKustomize} {
		b.Run(string(format), func(b *testing.B) {
			for b.Loop() {
				objs, err := Render(RenderRequest{Root: root, Path: strings.ToLower(string(format)), Format: format})
				if err != nil || len(objs) != 40 {
					b.Fatalf("%d objects, %v", len(objs), err)
				}
			}
		})
	}
}

// BenchmarkApplyNoop measures the steady state of a controller: applying a revision that is already live, which
// must read and diff but write nothing.
func BenchmarkApplyNoop(b *testing.B) {
	e := testenv.Need(b, env)
	ns := e.Namespace(b)
	tgt, err := NewTarget(e.Config, ns)
	if err != nil {
		b.Fatal(err)
	}
	defer tgt.Close()
	objs, err := Render(RenderRequest{Root: benchTree(b), Path: "plain", Format: FormatPlain})
	if err != nil {
		b.Fatal(err)
	}
	req := ApplyRequest{Owner: "bench.dev", Revision: "r1", Objects: objs, Prune: true}
	if _, err := tgt.Apply(b.Context(), req); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := tgt.Apply(b.Context(), req)
		if err != nil || res.Changed {
			b.Fatalf("no-op apply changed something: %v", err)
		}
	}
}
