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
	buildOnce.Do(buildController)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// buildController builds cmd/ferry-controller into a new temporary folder, binDir.
func buildController() {
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
}

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// ferryCLI builds cmd/ferry once per test binary, beside the controller (TestMain removes the folder), and
// returns its path.
func ferryCLI(t *testing.T) string {
	t.Helper()
	cliOnce.Do(buildCLI)
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// buildCLI builds cmd/ferry into the controller's folder (building the controller first if no one has), with the
// race detector when the tests have it. Tests start it early (go cliOnce.Do(buildCLI)) to build while their
// world starts; ferryCLI waits for it.
func buildCLI() {
	buildOnce.Do(buildController)
	if buildErr != nil {
		cliErr = buildErr
		return
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		cliErr = err
		return
	}
	cliPath = filepath.Join(binDir, "ferry")
	args := []string{"build", "-o", cliPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	began := time.Now()
	cmd := exec.Command("go", append(args, "./cmd/ferry")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		cliErr = fmt.Errorf("building ferry: %v\n%s", err, out)
		return
	}
	fmt.Fprintf(os.Stderr, "e2e: built ferry (race=%v) in %s\n", raceEnabled, time.Since(began).Round(time.Millisecond))
}
