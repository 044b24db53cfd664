package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Component names, also the names of their log files (<name>.log) in the state folder's logs/.
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
	Kwok              = "kwok"
)

const (
	// DefaultStartTimeout bounds Start when the context has no deadline: about 4 s on an idle machine, many times
	// that on a loaded two-core CI runner that is building other things.
	DefaultStartTimeout = 3 * time.Minute
	// stopGrace is how long a component gets to shut down after SIGTERM before it is killed.
	stopGrace = 15 * time.Second
)

// Options say where the binaries are and where the cluster keeps its state.
type Options struct {
	// Dir holds the cluster's state: certificates, tokens, kubeconfigs, etcd data and logs/. It is created when
	// missing; a cluster started earlier in the same folder is replaced (its etcd data is removed). Empty means a
	// temporary folder that Stop removes.
	Dir string
	// BinDir holds etcd, kube-apiserver, kube-controller-manager and kube-scheduler (hack/controlplane.sh).
	BinDir string
	// KwokBin is the kwok binary (hack/kwok.sh).
	KwokBin string
	// KwokStagesDir holds kwok's Stage objects (*.yaml); empty means stages/ next to KwokBin.
	KwokStagesDir string
	// Nodes is the number of fake Nodes kwok manages; zero means one.
	Nodes int
}

// Cluster is a running local cluster. Stop it when done; it is safe to call Stop more than once.
type Cluster struct {
	// Dir is the state folder.
	Dir string
	// Kubeconfig is the path of a kubeconfig for the cluster's admin (group system:masters).
	Kubeconfig string
	// RESTConfig is the admin's client configuration.
	RESTConfig *rest.Config
	// NodeNames are the fake Nodes, all Ready when Start returns.
	NodeNames []string

	opts     Options
	tempDir  bool
	pki      *pki
	ports    ports
	tokens   map[string]string // user → bearer token
	mu       sync.Mutex
	procs    []*process // in start order
	stopOnce sync.Once
	stopErr  error
}

// Start starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on free loopback ports,
// creates the fake Nodes and returns once every component is healthy, every Node is Ready and schedulable and
// the controllers have created the default ServiceAccount. On failure it stops whatever it started and the error
// carries the end of the failing component's log. ctx bounds the startup only (DefaultStartTimeout when it has
// no deadline); the cluster runs until Stop.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStartTimeout)
		defer cancel()
	}
	for attempt := 1; ; attempt++ {
		c, err := prepare(opts)
		if err != nil {
			return nil, err
		}
		err = c.start(ctx)
		if err == nil {
			return c, nil
		}
		if stopErr := c.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		// A free port can be taken by another process between choosing it and binding it; new ports fix that.
		if !errors.Is(err, errPortTaken) || attempt == portAttempts || ctx.Err() != nil {
			return nil, fmt.Errorf("starting the local cluster in %s: %w", c.Dir, err)
		}
	}
}

// portAttempts is how many times Start chooses new ports when one was taken before a component could bind it.
const portAttempts = 3

// prepare checks the options, lays out the state folder and writes certificates, tokens and kubeconfigs.
func prepare(opts Options) (*Cluster, error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, Dir: opts.Dir}
	if c.Dir == "" {
		dir, err := os.MkdirTemp("", "ferry-localcluster-")
		if err != nil {
			return nil, fmt.Errorf("creating a state folder: %w", err)
		}
		c.Dir, c.tempDir = dir, true
	}
	// Components run with paths to their files; absolute ones hold wherever a caller later changes directory.
	abs, err := filepath.Abs(c.Dir)
	if err != nil {
		c.removeTemp()
		return nil, fmt.Errorf("resolving the state folder %s: %w", c.Dir, err)
	}
	c.Dir = abs
	if err := c.layout(); err != nil {
		c.removeTemp()
		return nil, err
	}
	return c, nil
}

// complete fills defaults and checks that every binary is there, so a missing one is named before anything runs.
func (o *Options) complete() error {
	if o.Nodes < 0 {
		return fmt.Errorf("options.Nodes: must not be negative, got %d", o.Nodes)
	}
	if o.Nodes == 0 {
		o.Nodes = 1
	}
	if o.BinDir == "" {
		return errors.New("options.BinDir: the folder of etcd and the kube-* binaries is required (hack/controlplane.sh prints it)")
	}
	if o.KwokBin == "" {
		return errors.New("options.KwokBin: the kwok binary is required (hack/kwok.sh prints it)")
	}
	if o.KwokStagesDir == "" {
		o.KwokStagesDir = filepath.Join(filepath.Dir(o.KwokBin), "stages")
	}
	for _, bin := range []string{o.bin(Etcd), o.bin(APIServer), o.bin(ControllerManager), o.bin(Scheduler), o.KwokBin} {
		if err := checkExecutable(bin); err != nil {
			return err
		}
	}
	_, err := stageFiles(o.KwokStagesDir)
	return err
}

func (o *Options) bin(name string) string { return filepath.Join(o.BinDir, name) }

func checkExecutable(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("binary %s: %w", path, err)
	}
	if info.IsDir() || info.Mode()&0o111 == 0 {
		return fmt.Errorf("binary %s: not an executable file", path)
	}
	return nil
}

// start runs the components in dependency order. The three clients of the API server start together, since
// none of them needs another to become healthy.
func (c *Cluster) start(ctx context.Context) error {
	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	if err := c.startAPIServer(ctx); err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(c.RESTConfig)
	if err != nil {
		return fmt.Errorf("creating a client: %w", err)
	}
	if err := c.startClients(ctx); err != nil {
		return err
	}
	if err := c.createNodes(ctx, client); err != nil {
		return err
	}
	return c.waitForNodesSchedulable(ctx, client)
}

// Processes lists the running components with their process ids, in start order.
func (c *Cluster) Processes() []Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Process, 0, len(c.procs))
	for _, p := range c.procs {
		out = append(out, Process{Name: p.name, PID: p.cmd.Process.Pid})
	}
	return out
}

// LogPath is the log file of a component (Etcd, APIServer, ControllerManager, Scheduler or Kwok).
func (c *Cluster) LogPath(component string) string {
	return filepath.Join(c.Dir, "logs", component+".log")
}

// LogTail returns the last n lines of a component's log, for a test to show when it fails.
func (c *Cluster) LogTail(component string, n int) string {
	tail, err := tailFile(c.LogPath(component), n)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", c.LogPath(component), err)
	}
	return tail
}

// Stop stops every component — kwok, the scheduler and the controller manager first, then the API server, then
// etcd — and waits for each to exit. It reports components that had to be killed. A temporary state folder is
// removed. Calling Stop again returns the first call's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		procs := c.procs
		c.mu.Unlock()
		var errs []error
		// Reverse start order, in waves: the API server's clients, then the API server, then etcd.
		for _, wave := range [][]string{{Kwok, Scheduler, ControllerManager}, {APIServer}, {Etcd}} {
			errs = append(errs, stopAll(procs, wave)...)
		}
		c.removeTemp()
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// stopAll stops the named processes concurrently and returns their errors.
func stopAll(procs []*process, names []string) []error {
	var wg sync.WaitGroup
	errs := make([]error, len(procs))
	for i, p := range procs {
		if !slices.Contains(names, p.name) {
			continue
		}
		wg.Go(func() { errs[i] = p.stop(stopGrace) })
	}
	wg.Wait()
	return errs
}

func (c *Cluster) removeTemp() {
	if c.tempDir {
		_ = os.RemoveAll(c.Dir)
	}
}

// run starts a component and records it for Stop and for early-exit detection.
func (c *Cluster) run(name, bin string, args []string) (*process, error) {
	p, err := startProcess(name, bin, args, c.LogPath(name))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}
