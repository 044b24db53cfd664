package publish

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// TestRenderInstallPinsEveryImage renders the real config/default: every container runs the pushed digest, and
// $FERRY_IMAGE names it too. (hack/release's TestReleaseOnARealRegistry applies the result to an API server.)
func TestRenderInstallPinsEveryImage(t *testing.T) {
	d, err := name.NewDigest("registry.example:5000/ferrycd/ferry-controller@sha256:" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	out, err := RenderInstall(filepath.Join("..", "..", "..", "config", "default"), d)
	if err != nil {
		t.Fatal(err)
	}
	pinned := PinnedReference(d)
	images, err := ContainerImages(out)
	if err != nil {
		t.Fatal(err)
	}
	if images["Deployment/ferry-controller manager"] != pinned || len(images) != 1 {
		t.Fatalf("images = %v, want the manager on %s", images, pinned)
	}
	if !regexp.MustCompile(`- name: FERRY_IMAGE\s+value: ` + regexp.QuoteMeta(pinned) + `\n`).Match(out) {
		t.Fatalf("FERRY_IMAGE is not %s in:\n%s", pinned, out)
	}
	if strings.Contains(string(out), PlaceholderImage+":unreleased") {
		t.Fatal("the placeholder image is still in install.yaml")
	}
	first := strings.Index(string(out), "kind: CustomResourceDefinition")
	if ns := strings.Index(string(out), "kind: Namespace"); ns < 0 || first < 0 || ns > first || first > strings.Index(string(out), "kind: Deployment") {
		t.Error("install.yaml must list the Namespace, then the CRDs, before the Deployment")
	}
}
