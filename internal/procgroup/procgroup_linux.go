//go:build linux

// Package procgroup starts helper processes (a control plane's components, a Prometheus) each in a process group
// of its own, so that stopping one reaches anything it forked, and so that the kernel kills it if the process that
// started it dies without stopping it (a test binary killed by its timeout).
package procgroup

import (
	"errors"
	"os/exec"
	"syscall"
)

// SysProcAttr puts the process in its own group and has it killed when its parent dies.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// Terminate asks the whole group to stop.
func Terminate(cmd *exec.Cmd) error { return signal(cmd, syscall.SIGTERM) }

// Kill stops the whole group at once.
func Kill(cmd *exec.Cmd) { _ = signal(cmd, syscall.SIGKILL) }

func signal(cmd *exec.Cmd, sig syscall.Signal) error {
	err := syscall.Kill(-cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil // the whole group has already gone
	}
	return err
}

// Alive reports whether any process of the group led by pid still exists.
func Alive(pid int) bool {
	return !errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH)
}
