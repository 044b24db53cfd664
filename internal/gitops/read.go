package gitops

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/ferrycd/ferry/internal/gitops/pin"
)

// atTip brings the cache to the branch's current tip (read access is enough) and runs fn on it under the lock.
// A compaction by a fetch of another branch between the two steps makes it start over.
func (e *Engine) atTip(ctx context.Context, r Remote, fn func(c *cachedRepo, tip *object.Commit) error) error {
	c, err := e.repo(r)
	if err != nil {
		return err
	}
	for try := 1; ; try++ {
		tip, err := e.fetchTip(ctx, c, r)
		if err != nil {
			return err
		}
		err = c.locked(func() error {
			head, err := object.GetCommit(c.store, tip)
			if errors.Is(err, plumbing.ErrObjectNotFound) {
				return fmt.Errorf("%w: cache was compacted before %s could be read", errRaced, tip)
			}
			if err != nil {
				return fmt.Errorf("reading tip %s: %w", tip, err)
			}
			return fn(c, head)
		})
		if !errors.Is(err, errRaced) || try == 3 {
			return err
		}
	}
}

// ReadFile returns a file's content at the branch tip and the tip's SHA.
func (e *Engine) ReadFile(ctx context.Context, r Remote, path string) (content []byte, commitSHA string, err error) {
	err = e.atTip(ctx, r, func(_ *cachedRepo, head *object.Commit) error {
		tree, err := head.Tree()
		if err != nil {
			return fmt.Errorf("reading tree of %s: %w", head.Hash, err)
		}
		commitSHA = head.Hash.String()
		content, err = fs.ReadFile(treeFS{tree}, path)
		if errors.Is(err, fs.ErrNotExist) {
			return pin.NotFoundf("%s at %s", path, r.Branch)
		}
		return err
	})
	return content, commitSHA, err
}

// placeholderDigest lets CurrentDigest reuse the pin planner to locate references without meaning to write.
const placeholderDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// Query locates an image the way a Request does, for reading what is pinned now.
type Query struct {
	Format        pin.Format
	Path, HelmKey string
	Image         string
}

// CurrentDigest reports the digest the image is pinned to at the branch tip ("" when it holds a tag), and the tip.
func (e *Engine) CurrentDigest(ctx context.Context, r Remote, q Query) (digest, commitSHA string, err error) {
	err = e.atTip(ctx, r, func(_ *cachedRepo, head *object.Commit) error {
		tree, err := head.Tree()
		if err != nil {
			return fmt.Errorf("reading tree of %s: %w", head.Hash, err)
		}
		plan, err := pin.Apply(treeFS{tree}, pin.Request{Format: q.Format, Path: q.Path, HelmKey: q.HelmKey,
			Target: pin.Target{Image: q.Image, Digest: placeholderDigest}})
		if err != nil {
			return fmt.Errorf("reading pin at %s@%s: %w", r.Branch, head.Hash.String()[:12], err)
		}
		digest, commitSHA = plan.PreviousDigest, head.Hash.String()
		return nil
	})
	return digest, commitSHA, err
}

// Commit is a commit found by FindCommit.
type Commit struct {
	SHA      string
	Message  string
	Trailers map[string]string
}

// FindCommit looks through the branch's recent history (the cache depth) for the newest commit whose Ferry
// trailers name this promotion, stage and digest. Empty digest matches any digest.
func (e *Engine) FindCommit(ctx context.Context, r Remote, promotion, stage, digest string) (Commit, bool, error) {
	var found Commit
	var ok bool
	err := e.atTip(ctx, r, func(c *cachedRepo, head *object.Commit) error {
		walkRecent(c, head, e.opts.Depth, func(cm *object.Commit) bool {
			t := trailers(cm.Message)
			if t[TrailerPromotion] == promotion && t[TrailerStage] == stage && (digest == "" || t[TrailerDigest] == digest) {
				found, ok = Commit{SHA: cm.Hash.String(), Message: cm.Message, Trailers: t}, true
				return false
			}
			return true
		})
		return nil
	})
	return found, ok, err
}
