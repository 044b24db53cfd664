package gitops

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Remote names a branch of a repository and how to reach it.
type Remote struct {
	URL    string
	Branch string
	Auth   Auth
	// InsecureHTTP allows plain http:// to a non-loopback host.
	InsecureHTTP bool
}

func (r Remote) validate() (*transport.Endpoint, error) {
	if r.Branch == "" || strings.ContainsAny(r.Branch, " ~^:?*[\\") || strings.HasPrefix(r.Branch, "-") {
		return nil, fmt.Errorf("branch %q is not a valid branch name", r.Branch)
	}
	return checkURL(r.URL, r.InsecureHTTP)
}

// Options tune an Engine; zero values pick the defaults.
type Options struct {
	// CacheDir holds one bare, shallow repository per URL and branch. It must belong to this process alone.
	CacheDir string
	// Depth is how many commits of history the cache keeps and searches for Ferry's own commits (default 50).
	Depth int
	// MaxAttempts bounds pushes per Pin when other writers keep winning the race (default 16). Every lost race
	// means another writer landed, so it should exceed the number of writers expected on one branch at once.
	MaxAttempts int
	// RetryBase is the first back-off between push attempts; later ones double, with jitter (default 50ms).
	RetryBase time.Duration
	// MaxPacks bounds the packs a cache may collect (one per incremental fetch) before it is dropped and cloned
	// afresh at the next fetch, since every object lookup scans every pack index (default 64).
	MaxPacks int
	// Now stamps commits (default time.Now).
	Now func() time.Time
}

// Engine pins image digests in Git repositories. It is safe for concurrent use.
type Engine struct {
	opts Options

	mu    sync.Mutex
	repos map[string]*cachedRepo
}

// New returns an Engine caching repositories under opts.CacheDir.
func New(opts Options) (*Engine, error) {
	if opts.CacheDir == "" {
		return nil, errors.New("cache dir is required")
	}
	if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating cache dir: %w", err)
	}
	if opts.Depth <= 0 {
		opts.Depth = 50
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 16
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = 50 * time.Millisecond
	}
	if opts.MaxPacks <= 0 {
		opts.MaxPacks = 64
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Engine{opts: opts, repos: map[string]*cachedRepo{}}, nil
}

// cachedRepo is the local cache of one branch. storeMu guards every use of store and is held only for local work
// (reading trees, building objects, writing fetched packs); fetchMu coalesces fetches so concurrent Pins that
// need the same new tip download it once, while Pins that already have their tip never wait on it.
type cachedRepo struct {
	branch   plumbing.ReferenceName
	endpoint *transport.Endpoint
	dir      string

	storeMu sync.Mutex
	store   *filesystem.Storage

	fetchMu sync.Mutex
}

func (e *Engine) repo(r Remote) (*cachedRepo, error) {
	ep, err := r.validate()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(r.URL + "\x00" + r.Branch))
	key := hex.EncodeToString(sum[:12])
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.repos[key]; ok {
		return c, nil
	}
	c := &cachedRepo{branch: plumbing.NewBranchReferenceName(r.Branch), endpoint: ep,
		dir: filepath.Join(e.opts.CacheDir, key)}
	if err := c.open(); err != nil {
		return nil, fmt.Errorf("creating cache for %s: %w", redact(r.URL), err)
	}
	e.repos[key] = c
	return c, nil
}

// open initialises (when new) and opens the bare cache repository.
func (c *cachedRepo) open() error {
	if _, err := os.Stat(filepath.Join(c.dir, "HEAD")); err != nil {
		if _, err := git.PlainInit(c.dir, true); err != nil && !errors.Is(err, git.ErrRepositoryAlreadyExists) {
			return err
		}
	}
	c.store = filesystem.NewStorage(osfs.New(c.dir), cache.NewObjectLRUDefault())
	return nil
}

// compact drops a cache that has collected more than maxPacks packs; the fetch that follows clones it afresh
// (shallow), which costs one clone every maxPacks fetches instead of a slower lookup on every one.
func (c *cachedRepo) compact(maxPacks int) error {
	entries, err := os.ReadDir(filepath.Join(c.dir, "objects", "pack"))
	if err != nil {
		return nil // no pack folder yet
	}
	packs := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".pack") {
			packs++
		}
	}
	if packs <= maxPacks {
		return nil
	}
	return c.locked(func() error {
		if err := os.RemoveAll(c.dir); err != nil {
			return fmt.Errorf("dropping bloated cache: %w", err)
		}
		if err := c.open(); err != nil {
			return fmt.Errorf("re-creating cache: %w", err)
		}
		return nil
	})
}

// transportFor opens the go-git transport and auth for a remote.
func transportFor(c *cachedRepo, r Remote) (transport.Transport, transport.AuthMethod, error) {
	auth, err := r.Auth.method(c.endpoint)
	if err != nil {
		return nil, nil, err
	}
	t, err := client.NewClient(c.endpoint)
	if err != nil {
		return nil, nil, fmt.Errorf("opening transport: %w", err)
	}
	return t, auth, nil
}

// localTip is the commit the cache last saw at the branch tip (zero when the cache is empty).
func (c *cachedRepo) localTip() plumbing.Hash {
	ref, err := c.store.Reference(c.branch)
	if err != nil {
		return plumbing.ZeroHash
	}
	return ref.Hash()
}

func (c *cachedRepo) hasCommit(h plumbing.Hash) bool {
	c.storeMu.Lock()
	defer c.storeMu.Unlock()
	return c.store.HasEncodedObject(h) == nil
}

func (c *cachedRepo) setTip(h plumbing.Hash) error {
	if err := c.store.SetReference(plumbing.NewHashReference(c.branch, h)); err != nil {
		return fmt.Errorf("recording tip %s in the cache: %w", h, err)
	}
	return nil
}

// locked runs fn with the store lock held.
func (c *cachedRepo) locked(fn func() error) error {
	c.storeMu.Lock()
	defer c.storeMu.Unlock()
	return fn()
}

// ep returns a copy of the endpoint for one session: go-git's HTTP session rewrites its endpoint when the server
// redirects, so sessions must not share one.
func (c *cachedRepo) ep() *transport.Endpoint {
	ep := *c.endpoint
	return &ep
}
