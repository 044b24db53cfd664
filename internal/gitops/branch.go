package gitops

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// DeleteBranch deletes r.Branch on the remote, e.g. a pull-request head superseded by a newer candidate. A branch
// that does not exist is already deleted: that is success. The delete names the tip it saw, so a branch that
// moves meanwhile is looked at again (bounded attempts) rather than deleted blind.
func (e *Engine) DeleteBranch(ctx context.Context, r Remote) error {
	c, err := e.repo(r)
	if err != nil {
		return err
	}
	t, auth, err := transportFor(c, r)
	if err != nil {
		return err
	}
	var last *rejection
	for attempt := 1; attempt <= e.opts.MaxAttempts; attempt++ {
		rej, err := e.deleteOnce(ctx, c, r, t, auth, last)
		if err != nil || rej == nil {
			return err
		}
		last = rej
		if err := sleep(ctx, e.backoff(attempt)); err != nil {
			return err
		}
	}
	return fmt.Errorf("deleting %s: gave up after %d attempts, other writers kept moving it (last: %s)",
		r.Branch, e.opts.MaxAttempts, last.reason)
}

// deleteOnce sends one delete command; a retriable rejection (the branch moved) comes back as rej.
func (e *Engine) deleteOnce(ctx context.Context, c *cachedRepo, r Remote, t transport.Transport,
	auth transport.AuthMethod, last *rejection) (*rejection, error) {
	sess, err := t.NewReceivePackSession(c.ep(), auth)
	if err != nil {
		return nil, fmt.Errorf("opening push session: %w", err)
	}
	defer func() { _ = sess.Close() }()
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return nil, classify("connecting to "+redact(r.URL), err)
	}
	branch := plumbing.NewBranchReferenceName(r.Branch)
	tip, err := branchTip(adv, branch)
	if errors.Is(err, ErrNotFound) {
		return nil, c.locked(func() error { return c.forget(branch) })
	}
	if err != nil {
		return nil, err
	}
	if last != nil && last.tip == tip {
		return nil, fmt.Errorf("deleting %s: %w: %s", r.Branch, ErrRejected, last.reason)
	}
	if !adv.Capabilities.Supports(capability.DeleteRefs) {
		return nil, fmt.Errorf("deleting %s: %w: the server does not offer deleting branches", r.Branch, ErrRejected)
	}
	if err := sendDelete(ctx, sess, adv, branch, tip); err != nil {
		var rej *rejection
		if errors.As(err, &rej) {
			return rej, nil
		}
		return nil, err
	}
	return nil, c.locked(func() error { return c.forget(branch) })
}

// sendDelete asks the server to delete branch if it still points at tip. No pack is sent.
func sendDelete(ctx context.Context, sess transport.ReceivePackSession, adv *packp.AdvRefs,
	branch plumbing.ReferenceName, tip plumbing.Hash) error {
	req := packp.NewReferenceUpdateRequestFromCapabilities(adv.Capabilities)
	_ = req.Capabilities.Set(capability.DeleteRefs)
	var progress bytes.Buffer
	if adv.Capabilities.Supports(capability.Sideband64k) {
		_ = req.Capabilities.Set(capability.Sideband64k)
		req.Progress = &progress
	}
	req.Commands = []*packp.Command{{Name: branch, Old: tip, New: plumbing.ZeroHash}}
	report, err := sess.ReceivePack(ctx, req)
	if report != nil {
		if rej := rejected(report, progress.String(), tip); rej != nil {
			return rej
		}
	}
	if err != nil {
		return fmt.Errorf("deleting %s: %w", branch.Short(), classifyPush(err, progress.String()))
	}
	return nil
}

// forget drops a branch's ref from the cache; its objects stay until the next compaction.
func (c *cachedRepo) forget(branch plumbing.ReferenceName) error {
	if err := c.store.RemoveReference(branch); err != nil {
		return fmt.Errorf("forgetting %s in the cache: %w", branch.Short(), err)
	}
	return nil
}
