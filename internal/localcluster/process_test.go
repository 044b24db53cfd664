package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/procgroup"
)

func TestTailFileKeepsTheLastLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := range 10000 { // well over the 64 KiB window
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := tailFile(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := "line 9997\nline 9998\nline 9999"; got != want {
		t.Errorf("tail = %q, want %q", got, want)
	}
	if err := os.WriteFile(path, []byte("only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := tailFile(path, 3); got != "only" {
		t.Errorf("tail of a short file = %q, want %q", got, "only")
	}
}

func TestStopEndsTheWholeProcessGroup(t *testing.T) {
	// The shell forks a child that would outlive a signal sent to the shell alone.
	p := startScript(t, "sleep 300 & wait")
	if err := p.stop(10 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if procgroup.Alive(p.cmd.Process.Pid) {
		t.Error("a process of the group is still alive after stop")
	}
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	p := startScript(t, "trap '' TERM; echo ready; while :; do sleep 0.05; done")
	waitForLog(t, p, "ready") // the trap is in place only once the script has printed
	err := p.stop(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "was killed") {
		t.Fatalf("stop = %v, want an error saying it was killed", err)
	}
	if procgroup.Alive(p.cmd.Process.Pid) {
		t.Error("a process of the group is still alive after stop")
	}
}

// A component that exits during startup fails Start at once with the end of its log, and nothing is left running.
func TestStartReportsAComponentThatExits(t *testing.T) {
	bin := fakeBinaries(t, "echo 'etcd: cannot listen: address already in use' >&2; exit 3")
	_, err := Start(t.Context(), Options{Dir: t.TempDir(), BinDir: bin, KwokBin: filepath.Join(bin, "kwok")})
	if err == nil {
		t.Fatal("Start succeeded with an etcd that exits")
	}
	for _, want := range []string{"etcd exited (exit status 3)", "address already in use", "etcd.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// A component that never becomes healthy fails Start when the context ends, with its log, and is stopped.
func TestStartTimesOutWithTheLogOfTheStuckComponent(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "etcd.pid")
	bin := fakeBinaries(t, "echo $$ > "+pidFile+"; echo 'etcd: waiting for a disk that never comes'; exec sleep 300")
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err := Start(ctx, Options{Dir: t.TempDir(), BinDir: bin, KwokBin: filepath.Join(bin, "kwok")})
	if err == nil {
		t.Fatal("Start succeeded with an etcd that never answers")
	}
	for _, want := range []string{"waiting for etcd to be healthy", "deadline exceeded", "a disk that never comes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(readFile(t, pidFile))))
	if err != nil {
		t.Fatalf("reading the fake etcd's pid: %v", err)
	}
	if procgroup.Alive(pid) {
		t.Errorf("the stuck etcd (pid %d) is still running after Start failed", pid)
	}
}

func TestOptionsNameWhatIsMissing(t *testing.T) {
	bin, complete := fakeBinaries(t, "exit 0"), fakeBinaries(t, "exit 0")
	if err := os.Remove(filepath.Join(bin, Scheduler)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{KwokBin: "kwok"}, "options.BinDir"},
		{Options{BinDir: bin}, "options.KwokBin"},
		{Options{BinDir: bin, KwokBin: filepath.Join(bin, "kwok"), Nodes: -1}, "options.Nodes"},
		{Options{BinDir: bin, KwokBin: filepath.Join(bin, "kwok")}, filepath.Join(bin, Scheduler)},
		{Options{BinDir: complete, KwokBin: filepath.Join(complete, "kwok"), KwokStagesDir: t.TempDir()}, "no *.yaml"},
	} {
		_, err := Start(t.Context(), tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v) = %v, want an error naming %s", tc.opts, err, tc.want)
		}
	}
}

// fakeBinaries makes a BinDir whose etcd runs etcdScript and whose other components do nothing: enough to test
// how Start supervises processes without the real binaries.
func fakeBinaries(t *testing.T, etcdScript string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{Etcd, APIServer, ControllerManager, Scheduler, Kwok} {
		script := "exit 0"
		if name == Etcd {
			script = etcdScript
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "stages"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stages", "node.yaml"), []byte("kind: Stage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startScript(t *testing.T, script string) *process {
	t.Helper()
	p, err := startProcess("script", "/bin/sh", []string{"-c", script}, filepath.Join(t.TempDir(), "script.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { procgroup.Kill(p.cmd); <-p.done })
	return p
}

func waitForLog(t *testing.T, p *process, text string) {
	t.Helper()
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	for {
		if out, _ := os.ReadFile(p.logPath); strings.Contains(string(out), text) {
			return
		}
		select {
		case <-ticker.C:
		case <-p.done:
			t.Fatalf("process exited before printing %q", text)
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
}

// A component that cannot bind its port makes Start choose new ports and try again, a bounded number of times.
func TestStartRetriesWhenAPortIsTaken(t *testing.T) {
	attempts := filepath.Join(t.TempDir(), "attempts")
	bin := fakeBinaries(t, "echo x >> "+attempts+"; echo 'listen tcp 127.0.0.1:2379: bind: address already in use' >&2; exit 1")
	_, err := Start(t.Context(), Options{Dir: t.TempDir(), BinDir: bin, KwokBin: filepath.Join(bin, "kwok")})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start = %v, want the bind error", err)
	}
	if got := strings.Count(string(readFile(t, attempts)), "x"); got != portAttempts {
		t.Errorf("etcd started %d times, want %d", got, portAttempts)
	}
}

func TestOptionsFromEnvNamesTheUnsetVariables(t *testing.T) {
	t.Setenv(EnvBinDir, "")
	t.Setenv(EnvKwok, "")
	_, err := OptionsFromEnv(t.TempDir(), 1)
	if err == nil || !strings.Contains(err.Error(), "KUBEBUILDER_ASSETS=$(hack/controlplane.sh)") ||
		!strings.Contains(err.Error(), "FERRY_KWOK=$(hack/kwok.sh)") {
		t.Fatalf("OptionsFromEnv = %v, want both variables named", err)
	}
	t.Setenv(EnvBinDir, "/bin/dir")
	t.Setenv(EnvKwok, "/bin/kwok")
	opts, err := OptionsFromEnv("state", 2)
	if err != nil {
		t.Fatal(err)
	}
	if opts != (Options{Dir: "state", BinDir: "/bin/dir", KwokBin: "/bin/kwok", Nodes: 2}) {
		t.Errorf("OptionsFromEnv = %+v", opts)
	}
}
