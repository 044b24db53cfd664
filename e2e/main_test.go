package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ferrycd/ferry/internal/scm/giteatest"
	"github.com/ferrycd/ferry/internal/testenv"
)

// TestMain runs one Gitea for the package (only the tests that ask for it pay for it in their wait) and removes
// the controller binary the tests built.
func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // envtest.InstallCRDs logs through controller-runtime; the tests need none of it
	code := giteatest.Main(m)
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// controllerBinary builds cmd/ferry-controller once per test binary (with the race detector when the tests
// have it, so a data race in the real process fails the test that hit it) and returns its path.
func controllerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		if binDir, err = os.MkdirTemp("", "ferry-e2e-bin-"); err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(binDir, "ferry-controller")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		began := time.Now()
		cmd := exec.Command("go", append(args, "./cmd/ferry-controller")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building ferry-controller: %v\n%s", err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "e2e: built ferry-controller (race=%v) in %s\n", raceEnabled, time.Since(began).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}
