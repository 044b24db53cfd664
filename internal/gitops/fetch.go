package gitops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/ferrycd/ferry/internal/gitops/pin"
)

// ensureCommit makes the cache hold commit want, fetching the branch when it does not. Fetches are coalesced:
// a caller that finds another fetch running waits for it and then checks again, instead of downloading twice.
func (e *Engine) ensureCommit(ctx context.Context, c *cachedRepo, r Remote, want plumbing.Hash) error {
	if c.hasCommit(want) {
		return nil
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
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

// errRaced marks a failure caused by another writer moving the branch; the Pin loop retries on it.
var errRaced = errors.New("branch moved concurrently")

// fetch downloads the branch tip and up to Depth commits of its history into the cache and returns the tip. The
// pack is spooled to a temporary file without holding the store lock, then indexed into the store under it.
func (e *Engine) fetch(ctx context.Context, c *cachedRepo, r Remote) (plumbing.Hash, error) {
	t, auth, err := transportFor(c, r)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	sess, err := t.NewUploadPackSession(c.ep(), auth)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("opening fetch session: %w", err)
	}
	defer func() { _ = sess.Close() }()
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return plumbing.ZeroHash, classify("listing branches of "+redact(r.URL), err)
	}
	tip, err := branchTip(adv, c.branch)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if c.hasCommit(tip) {
		return tip, nil
	}
	if err := c.compact(e.opts.MaxPacks); err != nil {
		return plumbing.ZeroHash, err
	}
	req, err := e.uploadRequest(c, adv, tip)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	resp, err := sess.UploadPack(ctx, req)
	if err != nil {
		return plumbing.ZeroHash, classify("fetching "+c.branch.Short(), err)
	}
	defer func() { _ = resp.Close() }()
	spool, err := os.CreateTemp(e.opts.CacheDir, "fetch-*.pack")
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("creating fetch spool: %w", err)
	}
	defer func() { _ = spool.Close(); _ = os.Remove(spool.Name()) }()
	if _, err := io.Copy(spool, demux(req.Capabilities, resp)); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("downloading %s: %w", c.branch.Short(), err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("rewinding fetch spool: %w", err)
	}
	return tip, c.locked(func() error { return c.storePack(spool, resp.ShallowUpdate, tip) })
}

func (e *Engine) uploadRequest(c *cachedRepo, adv *packp.AdvRefs, tip plumbing.Hash) (*packp.UploadPackRequest, error) {
	req := packp.NewUploadPackRequestFromCapabilities(adv.Capabilities)
	req.Wants = []plumbing.Hash{tip}
	req.Depth = packp.DepthCommits(e.opts.Depth)
	if err := req.Capabilities.Set(capability.Shallow); err != nil {
		return nil, fmt.Errorf("requesting a shallow fetch: %w", err)
	}
	if adv.Capabilities.Supports(capability.NoProgress) {
		_ = req.Capabilities.Set(capability.NoProgress)
	}
	c.storeMu.Lock()
	defer c.storeMu.Unlock()
	if have := c.localTip(); !have.IsZero() && c.store.HasEncodedObject(have) == nil {
		req.Haves = []plumbing.Hash{have}
	}
	shallows, err := c.store.Shallow()
	if err != nil {
		return nil, fmt.Errorf("reading shallow commits of the cache: %w", err)
	}
	req.Shallows = shallows
	return req, nil
}

// storePack indexes a downloaded pack into the store, records the new shallow boundary and the tip.
func (c *cachedRepo) storePack(pack io.Reader, upd packp.ShallowUpdate, tip plumbing.Hash) error {
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
	return c.setTip(tip)
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
