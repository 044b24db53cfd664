package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"testing"
)

func TestContainerMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		name  string
		files []string
		want  int64
		err   bool
	}{
		{"cgroup v2 limit", []string{write("v2", "536870912\n")}, 536870912, false},
		{"cgroup v2 without a limit", []string{write("v2max", "max\n")}, 0, false},
		{"cgroup v1 without a limit", []string{missing, write("v1", strconv.FormatInt(math.MaxInt64&^4095, 10))}, 0, false},
		{"cgroup v1 limit after a missing v2 file", []string{missing, write("v1lim", "268435456")}, 268435456, false},
		{"no cgroup files", []string{missing}, 0, false},
		{"garbage", []string{write("bad", "lots")}, 0, true},
	} {
		got, err := containerMemoryLimit(c.files)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("%s: %d, %v; want %d (error %v)", c.name, got, err, c.want, c.err)
		}
	}
}

func TestApplyContainerMemoryLimitLeavesGOMEMLIMITAlone(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	limit := filepath.Join(t.TempDir(), "memory.max")
	if err := os.WriteFile(limit, []byte("1073741824"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOMEMLIMIT", "")
	if got := applyContainerMemoryLimit([]string{limit}); got != 966367641 || debug.SetMemoryLimit(-1) != got {
		t.Errorf("soft limit = %d (runtime %d), want 90%% of 1 GiB", got, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(before)
	t.Setenv("GOMEMLIMIT", "2GiB")
	if got := applyContainerMemoryLimit([]string{limit}); got != 0 || debug.SetMemoryLimit(-1) != before {
		t.Errorf("with GOMEMLIMIT set, a soft limit of %d was applied", got)
	}
}

func TestApplyGCDefaultsLeavesGOGCAlone(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	t.Setenv("GOGC", "")
	if got := applyGCDefaults(); got != defaultGCPercent || debug.SetGCPercent(defaultGCPercent) != defaultGCPercent {
		t.Errorf("without GOGC: %d, want %d", got, defaultGCPercent)
	}
	t.Setenv("GOGC", "200")
	debug.SetGCPercent(200) // as the runtime would have read it at start
	if got := applyGCDefaults(); got != 200 || debug.SetGCPercent(200) != 200 {
		t.Errorf("with GOGC=200: %d", got)
	}
}
