package gitops

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// One Ferry serves many teams, and any of their Git servers may be hostile or broken: what a server sends is
// bounded on disk (the bytes each repository's cache may hold, the bytes a checkout writes) and in memory (the
// size of any object Ferry decodes). Input over a bound is refused with ErrTooLarge naming the repository and
// the Options field, never cut short.

// ErrTooLarge is returned when a repository, a checkout or a file is larger than the Engine's limits allow.
var ErrTooLarge = errors.New("too large")

// Defaults of the Options limits.
const (
	DefaultMaxRepositoryBytes = 512 << 20
	DefaultMaxCheckoutBytes   = 256 << 20
	DefaultMaxFileBytes       = 8 << 20
)

func (o Options) maxRepositoryBytes() int64 {
	if o.MaxRepositoryBytes > 0 {
		return o.MaxRepositoryBytes
	}
	return DefaultMaxRepositoryBytes
}

func (o Options) maxCheckoutBytes() int64 {
	if o.MaxCheckoutBytes > 0 {
		return o.MaxCheckoutBytes
	}
	return DefaultMaxCheckoutBytes
}

func (o Options) maxFileBytes() int64 {
	if o.MaxFileBytes > 0 {
		return o.MaxFileBytes
	}
	return DefaultMaxFileBytes
}

// errCacheFull: a write to a repository cache was refused because a fetch had used up what it may write.
var errCacheFull = errors.New("repository cache is full")

// limitFS is the filesystem under a repository cache. While a fetch stores its pack, only so many bytes may be
// written through it, so that neither the pack nor the index go-git builds for it (which grows with the number
// of objects, not the pack's bytes) can fill the disk. At other times (refs, a pin's few objects) it is plain.
type limitFS struct {
	billy.Filesystem
	w *writeAllowance // shared with every Chroot of it
}

func newLimitFS(inner billy.Filesystem) *limitFS {
	return &limitFS{Filesystem: inner, w: &writeAllowance{left: -1}}
}

// writeAllowance counts down the bytes a fetch may still write; a negative left means no limit.
type writeAllowance struct {
	mu      sync.Mutex
	left    int64
	refused bool
}

// allow lets n more bytes be written until unlimit.
func (l *limitFS) allow(n int64) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	l.w.left, l.w.refused = max(n, 0), false
}

// unlimit lifts the limit and reports whether a write was refused since allow.
func (l *limitFS) unlimit() (refused bool) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	refused, l.w.left, l.w.refused = l.w.refused, -1, false
	return refused
}

func (w *writeAllowance) take(n int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.left < 0 {
		return nil
	}
	if int64(n) > w.left {
		w.refused = true
		return errCacheFull
	}
	w.left -= int64(n)
	return nil
}

func (l *limitFS) Create(name string) (billy.File, error) {
	return l.wrap(l.Filesystem.Create(name))
}

func (l *limitFS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	return l.wrap(l.Filesystem.OpenFile(name, flag, perm))
}

func (l *limitFS) TempFile(dir, prefix string) (billy.File, error) {
	return l.wrap(l.Filesystem.TempFile(dir, prefix))
}

func (l *limitFS) Chroot(path string) (billy.Filesystem, error) {
	inner, err := l.Filesystem.Chroot(path)
	if err != nil {
		return nil, err
	}
	return &limitFS{Filesystem: inner, w: l.w}, nil
}

// Chmod lets go-git make packs and indexes read-only, as git does.
func (l *limitFS) Chmod(name string, mode os.FileMode) error {
	if c, ok := l.Filesystem.(billy.Chmod); ok {
		return c.Chmod(name, mode)
	}
	return billy.ErrNotSupported
}

func (l *limitFS) Capabilities() billy.Capability { return billy.Capabilities(l.Filesystem) }

func (l *limitFS) wrap(f billy.File, err error) (billy.File, error) {
	if err != nil {
		return nil, err
	}
	return &limitFile{File: f, w: l.w}, nil
}

// limitFile counts what is written to it. It offers nothing but billy.File, so io.Copy cannot go around Write.
type limitFile struct {
	billy.File
	w *writeAllowance
}

func (f *limitFile) Write(p []byte) (int, error) {
	if err := f.w.take(len(p)); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

// cacheUsage sums the sizes of the files under dir and counts its packs. Files that vanish while it looks
// (another fetch's temporary files) are skipped.
func cacheUsage(dir string) (bytes int64, packs int) {
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			bytes += info.Size()
		}
		if strings.HasSuffix(d.Name(), ".pack") {
			packs++
		}
		return nil
	})
	return bytes, packs
}

// boundedStore is a repository cache's object store that will not decode an object larger than the per-file
// limit: go-git reads an object whole into memory to use it, and a server can send a blob of gigabytes that
// compresses to almost nothing. The object's size comes from its header, so the refusal costs no read; it comes
// when the object's content is read, so that a tree holding a large file Ferry never opens is no obstacle, and
// the error names the file where one is read through a path.
type boundedStore struct {
	*filesystem.Storage
	repo  string // the repository's URL without credentials, for errors
	limit int64
}

func (s *boundedStore) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	o, err := s.Storage.EncodedObject(t, h)
	if err != nil || o.Size() <= s.limit {
		return o, err
	}
	return &refusedObject{EncodedObject: o, err: fmt.Errorf("%w: %s %s in %s is %d bytes, more than the %d Ferry reads (Options.MaxFileBytes)",
		ErrTooLarge, o.Type(), h.String()[:12], s.repo, o.Size(), s.limit)}, nil
}

// refusedObject is an object over the limit: its type and size can be asked, its content cannot be read.
type refusedObject struct {
	plumbing.EncodedObject
	err error
}

func (r *refusedObject) Reader() (io.ReadCloser, error) { return nil, r.err }

// diskBlock is what a file or folder takes on disk at least, as the disk (and an emptyDir's sizeLimit) counts.
const diskBlock = 4 << 10

// checkoutBudget bounds what one Checkout writes: each file, and all files and folders together, each counted
// in whole disk blocks, since a million empty files fill a volume too.
type checkoutBudget struct {
	repo                 string
	perFile, total, left int64
}

func (e *Engine) checkoutBudget(c *cachedRepo) *checkoutBudget {
	total := e.opts.maxCheckoutBytes()
	return &checkoutBudget{repo: c.name, perFile: e.opts.maxFileBytes(), total: total, left: total}
}

// take charges the file (or folder, size 0) at path, or refuses it.
func (b *checkoutBudget) take(path string, size int64) error {
	if size > b.perFile {
		return fmt.Errorf("%w: %s in %s is %d bytes, more than the %d Ferry writes per file (Options.MaxFileBytes)",
			ErrTooLarge, path, b.repo, size, b.perFile)
	}
	blocks := max((size+diskBlock-1)/diskBlock, 1) * diskBlock
	if blocks > b.left {
		return fmt.Errorf("%w: the checkout of %s takes more than %d bytes at %s (Options.MaxCheckoutBytes; files and folders count in whole %d-byte blocks)",
			ErrTooLarge, b.repo, b.total, path, diskBlock)
	}
	b.left -= blocks
	return nil
}
