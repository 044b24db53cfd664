// Package promserver runs a real Prometheus, and optionally a Pushgateway it scrapes, on loopback ports for
// tests, the e2e suite and `make demo`: a temporary configuration and storage, readiness waited for, an outage
// on demand (Stop kills Prometheus and keeps its port and storage, Restart brings it back) and pushes to the
// Pushgateway. The binaries are Debian's prometheus and prometheus-pushgateway packages (hack/prometheus.sh
// installs them and prints their paths; tests read them from FERRY_PROMETHEUS and FERRY_PUSHGATEWAY).
//
// Nothing here knows about testing.T: errors are returned, and Close stops every process and removes what
// Start created. Processes run in their own process group and, on Linux, are killed by the kernel if the
// process that started them dies without calling Close.
package promserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrycd/ferry/internal/procgroup"
)

// Options say which binaries to run and what Prometheus scrapes.
type Options struct {
	// Prometheus is the prometheus binary (required).
	Prometheus string
	// Pushgateway is the prometheus-pushgateway binary; when set, a Pushgateway is started on loopback and
	// scraped with honor_labels, so pushed series keep their own job and instance labels.
	Pushgateway string
	// Targets are extra scrape targets "127.0.0.1:port", scraped at /metrics (job "targets").
	Targets []string
	// ScrapeInterval is how often every target is scraped (and rules evaluated); 0 means 1s.
	ScrapeInterval time.Duration
	// Dir holds the configuration and the storage; "" means a temporary folder that Close removes.
	Dir string
	// Log receives the processes' output, each line prefixed with the process name; nil discards it.
	Log io.Writer
}

// Server is a running Prometheus (and Pushgateway).
type Server struct {
	// URL is Prometheus's base URL, e.g. http://127.0.0.1:40123.
	URL string
	// PushURL is the Pushgateway's base URL, "" without a Pushgateway.
	PushURL string

	o       Options
	dir     string
	tempDir bool
	config  string
	storage string
	addr    string // Prometheus's host:port, kept across Restart
	logMu   sync.Mutex
	client  *http.Client

	mu     sync.Mutex // guards prom, pgw and closed
	prom   *process
	pgw    *process
	closed bool
}

// readyTimeout bounds each wait for a process to answer /-/ready: generous, because CI runs these beside a
// cluster and a controller built with the race detector on two cores.
const readyTimeout = time.Minute

// portAttempts is how many times Start picks new ports when another process took one in between.
const portAttempts = 3

// Start writes the configuration, starts the Pushgateway (when asked for) and Prometheus on free loopback ports
// and waits until both answer /-/ready, at most a minute or until ctx ends. On error nothing is left running.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Prometheus == "" {
		return nil, errors.New("promserver: Options.Prometheus (the prometheus binary) is required")
	}
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	for _, t := range o.Targets {
		if err := checkLoopback(t); err != nil {
			return nil, fmt.Errorf("promserver: target %q: %w", t, err)
		}
	}
	s := &Server{o: o, dir: o.Dir, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, // loopback only; no proxy, no stale conns across restarts
	}}
	if s.dir == "" {
		dir, err := os.MkdirTemp("", "promserver-")
		if err != nil {
			return nil, fmt.Errorf("promserver: %w", err)
		}
		s.dir, s.tempDir = dir, true
	} else if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("promserver: %w", err)
	}
	s.config = filepath.Join(s.dir, "prometheus.yml")
	s.storage = filepath.Join(s.dir, "data")
	if err := s.start(ctx); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	if s.o.Pushgateway != "" {
		var err error
		for attempt := 0; ; attempt++ {
			addr, perr := freeAddr()
			if perr != nil {
				return perr
			}
			s.pgw, err = s.run(ctx, "pushgateway", addr, s.o.Pushgateway, "--web.listen-address="+addr)
			if err == nil {
				s.PushURL = "http://" + addr
				break
			}
			if !errors.Is(err, errPortTaken) || attempt+1 == portAttempts {
				return err
			}
		}
	}
	if err := s.writeConfig(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		s.addr = addr
		s.prom, err = s.runPrometheus(ctx)
		if err == nil {
			s.URL = "http://" + addr
			return nil
		}
		if !errors.Is(err, errPortTaken) || attempt+1 == portAttempts {
			return err
		}
	}
}

// writeConfig writes prometheus.yml: the Pushgateway (honor_labels) and the extra targets.
func (s *Server) writeConfig() error {
	every := strconv.FormatInt(s.o.ScrapeInterval.Milliseconds(), 10) + "ms"
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n", every, every, every)
	b.WriteString("scrape_configs:\n")
	if s.PushURL != "" {
		fmt.Fprintf(&b, "  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: [%q]\n",
			strings.TrimPrefix(s.PushURL, "http://"))
	}
	if len(s.o.Targets) > 0 {
		b.WriteString("  - job_name: targets\n    static_configs:\n      - targets:\n")
		for _, t := range s.o.Targets {
			fmt.Fprintf(&b, "          - %q\n", t)
		}
	}
	if err := os.WriteFile(s.config, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("promserver: writing %s: %w", s.config, err)
	}
	return nil
}

func (s *Server) runPrometheus(ctx context.Context) (*process, error) {
	return s.run(ctx, "prometheus", s.addr, s.o.Prometheus,
		"--config.file="+s.config,
		"--storage.tsdb.path="+s.storage,
		"--web.listen-address="+s.addr,
	)
}

// run starts bin and waits for it to answer http://addr/-/ready; on error the process is gone.
func (s *Server) run(ctx context.Context, name, addr, bin string, args ...string) (*process, error) {
	p, err := startProcess(name, bin, args, &lineWriter{mu: &s.logMu, dst: s.o.Log, prefix: name + ": "})
	if err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, p, "http://"+addr+"/-/ready"); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

func (s *Server) waitReady(ctx context.Context, p *process, url string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := s.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %s", url, resp.Status)
		}
		last = err
		select {
		case <-p.done:
			return p.exitError()
		case <-ctx.Done():
			return fmt.Errorf("promserver: %s not ready at %s: %w (last: %v)%s", p.name, url, ctx.Err(), last, p.out.tail())
		case <-tick.C:
		}
	}
}

// Stop kills Prometheus, as a crash or an outage would, and keeps its port and storage for Restart; the
// Pushgateway keeps running. Stopping a stopped Prometheus does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("promserver: Stop after Close")
	}
	if s.prom != nil {
		s.prom.kill()
		s.prom = nil
	}
	return nil
}

// Restart starts Prometheus again on the same port with the same storage (stopping it first if it runs) and
// waits until it is ready. It fails if another process took the port meanwhile.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("promserver: Restart after Close")
	}
	if s.prom != nil {
		s.prom.kill()
		s.prom = nil
	}
	p, err := s.runPrometheus(ctx)
	if err != nil {
		return err
	}
	s.prom = p
	return nil
}

// WaitScraped waits until Prometheus has scraped every target (the Pushgateway and Options.Targets) successfully,
// at most a minute or until ctx ends. Prometheus hands new targets to its scrapers every 5 seconds, so the first
// scrape after Start or Restart comes up to that late; a caller that must not see "no data" waits here.
func (s *Server) WaitScraped(ctx context.Context) error {
	want := len(s.o.Targets)
	if s.PushURL != "" {
		want++
	}
	if want == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		n, err := s.countUp(ctx)
		if err == nil && n == want {
			return nil
		}
		last = fmt.Sprintf("%d of %d targets up (%v)", n, want, err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("promserver: waiting for the first scrapes: %w; last: %s", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// countUp asks Prometheus how many targets its last scrape found up.
func (s *Server) countUp(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/query?query="+url.QueryEscape("count(up == 1)"), nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return 0, fmt.Errorf("%s: %w", resp.Status, err)
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("%s: status %q", resp.Status, body.Status)
	}
	if len(body.Data.Result) == 0 {
		return 0, nil // no target up yet: count() of nothing is nothing
	}
	text, _ := body.Data.Result[0].Value[1].(string)
	n, err := strconv.Atoi(text)
	if err != nil {
		return 0, fmt.Errorf("count(up == 1) = %q", text)
	}
	return n, nil
}

// Running reports whether Prometheus runs (it is not between Stop and Restart, and was not closed).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prom != nil && !s.prom.exited()
}

// Push replaces the Pushgateway's group job/grouping with the metrics of exposition (Prometheus's text format),
// as an HTTP PUT does: series of the group that exposition leaves out are gone. Label values that are empty or
// contain a slash are sent base64-encoded, as the Pushgateway's API asks.
func (s *Server) Push(ctx context.Context, job string, grouping map[string]string, exposition string) error {
	if s.PushURL == "" {
		return errors.New("promserver: Push without a Pushgateway (Options.Pushgateway is empty)")
	}
	if job == "" {
		return errors.New("promserver: Push needs a job name")
	}
	path := "/metrics/job" + pathLabel("", job)
	keys := make([]string, 0, len(grouping))
	for k := range grouping {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		path += pathLabel(k, grouping[k])
	}
	if !strings.HasSuffix(exposition, "\n") {
		exposition += "\n"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.PushURL+path, strings.NewReader(exposition))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("promserver: push to %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("promserver: push to %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// pathLabel is "/name/value" of a Pushgateway URL ("/value" for the job), base64-encoded when it must be.
func pathLabel(name, value string) string {
	enc := value == "" || strings.Contains(value, "/")
	if enc {
		value = base64.URLEncoding.EncodeToString([]byte(value))
		if value == "" {
			value = "=" // the Pushgateway's spelling of an empty value
		}
	} else {
		value = url.PathEscape(value)
	}
	switch {
	case name == "" && enc:
		return "@base64/" + value
	case name == "":
		return "/" + value
	case enc:
		return "/" + name + "@base64/" + value
	}
	return "/" + name + "/" + value
}

// Close stops Prometheus and the Pushgateway and removes a temporary Dir. Closing twice does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	for _, p := range []*process{s.prom, s.pgw} {
		if p != nil {
			err = errors.Join(err, p.terminate(10*time.Second))
		}
	}
	s.prom, s.pgw = nil, nil
	if s.tempDir {
		err = errors.Join(err, os.RemoveAll(s.dir))
	}
	return err
}

// Dir is the folder of the configuration and the storage.
func (s *Server) Dir() string { return s.dir }

// freeAddr reserves a loopback port and releases it for a process to bind.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("promserver: picking a port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// checkLoopback accepts host:port on a loopback address only: nothing here may scrape or bind beyond the host.
func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("not a loopback address")
	}
	return nil
}

// process is one running binary; a goroutine reaps it so an early exit is seen at once.
type process struct {
	name    string
	cmd     *exec.Cmd
	out     *lineWriter
	done    chan struct{}
	exitErr error // valid once done is closed
}

// errPortTaken marks a process that could not bind its port: another process took it after it was picked.
var errPortTaken = errors.New("its port was taken")

func startProcess(name, bin string, args []string, out *lineWriter) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procgroup.SysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("promserver: starting %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) exitError() error {
	tail := p.out.tail()
	if strings.Contains(tail, "address already in use") {
		return fmt.Errorf("promserver: %s exited (%v): %w%s", p.name, p.exitErr, errPortTaken, tail)
	}
	return fmt.Errorf("promserver: %s exited before it was ready (%v)%s", p.name, p.exitErr, tail)
}

// kill ends the process group at once and waits until the process is reaped.
func (p *process) kill() {
	procgroup.Kill(p.cmd)
	<-p.done
}

// terminate asks the process group to end, waits up to grace, then kills it.
func (p *process) terminate(grace time.Duration) error {
	if p.exited() {
		procgroup.Kill(p.cmd) // anything it left behind
		return nil
	}
	if err := procgroup.Terminate(p.cmd); err != nil {
		p.kill()
		return fmt.Errorf("promserver: stopping %s: %w", p.name, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		procgroup.Kill(p.cmd)
		return nil
	case <-timer.C:
		p.kill()
		return fmt.Errorf("promserver: %s did not stop within %s of SIGTERM and was killed", p.name, grace)
	}
}

// tailLines is how much of a process's output an error carries.
const tailLines = 20

// lineWriter passes a process's output on, line by line with a prefix, under a lock shared by the server's
// processes (so a Log that is not safe for concurrent use still works), and keeps the last lines for errors.
type lineWriter struct {
	mu      *sync.Mutex
	dst     io.Writer
	prefix  string
	partial []byte
	last    []string
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		_, _ = io.WriteString(w.dst, w.prefix+line+"\n") // a failing log must not stop the process
		w.last = append(w.last, line)
		if len(w.last) > tailLines {
			w.last = w.last[len(w.last)-tailLines:]
		}
	}
	return len(b), nil
}

// tail formats the last lines to follow an error message.
func (w *lineWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := w.last
	if len(w.partial) > 0 {
		lines = append(slices.Clone(lines), string(w.partial))
	}
	if len(lines) == 0 {
		return "; it wrote nothing"
	}
	return "; its last lines:\n" + strings.Join(lines, "\n")
}
