//go:build !linux

// Package procgroup starts helper processes; outside Linux there are no process groups to set, and the process
// itself is signalled.
package procgroup

import (
	"os"
	"os/exec"
	"syscall"
)

// SysProcAttr sets nothing outside Linux.
func SysProcAttr() *syscall.SysProcAttr { return nil }

// Terminate asks the process to stop.
func Terminate(cmd *exec.Cmd) error { return cmd.Process.Signal(os.Interrupt) }

// Kill stops the process at once.
func Kill(cmd *exec.Cmd) { _ = cmd.Process.Kill() }

// Alive reports whether the process still exists.
func Alive(pid int) bool {
	p, err := os.FindProcess(pid)
	return err == nil && p.Signal(syscall.Signal(0)) == nil
}
