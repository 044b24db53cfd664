package localcluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/ferrycd/ferry/internal/procgroup"
)

// tailLines is how much of a failing component's log an error carries: enough to show the cause, short enough
// to read in a test failure.
const tailLines = 40

// process is one running component. Its output goes to a log file; a goroutine waits for it so that an early
// exit is seen at once (done is closed) and the process is always reaped.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error // valid once done is closed
}

// Process names a running component and its process id (also its process group id).
type Process struct {
	Name string
	PID  int
}

// startProcess runs bin with args in its own process group, its output appended to logPath (created fresh).
func startProcess(name, bin string, args []string, logPath string) (*process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating %s's log: %w", name, err)
	}
	// The child holds its own copy of the descriptor; ours is not needed once it has started.
	defer log.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = procgroup.SysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes an unexpected exit with the end of the component's log, where the cause is.
func (p *process) exitError() error {
	status := "exit status 0"
	if p.exitErr != nil {
		status = p.exitErr.Error()
	}
	tail := p.logTail()
	if strings.Contains(tail, "address already in use") {
		return fmt.Errorf("%s exited (%s): %w%s", p.name, status, errPortTaken, tail)
	}
	return fmt.Errorf("%s exited (%s)%s", p.name, status, tail)
}

// errPortTaken marks a component that could not bind its port: another process took it after it was chosen.
var errPortTaken = errors.New("its port was taken")

// logTail is the end of the log formatted to follow an error message.
func (p *process) logTail() string {
	if p == nil {
		return ""
	}
	tail, err := tailFile(p.logPath, tailLines)
	if err != nil {
		return fmt.Sprintf("; reading its log: %v", err)
	}
	if tail == "" {
		return fmt.Sprintf("; its log %s is empty", p.logPath)
	}
	return fmt.Sprintf("; last lines of %s:\n%s", p.logPath, tail)
}

// stop asks the process group to end (SIGTERM), waits up to grace, then kills the group. A process that ends on
// SIGTERM is a clean stop whatever its exit status; one that had to be killed is reported.
func (p *process) stop(grace time.Duration) error {
	var err error
	if !p.exited() {
		err = p.terminate(grace)
	}
	// Whatever the leader left behind goes too, and is waited for.
	procgroup.Kill(p.cmd)
	if !waitGroupGone(p.cmd.Process.Pid, groupGoneTimeout) {
		err = errors.Join(err, fmt.Errorf("%s: processes of group %d still exist after SIGKILL", p.name, p.cmd.Process.Pid))
	}
	return err
}

// groupGoneTimeout bounds the wait for killed processes to be reaped (by their parent or by init).
const groupGoneTimeout = 5 * time.Second

// terminate sends SIGTERM to the group and waits up to grace for the leader to exit, then kills it.
func (p *process) terminate(grace time.Duration) error {
	if err := procgroup.Terminate(p.cmd); err != nil && !p.exited() {
		procgroup.Kill(p.cmd)
		<-p.done
		return fmt.Errorf("stopping %s: %w", p.name, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	}
	procgroup.Kill(p.cmd)
	<-p.done
	return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.name, grace)
}

// waitGroupGone polls until no process of the group led by pid exists; it reports false on timeout.
func waitGroupGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for procgroup.Alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond) // nothing to wait on: reaping happens in another process
	}
	return true
}

// tailFile returns the last n lines of path, reading at most the final 64 KiB.
func tailFile(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	const window = 64 << 10
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	offset := max(info.Size()-window, 0)
	buf := make([]byte, info.Size()-offset)
	if _, err := f.ReadAt(buf, offset); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	lines := strings.Split(string(bytes.TrimRight(buf, "\n")), "\n")
	if offset > 0 && len(lines) > 1 {
		lines = lines[1:] // the first line was cut by the window
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n"), nil
}
