package gitops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/ferrycd/ferry/internal/gitops/pin"
)

// ensureCommit makes the cache hold commit want, fetching r.Branch when it does not. Fetches are coalesced: a
// caller that finds another fetch of the branch running waits for it and then checks again, instead of
// downloading twice.
func (e *Engine) ensureCommit(ctx context.Context, c *cachedRepo, r Remote, want plumbing.Hash) error {
	if c.hasCommit(want) {
		return nil
	}
	mu := c.fetchLock(r.Branch)
	mu.Lock()
	defer mu.Unlock()
	if c.hasCommit(want) {
		return nil
	}
	if _, err := e.fetch(ctx, c, r); err != nil {
		return err
	}
	if !c.hasCommit(want) {
		return fmt.Errorf("%w: branch moved past %s while fetching", errRaced, want)
	}
	return nil
}

// fetchTip brings r.Branch's current tip into the cache, coalesced with other fetches of the branch.
func (e *Engine) fetchTip(ctx context.Context, c *cachedRepo, r Remote) (plumbing.Hash, error) {
	mu := c.fetchLock(r.Branch)
	mu.Lock()
	defer mu.Unlock()
	return e.fetch(ctx, c, r)
}

var (
	// errRaced marks a failure caused by another writer moving the branch; the Pin loop retries on it.
	errRaced = errors.New("branch moved concurrently")
	// errCompacted: the cache was dropped (see compact) while a pack was downloading; the fetch starts over.
	errCompacted = errors.New("cache compacted during the fetch")
)

// fetch downloads r.Branch's tip and up to Depth commits of its history into the cache and returns the tip.
// Callers hold the branch's fetch lock. A compaction by a concurrent fetch of another branch makes it start over.
func (e *Engine) fetch(ctx context.Context, c *cachedRepo, r Remote) (plumbing.Hash, error) {
	for try := 1; ; try++ {
		tip, err := e.fetchOnce(ctx, c, r)
		if !errors.Is(err, errCompacted) || try == 3 {
			return tip, err
		}
	}
}

func (e *Engine) fetchOnce(ctx context.Context, c *cachedRepo, r Remote) (plumbing.Hash, error) {
	branch := plumbing.NewBranchReferenceName(r.Branch)
	sess, adv, err := openUploadPack(ctx, c, r)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer func() { _ = sess.Close() }()
	tip, err := branchTip(adv, branch)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	record := func() error { return c.setTip(branch, tip) }
	if c.hasCommit(tip) {
		return tip, c.locked(record)
	}
	if err := c.compact(e.opts.MaxPacks); err != nil {
		return plumbing.ZeroHash, err
	}
	req, gen, err := c.uploadRequest(adv, tip, e.opts.Depth)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return tip, e.download(ctx, c, sess, req, gen, "fetching "+r.Branch, record)
}

// fetchCommit downloads one commit by SHA with its tree (depth 1), which git with
// uploadpack.allowReachableSHA1InWant and the hosted forges allow for any commit reachable from a ref, such as
// the merge commit of a pull request. refused says the server declined (or does not offer) fetching by SHA.
// Callers hold the branch's fetch lock; a compaction meanwhile makes it start over, as fetch does.
func (e *Engine) fetchCommit(ctx context.Context, c *cachedRepo, r Remote, want plumbing.Hash) (refused bool, err error) {
	for try := 1; ; try++ {
		refused, err = e.fetchCommitOnce(ctx, c, r, want)
		if !errors.Is(err, errCompacted) || try == 3 {
			return refused, err
		}
	}
}

func (e *Engine) fetchCommitOnce(ctx context.Context, c *cachedRepo, r Remote, want plumbing.Hash) (refused bool, err error) {
	sess, adv, err := openUploadPack(ctx, c, r)
	if err != nil {
		return false, err
	}
	defer func() { _ = sess.Close() }()
	if !adv.Capabilities.Supports(capability.AllowReachableSHA1InWant) &&
		!adv.Capabilities.Supports(capability.AllowTipSHA1InWant) {
		return true, nil
	}
	if err := c.compact(e.opts.MaxPacks); err != nil {
		return false, err
	}
	req, gen, err := c.uploadRequest(adv, want, 1)
	if err != nil {
		return false, err
	}
	err = e.download(ctx, c, sess, req, gen, "fetching "+want.String(), func() error { return nil })
	if err != nil && strings.Contains(err.Error(), "not our ref") {
		return true, nil
	}
	return false, err
}

func openUploadPack(ctx context.Context, c *cachedRepo, r Remote) (transport.UploadPackSession, *packp.AdvRefs, error) {
	t, auth, err := transportFor(c, r)
	if err != nil {
		return nil, nil, err
	}
	sess, err := t.NewUploadPackSession(c.ep(), auth)
	if err != nil {
		return nil, nil, fmt.Errorf("opening fetch session: %w", err)
	}
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		_ = sess.Close()
		return nil, nil, classify("listing branches of "+redact(r.URL), err)
	}
	return sess, adv, nil
}

// download runs one upload-pack request and spools the pack to a temporary file without holding the store lock,
// then, under it, indexes the pack into the store and runs record — unless the cache was compacted meanwhile.
// The pack, and what storing it writes, must fit in what the cache may still take (Options.MaxRepositoryBytes).
func (e *Engine) download(ctx context.Context, c *cachedRepo, sess transport.UploadPackSession,
	req *packp.UploadPackRequest, gen uint64, doing string, record func() error) error {
	resp, err := sess.UploadPack(ctx, req)
	if err != nil {
		return classify(doing, err)
	}
	defer func() { _ = resp.Close() }()
	limit := e.opts.maxRepositoryBytes()
	used, packs := cacheUsage(c.dir)
	spool, err := os.CreateTemp(e.opts.CacheDir, "fetch-*.pack")
	if err != nil {
		return fmt.Errorf("creating fetch spool: %w", err)
	}
	defer func() { _ = spool.Close(); _ = os.Remove(spool.Name()) }()
	// Reading one byte past what fits tells a pack that fits exactly from a larger one.
	n, err := io.Copy(spool, io.LimitReader(demux(req.Capabilities, resp), max(limit-used, 0)+1))
	if err != nil {
		return fmt.Errorf("%s: downloading: %w", doing, err)
	}
	if n > limit-used {
		return c.locked(func() error { return c.overflow(gen, packs > 0, c.tooBig(doing, limit)) })
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewinding fetch spool: %w", err)
	}
	return c.locked(func() error {
		if c.gen != gen {
			return errCompacted
		}
		if err := c.storePackWithin(spool, resp.ShallowUpdate, limit); errors.Is(err, errCacheFull) {
			return c.overflow(gen, packs > 0, c.tooBig(doing, limit))
		} else if err != nil {
			return err
		}
		return record()
	})
}

// tooBig is the error of a fetch (doing) that the cache has no room for.
func (c *cachedRepo) tooBig(doing string, limit int64) error {
	return fmt.Errorf("%s: %w: the cache of %s would take more than %d bytes (Options.MaxRepositoryBytes); it was dropped, so the next fetch starts afresh",
		doing, ErrTooLarge, c.name, limit)
}

// overflow answers a fetch that would take the cache past its limit. The cache is dropped, since a refused pack
// may have left part of itself behind. When it held packs of earlier fetches, the fetch starts over on the
// empty cache (errCompacted): the history it collected, rather than what the branch needs, may be what filled
// it. Over the limit on an empty cache, the repository is too large. Callers hold the store lock.
func (c *cachedRepo) overflow(gen uint64, hadPacks bool, tooBig error) error {
	if c.gen != gen {
		return errCompacted // dropped meanwhile by a compaction: start over anyway
	}
	if err := c.drop(); err != nil {
		return errors.Join(tooBig, err)
	}
	if hadPacks {
		return fmt.Errorf("%w: %w", errCompacted, tooBig)
	}
	return tooBig
}

// storePackWithin stores a pack while letting the cache grow to limit bytes at most; errCacheFull says the
// pack, with the index built for it, would not fit. Callers hold the store lock.
func (c *cachedRepo) storePackWithin(pack io.Reader, upd packp.ShallowUpdate, limit int64) error {
	used, _ := cacheUsage(c.dir)
	c.fs.allow(limit - used)
	err := c.storePack(pack, upd)
	if c.fs.unlimit() {
		return errCacheFull // whatever go-git made of the refused write
	}
	return err
}

// uploadRequest asks for want and depth commits of its history, telling the server which commits the cache
// already holds (every cached branch tip) and where its history is cut. It returns the cache generation it saw.
func (c *cachedRepo) uploadRequest(adv *packp.AdvRefs, want plumbing.Hash, depth int) (*packp.UploadPackRequest, uint64, error) {
	req := packp.NewUploadPackRequestFromCapabilities(adv.Capabilities)
	req.Wants = []plumbing.Hash{want}
	req.Depth = packp.DepthCommits(depth)
	if err := req.Capabilities.Set(capability.Shallow); err != nil {
		return nil, 0, fmt.Errorf("requesting a shallow fetch: %w", err)
	}
	if adv.Capabilities.Supports(capability.NoProgress) {
		_ = req.Capabilities.Set(capability.NoProgress)
	}
	c.storeMu.Lock()
	defer c.storeMu.Unlock()
	req.Haves = c.haves()
	shallows, err := c.store.Shallow()
	if err != nil {
		return nil, 0, fmt.Errorf("reading shallow commits of the cache: %w", err)
	}
	req.Shallows = shallows
	return req, c.gen, nil
}

// storePack indexes a downloaded pack into the store and records the new shallow boundary.
func (c *cachedRepo) storePack(pack io.Reader, upd packp.ShallowUpdate) error {
	if err := packfile.UpdateObjectStorage(c.store, pack); err != nil {
		return fmt.Errorf("storing fetched objects: %w", err)
	}
	old, err := c.store.Shallow()
	if err != nil {
		return fmt.Errorf("reading shallow commits of the cache: %w", err)
	}
	gone := map[plumbing.Hash]bool{}
	for _, h := range upd.Unshallows {
		gone[h] = true
	}
	var shallows []plumbing.Hash
	seen := map[plumbing.Hash]bool{}
	for _, h := range append(old, upd.Shallows...) {
		if !gone[h] && !seen[h] {
			seen[h] = true
			shallows = append(shallows, h)
		}
	}
	if err := c.store.SetShallow(shallows); err != nil {
		return fmt.Errorf("recording shallow commits: %w", err)
	}
	return nil
}

func demux(caps *capability.List, r io.Reader) io.Reader {
	switch {
	case caps.Supports(capability.Sideband64k):
		return sideband.NewDemuxer(sideband.Sideband64k, r)
	case caps.Supports(capability.Sideband):
		return sideband.NewDemuxer(sideband.Sideband, r)
	}
	return r
}

func branchTip(adv *packp.AdvRefs, branch plumbing.ReferenceName) (plumbing.Hash, error) {
	refs, err := adv.AllReferences()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("reading advertised branches: %w", err)
	}
	ref, err := refs.Reference(branch)
	if err != nil {
		return plumbing.ZeroHash, pin.NotFoundf("branch %s does not exist", branch.Short())
	}
	return ref.Hash(), nil
}

// Errors callers can test with errors.Is.
var (
	// ErrNotFound: the branch, path, key or image does not exist.
	ErrNotFound = pin.ErrNotFound
	// ErrAuth: the server refused the credentials.
	ErrAuth = errors.New("authentication failed")
	// ErrRejected: the server refused the push for a reason other than a race (protected branch, hook, policy).
	ErrRejected = errors.New("push rejected")
	// ErrOutcomeUnknown: the push got no answer or a server error, so it may have landed. Running the same Pin
	// again finds out: a landed commit is recognised by its trailers and content and not made twice.
	ErrOutcomeUnknown = errors.New("push outcome unknown")
)

// classify wraps transport errors so callers can tell bad credentials from a missing repository.
func classify(doing string, err error) error {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%s: %w: %v", doing, ErrAuth, err)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%s: %w", doing, pin.NotFoundf("repository does not exist"))
	}
	return fmt.Errorf("%s: %w", doing, err)
}
