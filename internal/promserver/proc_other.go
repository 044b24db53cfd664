//go:build !linux

package promserver

import (
	"os"
	"os/exec"
	"syscall"
)

// sysProcAttr has no process groups to set outside Linux; the process itself is signalled.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func terminateGroup(cmd *exec.Cmd) error { return cmd.Process.Signal(os.Interrupt) }

func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
