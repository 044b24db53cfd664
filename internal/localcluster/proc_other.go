//go:build !linux

package localcluster

import (
	"os"
	"os/exec"
	"syscall"
)

// sysProcAttr has no process groups to set outside Linux; Stop signals the component itself.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func terminateGroup(cmd *exec.Cmd) error { return cmd.Process.Signal(os.Interrupt) }

func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }

// groupAlive reports whether the process still exists.
func groupAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	return err == nil && p.Signal(syscall.Signal(0)) == nil
}
