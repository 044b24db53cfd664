package gitops

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
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
	if err := checkBranch(r.Branch); err != nil {
		return nil, err
	}
	return checkURL(r.URL, r.InsecureHTTP)
}

// checkBranch refuses names git would refuse (or read as options or revision syntax).
func checkBranch(name string) error {
	bad := name == "" || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") ||
		strings.HasSuffix(name, ".lock") || strings.Contains(name, "..") || strings.Contains(name, "//") ||
		strings.Contains(name, "@{") || strings.ContainsFunc(name, func(r rune) bool {
		return r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r)
	})
	if bad {
		return fmt.Errorf("branch %q is not a valid branch name", name)
	}
	return nil
}

// Options tune an Engine; zero values pick the defaults.
type Options struct {
	// CacheDir holds one bare, shallow repository per URL, in which every branch Ferry reads or writes is a ref,
	// so a pull-request branch made from a base shares the base's objects. It must belong to this process alone.
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
	// ObjectCacheBytes bounds the decoded Git objects kept in memory, for all repositories together (default
	// 8 MiB). Objects are named by their hash, so one cache serves every repository; go-git's own default, 96 MiB
	// per repository, adds up fast when one controller serves many.
	ObjectCacheBytes int64
	// MaxRepositoryBytes bounds the disk one repository's cache may take (default 512 MiB). A fetch that would
	// take it past is refused with ErrTooLarge and the cache dropped, so the next fetch starts afresh; a cache
	// filled by earlier fetches is cloned afresh at once. CacheDir needs this much per repository in use, plus
	// as much again for the download under way.
	MaxRepositoryBytes int64
	// MaxCheckoutBytes bounds what one Checkout writes, each file and folder counted in whole 4 KiB blocks
	// (default 256 MiB).
	MaxCheckoutBytes int64
	// MaxFileBytes bounds each file a Checkout writes and any Git object Ferry reads into memory: the files a pin
	// reads and rewrites, ReadFile's, commits and trees (default 8 MiB).
	MaxFileBytes int64
	// Now stamps commits (default time.Now).
	Now func() time.Time
}

const defaultObjectCacheBytes = 8 * cache.MiByte

// Engine pins image digests in Git repositories. It is safe for concurrent use.
type Engine struct {
	opts Options
	// objects holds decoded objects of every repository, bounded by opts.ObjectCacheBytes.
	objects cache.Object

	mu    sync.Mutex
	repos map[string]*cachedRepo
	swept time.Time // when idle caches were last looked for
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
	return &Engine{opts: opts, repos: map[string]*cachedRepo{}, objects: cache.NewObjectLRU(opts.objectCacheBytes())}, nil
}

// cachedRepo is the local cache of one repository; each branch Ferry uses is a ref in it. storeMu guards every
// use of store and is held only for local work (reading trees, building objects, writing fetched packs). The
// fetch locks coalesce fetches of one branch, so concurrent callers that need the same new tip download it once,
// while callers that already have their tip, or want another branch, never wait on it. They are striped by branch
// name so that the many short-lived pull-request branches do not grow a map without bound.
type cachedRepo struct {
	endpoint *transport.Endpoint
	name     string // the URL without credentials, for errors
	dir      string
	// objects keeps decoded objects in memory; it is the Engine's, shared by every repository.
	objects cache.Object
	// maxObject bounds the objects store decodes (Options.MaxFileBytes).
	maxObject int64

	// used is when the cache was last asked for (under Engine.mu); see repoIdleTTL.
	used time.Time

	storeMu sync.Mutex
	store   *boundedStore
	fs      *limitFS // under store: bounds what a fetch writes
	// gen counts compactions; a pack downloaded against an older generation is discarded (its deltas and the
	// objects the server left out may refer to what the compaction dropped).
	gen uint64

	fetchMu [16]sync.Mutex
}

// fetchLock is the lock that coalesces fetches of branch.
func (c *cachedRepo) fetchLock(branch string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(branch))
	return &c.fetchMu[h.Sum32()%uint32(len(c.fetchMu))]
}

func (e *Engine) repo(r Remote) (*cachedRepo, error) {
	ep, err := r.validate()
	if err != nil {
		return nil, err
	}
	key := cacheKey(r)
	e.mu.Lock()
	now := e.opts.Now()
	idle := e.takeIdle(now)
	defer removeAll(idle) // after the lock is released: removing a cache from disk may take a while
	defer e.mu.Unlock()
	if c, ok := e.repos[key]; ok {
		c.used = now
		return c, nil
	}
	c := &cachedRepo{endpoint: ep, name: redact(r.URL), dir: filepath.Join(e.opts.CacheDir, key), objects: e.objects,
		maxObject: e.opts.maxFileBytes(), used: now}
	if err := c.open(); err != nil {
		return nil, fmt.Errorf("creating cache for %s: %w", redact(r.URL), err)
	}
	e.repos[key] = c
	return c, nil
}

// cacheKey names the cache of a repository as reached with one set of credentials. Two tenants' Promotions
// that name the same URL with different credentials never share a cache, so a commit one of them fetched can
// never be read by the other without the server granting it; a hash, so that no credential is kept in it.
func cacheKey(r Remote) string {
	a := r.Auth
	parts := []string{r.URL, a.Username, a.Password, string(a.SSHKey), a.SSHKeyPassphrase, string(a.SSHKnownHosts),
		fmt.Sprint(a.SSHInsecureIgnoreHostKey, r.InsecureHTTP)}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:12])
}

// repoIdleTTL is how long a repository cache is kept unused before it is removed, from memory and disk: a
// Promotion deleted, or a credential rotated, leaves its cache behind that long. Every use of a cache ends within
// a reconcile's deadline (minutes), so one idle this long is not in use.
const repoIdleTTL = time.Hour

// takeIdle removes the caches unused for repoIdleTTL from the engine and returns them. e.mu must be held.
func (e *Engine) takeIdle(now time.Time) []*cachedRepo {
	if now.Sub(e.swept) < repoIdleTTL/4 {
		return nil
	}
	e.swept = now
	var idle []*cachedRepo
	for k, c := range e.repos {
		if now.Sub(c.used) > repoIdleTTL {
			idle = append(idle, c)
			delete(e.repos, k)
		}
	}
	return idle
}

// removeAll deletes the caches' folders, each under its store lock so that no local work is cut short.
func removeAll(caches []*cachedRepo) {
	for _, c := range caches {
		_ = c.locked(func() error {
			c.gen++ // a download under way against it is discarded
			return os.RemoveAll(c.dir)
		})
	}
}

// Repositories says how many repository caches the engine keeps.
func (e *Engine) Repositories() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.repos)
}

func (o Options) objectCacheBytes() cache.FileSize {
	if o.ObjectCacheBytes > 0 {
		return cache.FileSize(o.ObjectCacheBytes)
	}
	return defaultObjectCacheBytes
}

// open initialises (when new) and opens the bare cache repository.
func (c *cachedRepo) open() error {
	if _, err := os.Stat(filepath.Join(c.dir, "HEAD")); err != nil {
		if _, err := git.PlainInit(c.dir, true); err != nil && !errors.Is(err, git.ErrRepositoryAlreadyExists) {
			return err
		}
	}
	c.fs = newLimitFS(osfs.New(c.dir))
	c.store = &boundedStore{Storage: filesystem.NewStorage(c.fs, c.objects), repo: c.name, limit: c.maxObject}
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
	return c.locked(c.drop)
}

// drop empties the cache; fetches that were downloading against it start over (see gen). Callers hold the
// store lock.
func (c *cachedRepo) drop() error {
	c.gen++
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("dropping the cache of %s: %w", c.name, err)
	}
	if err := c.open(); err != nil {
		return fmt.Errorf("re-creating the cache of %s: %w", c.name, err)
	}
	return nil
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

// localTip is the commit the cache last saw at branch's tip (zero when it has none).
func (c *cachedRepo) localTip(branch plumbing.ReferenceName) plumbing.Hash {
	ref, err := c.store.Reference(branch)
	if err != nil {
		return plumbing.ZeroHash
	}
	return ref.Hash()
}

// haves lists the cached tips of every branch (at most maxHaves), so a fetch of a new pull-request branch
// downloads only what its base does not already hold. Callers hold the store lock.
func (c *cachedRepo) haves() []plumbing.Hash {
	const maxHaves = 32
	iter, err := c.store.IterReferences()
	if err != nil {
		return nil
	}
	defer iter.Close()
	var out []plumbing.Hash
	_ = iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() == plumbing.HashReference && ref.Name().IsBranch() && len(out) < maxHaves &&
			c.store.HasEncodedObject(ref.Hash()) == nil {
			out = append(out, ref.Hash())
		}
		return nil
	})
	return out
}

func (c *cachedRepo) hasCommit(h plumbing.Hash) bool {
	c.storeMu.Lock()
	defer c.storeMu.Unlock()
	return c.store.HasEncodedObject(h) == nil
}

func (c *cachedRepo) setTip(branch plumbing.ReferenceName, h plumbing.Hash) error {
	if err := c.store.SetReference(plumbing.NewHashReference(branch, h)); err != nil {
		return fmt.Errorf("recording tip %s of %s in the cache: %w", h, branch.Short(), err)
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
