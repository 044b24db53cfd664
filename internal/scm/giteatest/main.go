package giteatest

import (
	"context"
	"os"
	"testing"
	"time"
)

const (
	// EnvBinary names the gitea binary (hack/gitea.sh prints it; make test sets it).
	EnvBinary = "FERRY_GITEA"
	// EnvRequireTools turns a missing binary from a skip into a failure.
	EnvRequireTools = "FERRY_REQUIRE_TOOLS"
)

// The one server of this test binary, started by Main.
var (
	shared   *Server
	startErr error
)

// Main starts one Gitea for the test package, runs the tests and stops it. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(giteatest.Main(m)) }
//
// When $FERRY_GITEA is unset the tests still run and Require skips them (or fails them under
// FERRY_REQUIRE_TOOLS=1); a server that fails to start fails every test that asks for it.
func Main(m *testing.M) int {
	if bin := os.Getenv(EnvBinary); bin != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		shared, startErr = Start(ctx, bin)
		cancel()
	} else {
		startErr = errNoBinary
	}
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	return code
}

// Require returns the package's Gitea, or skips the test when $FERRY_GITEA is unset (fails it when
// FERRY_REQUIRE_TOOLS=1), or fails it when the server could not start.
func Require(t testing.TB) *Server {
	t.Helper()
	switch {
	case startErr == errNoBinary && os.Getenv(EnvRequireTools) == "1":
		t.Fatalf("%s is not set and %s=1: run `make test` or export %s=$(hack/gitea.sh)", EnvBinary, EnvRequireTools, EnvBinary)
	case startErr == errNoBinary:
		t.Skipf("%s is not set: `make test` sets it (or export %s=$(hack/gitea.sh))", EnvBinary, EnvBinary)
	case startErr != nil:
		t.Fatalf("starting gitea: %v", startErr)
	case shared == nil:
		t.Fatal("giteatest.Require called without giteatest.Main in TestMain")
	}
	return shared
}

// StartForTest starts a Gitea of the test's own, for test packages whose TestMain belongs to something else, and
// stops it when the test ends. Like Require, it skips without $FERRY_GITEA (fails under FERRY_REQUIRE_TOOLS=1).
func StartForTest(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	switch {
	case bin == "" && os.Getenv(EnvRequireTools) == "1":
		t.Fatalf("%s is not set and %s=1: run `make test` or export %s=$(hack/gitea.sh)", EnvBinary, EnvRequireTools, EnvBinary)
	case bin == "":
		t.Skipf("%s is not set: `make test` sets it (or export %s=$(hack/gitea.sh))", EnvBinary, EnvBinary)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Start(ctx, bin)
	if err != nil {
		t.Fatalf("starting gitea: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}
