package e2e

import (
	"errors"
	"syscall"
)

// processGroupAlive reports whether any process of the group led by pid still exists.
func processGroupAlive(pid int) bool {
	return !errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH)
}
