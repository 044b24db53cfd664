package controllers

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ferrycd/ferry/internal/procgroup"
	"github.com/ferrycd/ferry/internal/testenv"
)

// This file runs the real external controllers the tests of the external sync modes need (Argo CD in
// argocd_env_test.go, Flux in flux_env_test.go): finding what hack/ built, installing their CRDs, running their
// processes on loopback, and keeping their output for a failing test to show.

// missingTool skips the test for want of a tool, or fails it with FERRY_REQUIRE_TOOLS=1.
func missingTool(t testing.TB, msg string) {
	t.Helper()
	if testenv.RequireTools() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// pinnedVersions reads the module versions hack/tools/<tool>/go.mod pins (its first mention of each module), which
// name the folder under bin/ that hack/<tool>.sh builds into. It returns the repository root too.
func pinnedVersions(tool string) (root string, versions map[string]string, err error) {
	root, err = testenv.RepoRoot()
	if err != nil {
		return "", nil, err
	}
	f, err := os.Open(filepath.Join(root, "hack", "tools", tool, "go.mod"))
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	versions = map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 && versions[fields[0]] == "" {
			versions[fields[0]] = fields[1]
		}
	}
	return root, versions, sc.Err()
}

// crdsOnce installs one controller's CRDs into the package's API server once, for every test that needs them.
type crdsOnce struct {
	once gosync.Once
	err  error
}

// install installs the CRDs in dir, once; whose names the controller in the failure.
func (c *crdsOnce) install(t testing.TB, e *testenv.Env, dir, whose string) {
	t.Helper()
	c.once.Do(func() {
		_, c.err = envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{Paths: []string{dir}, ErrorIfPathMissing: true})
	})
	if c.err != nil {
		t.Fatalf("installing %s's CRDs: %v", whose, c.err)
	}
}

// startProcess runs bin in a process group of its own (killed if the test binary dies), with env added to this
// process's environment and its output written to out, and stops it when the test ends.
func startProcess(t testing.TB, bin string, env []string, out io.Writer, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procgroup.SysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = procgroup.Terminate(cmd)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			procgroup.Kill(cmd)
			<-done
		}
	})
}

// freeLoopbackAddr reserves a loopback port and releases it for a process to bind.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// waitListening waits until something accepts connections at addr.
func waitListening(t testing.TB, addr string) {
	t.Helper()
	waitFor(t, 30*time.Second, addr+" to listen", func() (bool, string) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
}

// processLog keeps the last lines the processes of one test wrote, each named after its process, and shows them
// if the test fails.
type processLog struct {
	mu    gosync.Mutex
	lines []string
}

// processLogKept bounds the lines kept: Argo CD and Flux log every reconcile.
const processLogKept = 2000

// newProcessLog returns a log whose last lines are shown, under title, if t fails.
func newProcessLog(t testing.TB, title string) *processLog {
	l := &processLog{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s, last lines:\n%s", title, l.tail(60))
		}
	})
	return l
}

// prefixed is a writer for one process's output. exec calls it from one goroutine at a time when it is both the
// process's stdout and its stderr.
func (l *processLog) prefixed(name string) io.Writer { return &processLogWriter{log: l, name: name} }

func (l *processLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if len(l.lines) > processLogKept {
		l.lines = l.lines[len(l.lines)-processLogKept:]
	}
}

func (l *processLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines[max(0, len(l.lines)-n):], "\n")
}

// processLogWriter splits one process's output into lines named after it.
type processLogWriter struct {
	log     *processLog
	name    string
	partial string
}

func (w *processLogWriter) Write(p []byte) (int, error) {
	lines := strings.Split(w.partial+string(p), "\n")
	w.partial = lines[len(lines)-1]
	for _, line := range lines[:len(lines)-1] {
		w.log.add(w.name + ": " + line)
	}
	return len(p), nil
}
