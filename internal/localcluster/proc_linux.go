package localcluster

import (
	"errors"
	"os/exec"
	"syscall"
)

// sysProcAttr puts each component in its own process group, so Stop reaches anything it forks, and asks the
// kernel to kill it if the process that started it dies without calling Stop (a test binary killed by timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func terminateGroup(cmd *exec.Cmd) error {
	return signalGroup(cmd, syscall.SIGTERM)
}

func killGroup(cmd *exec.Cmd) {
	_ = signalGroup(cmd, syscall.SIGKILL)
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	err := syscall.Kill(-cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil // the whole group has already gone
	}
	return err
}

// groupAlive reports whether any process of the group led by pid still exists.
func groupAlive(pid int) bool {
	return !errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH)
}
