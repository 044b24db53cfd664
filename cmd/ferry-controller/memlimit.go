package main

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultGCPercent is the garbage collector's target when GOGC is not set: the heap may grow to 1.5 times what is
// live between collections instead of Go's default of twice. A controller's live heap is mostly caches, so the
// default headroom is the largest share of its memory; the price is a few percent more CPU in collections (the
// Prometheus server makes the same trade with 75).
const defaultGCPercent = 50

// applyGCDefaults sets defaultGCPercent unless GOGC is set, and returns the percentage in force.
func applyGCDefaults() int {
	if v := os.Getenv("GOGC"); v != "" {
		current := debug.SetGCPercent(100)
		debug.SetGCPercent(current)
		return current
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}

// memoryLimitShare is the part of the container's memory limit given to the Go runtime as its soft limit; the
// rest leaves room for what the runtime does not count (the binary's pages, cgroup page cache).
const memoryLimitShare = 0.9

// cgroupLimitFiles are where cgroup v2 and v1 publish a container's memory limit.
var cgroupLimitFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// applyContainerMemoryLimit gives the Go runtime a soft memory limit below the container's, unless GOMEMLIMIT
// is set: near the limit the garbage collector then works harder instead of the kernel killing the controller
// (a first sync of many Promotions allocates in bursts). It returns the limit set, zero when none.
func applyContainerMemoryLimit(files []string) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit, err := containerMemoryLimit(files)
	if err != nil || limit <= 0 {
		return 0
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	return soft
}

// containerMemoryLimit reads the first limit file that exists; "max" (or v1's huge sentinel) means no limit.
func containerMemoryLimit(files []string) (int64, error) {
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Clean(f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		v := strings.TrimSpace(string(raw))
		if v == "max" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		if n >= math.MaxInt64/2 { // cgroup v1 writes a page-rounded MaxInt64 for "no limit"
			return 0, nil
		}
		return n, nil
	}
	return 0, nil
}
