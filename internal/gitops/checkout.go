package gitops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/ferrycd/ferry/internal/gitops/pin"
)

// ErrUnsupportedEntry: the tree under the checked-out path holds a symbolic link or a submodule, which Checkout
// does not write.
var ErrUnsupportedEntry = errors.New("unsupported tree entry")

// Checkout writes the files under folder (a folder of the repository, "" for all of it) at revision (a full
// commit SHA, "" for the tip of r.Branch) into dir, which must be empty or absent, and returns the commit's SHA.
// A revision the cache lacks is fetched by SHA (the forges and git with uploadpack.allowReachableSHA1InWant serve
// any commit reachable from a ref, such as a pull request's merge commit); a server that refuses is asked for
// r.Branch's recent history instead. Only folders, regular and executable files are written, through an os.Root
// on dir, so nothing lands outside it. A symbolic link or submodule under folder is an ErrUnsupportedEntry naming
// it: a link may point outside dir or the repository, and writing its target instead would render something
// other than what Git holds. What is written is bounded (Options.MaxCheckoutBytes, and MaxFileBytes per file):
// a larger folder is ErrTooLarge. On any error dir is left as found (empty, or absent). The files are written
// under the cache's store lock (local disk work only), so other callers' local work on this repository waits for
// it.
func (e *Engine) Checkout(ctx context.Context, r Remote, revision, folder, dir string) (commitSHA string, err error) {
	want, folder, err := checkoutInput(revision, folder, dir)
	if err != nil {
		return "", err
	}
	c, err := e.repo(r)
	if err != nil {
		return "", err
	}
	for try := 1; ; try++ {
		commit, err := e.resolve(ctx, c, r, want)
		if err != nil {
			return "", err
		}
		err = c.locked(func() error { return writeCommit(c.store, commit, folder, dir, e.checkoutBudget(c)) })
		if !errors.Is(err, errRaced) || try == 3 {
			return commit.String(), err
		}
	}
}

// checkoutInput validates the caller's revision and folder (both untrusted) before anything is fetched.
func checkoutInput(revision, folder, dir string) (plumbing.Hash, string, error) {
	if dir == "" {
		return plumbing.ZeroHash, "", errors.New("checkout dir is required")
	}
	var want plumbing.Hash
	if revision != "" {
		if len(revision) != 40 || strings.Trim(strings.ToLower(revision), "0123456789abcdef") != "" {
			return plumbing.ZeroHash, "", fmt.Errorf("revision %q is not a full commit SHA (40 hex digits)", revision)
		}
		want = plumbing.NewHash(strings.ToLower(revision))
	}
	clean := path.Clean("/" + strings.TrimLeft(folder, "/"))[1:]
	if strings.Contains(folder, "\x00") || (folder != "" && strings.Contains("/"+folder+"/", "/../")) {
		return plumbing.ZeroHash, "", fmt.Errorf("path %q must be a folder inside the repository", folder)
	}
	return want, clean, nil
}

// resolve makes the cache hold the wanted commit (or the branch tip when want is zero) and returns it.
func (e *Engine) resolve(ctx context.Context, c *cachedRepo, r Remote, want plumbing.Hash) (plumbing.Hash, error) {
	if want.IsZero() {
		return e.fetchTip(ctx, c, r)
	}
	if c.hasCommit(want) {
		return want, nil
	}
	mu := c.fetchLock(r.Branch)
	mu.Lock()
	defer mu.Unlock()
	if c.hasCommit(want) {
		return want, nil
	}
	refused, err := e.fetchCommit(ctx, c, r, want)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if refused {
		if _, err := e.fetch(ctx, c, r); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	if !c.hasCommit(want) {
		return plumbing.ZeroHash, pin.NotFoundf("revision %s in %s", want, redact(r.URL))
	}
	return want, nil
}

// writeCommit writes folder of commit h into dir under the store lock, within budget; on failure it leaves dir
// as it found it.
func writeCommit(s storer.EncodedObjectStorer, h plumbing.Hash, folder, dir string, b *checkoutBudget) error {
	commit, err := object.GetCommit(s, h)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return fmt.Errorf("%w: cache was compacted before %s could be read", errRaced, h)
	}
	if err != nil {
		return fmt.Errorf("reading commit %s: %w", h, err)
	}
	tree, err := subtree(s, commit, folder)
	if err != nil {
		return err
	}
	created, err := claimDir(dir)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening checkout dir: %w", err)
	}
	defer func() { _ = root.Close() }()
	if err := writeTree(s, root, b, tree, folder, "."); err != nil {
		return errors.Join(err, undo(root, dir, created))
	}
	return nil
}

// subtree finds folder in the commit's tree.
func subtree(s storer.EncodedObjectStorer, commit *object.Commit, folder string) (*object.Tree, error) {
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("reading tree of %s: %w", commit.Hash, err)
	}
	if folder == "" {
		return tree, nil
	}
	entry, err := tree.FindEntry(folder)
	if err != nil {
		return nil, pin.NotFoundf("path %s at %s", folder, commit.Hash.String()[:12])
	}
	if entry.Mode != filemode.Dir {
		return nil, fmt.Errorf("path %s at %s is a file; Checkout takes a folder", folder, commit.Hash.String()[:12])
	}
	sub, err := object.GetTree(s, entry.Hash)
	if err != nil {
		return nil, fmt.Errorf("reading tree %s: %w", folder, err)
	}
	return sub, nil
}

// claimDir makes sure dir exists and is empty; created says Checkout made it (so a failure removes it again).
func claimDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0:
		return false, fmt.Errorf("checkout dir %s is not empty", dir)
	case err == nil:
		return false, nil
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, fmt.Errorf("creating checkout dir: %w", err)
		}
		return true, nil
	}
	return false, fmt.Errorf("reading checkout dir: %w", err)
}

// undo empties dir again (and removes it when Checkout created it).
func undo(root *os.Root, dir string, created bool) error {
	if created {
		return os.RemoveAll(dir)
	}
	entries, err := fs.ReadDir(root.FS(), ".")
	for _, e := range entries {
		err = errors.Join(err, root.RemoveAll(e.Name()))
	}
	if err != nil {
		return fmt.Errorf("cleaning checkout dir after a failure: %w", err)
	}
	return nil
}

// writeTree writes tree (at repoPath in the repository) to local inside root.
func writeTree(s storer.EncodedObjectStorer, root *os.Root, b *checkoutBudget, tree *object.Tree, repoPath, local string) error {
	for _, entry := range tree.Entries {
		full := path.Join(repoPath, entry.Name)
		if err := checkEntryName(entry.Name); err != nil {
			return fmt.Errorf("tree %s: %w", path.Join(repoPath, "."), err)
		}
		if err := writeEntry(s, root, b, entry, full, path.Join(local, entry.Name)); err != nil {
			return err
		}
	}
	return nil
}

func writeEntry(s storer.EncodedObjectStorer, root *os.Root, b *checkoutBudget, entry object.TreeEntry, full, local string) error {
	switch entry.Mode {
	case filemode.Dir:
		if err := b.take(full, 0); err != nil {
			return err
		}
		if err := root.Mkdir(local, 0o755); err != nil {
			return fmt.Errorf("creating folder %s: %w", full, err)
		}
		sub, err := object.GetTree(s, entry.Hash)
		if err != nil {
			return fmt.Errorf("reading tree %s: %w", full, err)
		}
		return writeTree(s, root, b, sub, full, local)
	case filemode.Regular, filemode.Deprecated:
		return writeBlob(s, root, b, entry.Hash, full, local, 0o644)
	case filemode.Executable:
		return writeBlob(s, root, b, entry.Hash, full, local, 0o755)
	case filemode.Symlink:
		return fmt.Errorf("%w: %s is a symbolic link", ErrUnsupportedEntry, full)
	}
	return fmt.Errorf("%w: %s is a submodule or of unknown mode %s", ErrUnsupportedEntry, full, entry.Mode)
}

// writeBlob creates local (never replacing or following anything already there) with the blob's content, once
// the budget has room for the size the blob's header declares; no more than that is written.
func writeBlob(s storer.EncodedObjectStorer, root *os.Root, b *checkoutBudget, h plumbing.Hash, full, local string, mode fs.FileMode) error {
	blob, err := object.GetBlob(s, h)
	if err != nil {
		return fmt.Errorf("reading %s: %w", full, err)
	}
	if err := b.take(full, blob.Size); err != nil {
		return err
	}
	src, err := blob.Reader()
	if err != nil {
		return fmt.Errorf("reading %s: %w", full, err)
	}
	defer func() { _ = src.Close() }()
	dst, err := root.OpenFile(local, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("creating %s: %w", full, err)
	}
	if _, err := io.Copy(dst, io.LimitReader(src, blob.Size)); err != nil {
		_ = dst.Close()
		return fmt.Errorf("writing %s: %w", full, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", full, err)
	}
	return nil
}

// checkEntryName refuses tree entry names (sent by the server, so untrusted) that are not one plain name.
func checkEntryName(name string) error {
	if name == "" || name == "." || name == ".." || strings.EqualFold(name, ".git") || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("unsafe entry name %q", name)
	}
	return nil
}
