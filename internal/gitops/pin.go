package gitops

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"text/template"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/ferrycd/ferry/internal/gitops/pin"
	"github.com/ferrycd/ferry/internal/text"
)

// Formats a Request can edit.
const (
	FormatKustomize = pin.FormatKustomize
	FormatManifests = pin.FormatManifests
	FormatHelm      = pin.FormatHelm
)

// Author signs commits (as author and committer).
type Author struct{ Name, Email string }

// Request pins one image digest in one branch and records it as one commit.
type Request struct {
	// Remote.Branch is the branch written to. With BaseBranch set it is a pull-request head: when it does not
	// exist yet, Pin creates it from BaseBranch's tip with the pin commit on top; once it exists, Pin works on it
	// alone (a base that moved later does not matter) and never force-pushes.
	Remote
	BaseBranch string
	// Format, Path (relative to the repository root) and HelmKey say where the image is; see package pin.
	Format  pin.Format
	Path    string
	HelmKey string
	// Image is the repository to match; NewImage, when set, the repository the digest is pinned from.
	Image, NewImage string
	Digest          string

	// Promotion, Stage, Source and Rollback go into the message template and the Ferry-* trailers. With
	// Promotion and Stage set, an earlier commit of the same pin is recognised and never made twice (with Signing,
	// only one signed by that key: see Result.Recognized).
	Promotion, Stage, Source string
	Rollback                 bool

	Author Author
	// MessageTemplate is a text/template over MessageData (DefaultMessageTemplate when empty).
	MessageTemplate string
	// RollbackReason, with Rollback, goes into the Ferry-Rollback-Reason trailer (on one line, cut short).
	RollbackReason string
	// RollbackBy, with Rollback, names who asked for it in the Ferry-Rollback trailer ("unknown" when empty).
	RollbackBy string
	// Trailers are extra "Key: value" lines after the Ferry-* trailers.
	Trailers map[string]string
	// Signing signs the commit. With it, an earlier commit is taken for Ferry's only when signed by this key.
	Signing *Signing
}

// Result says what a Pin did.
type Result struct {
	// CommitSHA is the commit that carries the pin: the new one, Ferry's earlier one, or the branch tip when the
	// files were already pinned by someone else.
	CommitSHA string
	Changed   bool     // a new commit was pushed
	Files     []string // files changed by the new commit
	// PreviousDigest is the digest the first matching reference held before (also the Ferry-Previous-Digest).
	PreviousDigest string
	// Recognized: the newest Ferry commit for this promotion and stage already pins this digest; nothing was made.
	// A commit is Ferry's only when its own files pin the digest and, with Signing, it carries a valid signature
	// by the signing key.
	Recognized bool
	// Superseded: that commit was found but the files have changed since; they were left alone.
	Superseded bool
	// Created: the push created Branch from BaseBranch. When the pin is already on the base (recognised, or
	// pinned by content), no branch is created and CommitSHA names the base's commit.
	Created  bool
	Attempts int
	// Distrusted, when set, names a commit that carries Ferry's trailers for this very pin but that Ferry did not
	// take for its own, and why (its files do not pin the digest, or it lacks a valid signature by the signing
	// key). Such a commit counts for nothing: the pin was made, or found pinned by content, as if it were absent.
	Distrusted string
}

func (r Request) pinRequest() pin.Request {
	return pin.Request{Format: r.Format, Path: r.Path, HelmKey: r.HelmKey,
		Target: pin.Target{Image: r.Image, NewImage: r.NewImage, Digest: r.Digest}}
}

func (r Request) validate() error {
	if err := r.pinRequest().Validate(); err != nil {
		return err
	}
	if strings.TrimSpace(r.Author.Name) == "" || !strings.Contains(r.Author.Email, "@") ||
		strings.ContainsAny(r.Author.Name+r.Author.Email, "<>\n") {
		return fmt.Errorf("author %q <%s> needs a name and an e-mail address", r.Author.Name, r.Author.Email)
	}
	if r.BaseBranch == "" {
		return nil
	}
	if err := checkBranch(r.BaseBranch); err != nil {
		return fmt.Errorf("base: %w", err)
	}
	if r.BaseBranch == r.Branch {
		return fmt.Errorf("base branch %q must differ from the branch written to", r.BaseBranch)
	}
	return nil
}

// prepared is a commit built in memory on top of tip, or the verdict that none is needed.
type prepared struct {
	tip, commit plumbing.Hash
	objects     *newObjects
	done        bool
	result      Result
}

// target is where an attempt builds: the branch's tip, or, when a pull-request head does not exist yet, the
// base's tip (from, with create set).
type target struct {
	from   Remote // the branch whose tip is built on
	tip    plumbing.Hash
	create bool
}

// locate finds the branch's tip in the advertised refs, or the base's tip when the head is still to be created.
func locate(adv *packp.AdvRefs, req Request) (target, error) {
	tip, err := branchTip(adv, plumbing.NewBranchReferenceName(req.Branch))
	if err == nil || req.BaseBranch == "" || !errors.Is(err, ErrNotFound) {
		return target{from: req.Remote, tip: tip}, err
	}
	base := req.Remote
	base.Branch = req.BaseBranch
	tip, err = branchTip(adv, plumbing.NewBranchReferenceName(base.Branch))
	if err != nil {
		return target{}, fmt.Errorf("creating %s: %w", req.Branch, err)
	}
	return target{from: base, tip: tip, create: true}, nil
}

// Pin edits, commits and pushes. On a race it re-applies the pin on the new tip (bounded attempts, jittered
// back-off). Any other rejection is returned at once, and the cache is left at the remote tip.
func (e *Engine) Pin(ctx context.Context, req Request) (Result, error) {
	if err := req.validate(); err != nil {
		return Result{}, err
	}
	tmpl, err := parseTemplate(req.MessageTemplate)
	if err != nil {
		return Result{}, err
	}
	key, err := req.Signing.key()
	if err != nil {
		return Result{}, err
	}
	c, err := e.repo(req.Remote)
	if err != nil {
		return Result{}, err
	}
	t, auth, err := transportFor(c, req.Remote)
	if err != nil {
		return Result{}, err
	}
	var last *rejection
	for attempt := 1; attempt <= e.opts.MaxAttempts; attempt++ {
		res, rej, err := e.attempt(ctx, c, req, attemptDeps{t, auth, tmpl, key}, last)
		if err != nil || rej == nil {
			res.Attempts = attempt
			return res, err
		}
		last = rej
		if err := sleep(ctx, e.backoff(attempt)); err != nil {
			return Result{}, err
		}
	}
	return Result{Attempts: e.opts.MaxAttempts}, fmt.Errorf("pushing to %s: gave up after %d attempts, other writers kept moving the branch (last: %s)",
		req.Branch, e.opts.MaxAttempts, last.reason)
}

// backoff doubles from RetryBase up to 2s and picks a random point in the upper half, so writers that collided
// once do not collide again in lockstep.
func (e *Engine) backoff(attempt int) time.Duration {
	d := e.opts.RetryBase << min(attempt-1, 10)
	if d > 2*time.Second {
		d = 2 * time.Second
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type attemptDeps struct {
	t    transport.Transport
	auth transport.AuthMethod
	tmpl *template.Template
	key  *commitKey // nil: commits are not signed
}

// attempt is one round: learn the tip, make sure the cache has it, build the commit under the lock, push
// without it. A retriable rejection comes back as rej; a rejection on a tip that did not move since the last
// one was not a race, so it is final.
func (e *Engine) attempt(ctx context.Context, c *cachedRepo, req Request, d attemptDeps, last *rejection) (Result, *rejection, error) {
	sess, err := d.t.NewReceivePackSession(c.ep(), d.auth)
	if err != nil {
		return Result{}, nil, fmt.Errorf("opening push session: %w", err)
	}
	defer func() { _ = sess.Close() }()
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return Result{}, nil, classify("connecting to "+redact(req.URL), err)
	}
	at, err := locate(adv, req)
	if err != nil {
		return Result{}, nil, err
	}
	if last != nil && last.tip == at.tip {
		return Result{}, nil, fmt.Errorf("pushing to %s: %w: %s", req.Branch, ErrRejected, last.reason)
	}
	if err := e.ensureCommit(ctx, c, at.from, at.tip); err != nil {
		if errors.Is(err, errRaced) {
			return Result{}, &rejection{reason: err.Error(), retriable: true}, nil
		}
		return Result{}, nil, err
	}
	var p *prepared
	if err := c.locked(func() (err error) { p, err = e.prepare(c, req, d, at.tip); return err }); err != nil {
		if errors.Is(err, errRaced) {
			return Result{}, &rejection{reason: err.Error(), retriable: true}, nil
		}
		return Result{}, nil, err
	}
	from := plumbing.NewBranchReferenceName(at.from.Branch)
	if p.done {
		return p.result, nil, c.locked(func() error { return c.setTip(from, at.tip) })
	}
	head := plumbing.NewBranchReferenceName(req.Branch)
	old := p.tip
	if at.create {
		old = plumbing.ZeroHash
	}
	err = push(ctx, sess, adv, head, old, p)
	var rej *rejection
	if errors.As(err, &rej) {
		return Result{}, rej, nil
	}
	if err != nil {
		return Result{}, nil, err
	}
	p.result.Created = at.create
	return p.result, nil, c.locked(func() error { return c.keep(head, p) })
}

// keep moves a pushed commit's objects from memory into the cache and advances the cached tip to it.
func (c *cachedRepo) keep(branch plumbing.ReferenceName, p *prepared) error {
	for _, h := range p.objects.order {
		o, err := p.objects.mem.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return fmt.Errorf("reading new object %s: %w", h, err)
		}
		if _, err := c.store.SetEncodedObject(o); err != nil {
			return fmt.Errorf("caching new object %s: %w", h, err)
		}
	}
	return c.setTip(branch, p.commit)
}

// prepare runs under the store lock: recognise an earlier commit, apply the pin to the tip's tree, and build the
// new blobs, trees and commit in memory.
func (e *Engine) prepare(c *cachedRepo, req Request, d attemptDeps, tip plumbing.Hash) (*prepared, error) {
	head, err := object.GetCommit(c.store, tip)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		// A fetch of another branch compacted the cache after ensureCommit; the next attempt fetches again.
		return nil, fmt.Errorf("%w: cache was compacted before %s could be read", errRaced, tip)
	}
	if err != nil {
		return nil, fmt.Errorf("reading tip %s: %w", tip, err)
	}
	tree, err := head.Tree()
	if err != nil {
		return nil, fmt.Errorf("reading tree of %s: %w", tip, err)
	}
	plan, err := pin.Apply(treeFS{tree}, req.pinRequest())
	if err != nil {
		return nil, fmt.Errorf("pinning at %s@%s: %w", req.Branch, tip.String()[:12], err)
	}
	var distrusted string
	if own := e.newestOwn(c, head, req); own != nil {
		why, err := distrust(own, req, d.key)
		if err != nil {
			return nil, err
		}
		if why == "" {
			return &prepared{done: true, result: Result{CommitSHA: own.Hash.String(), Recognized: true,
				Superseded: len(plan.Changes) > 0, PreviousDigest: trailers(own.Message)[TrailerPreviousDigest]}}, nil
		}
		// Anyone who can push can write Ferry's trailers: such a commit counts for no more than one without
		// them, so the digest is pinned on the tip as if it were not there.
		distrusted = fmt.Sprintf("commit %s carries Ferry's trailers for this pin but %s; it was not taken for Ferry's",
			own.Hash.String()[:12], why)
	}
	if len(plan.Changes) == 0 {
		return &prepared{done: true, result: Result{CommitSHA: tip.String(), PreviousDigest: plan.PreviousDigest,
			Distrusted: distrusted}}, nil
	}
	p, err := e.build(c, req, d, head, tree, plan)
	if p != nil {
		p.result.Distrusted = distrusted
	}
	return p, err
}

func (e *Engine) build(c *cachedRepo, req Request, d attemptDeps, head *object.Commit, tree *object.Tree, plan pin.Plan) (*prepared, error) {
	msg, err := message(d.tmpl, MessageData{Promotion: req.Promotion, Stage: req.Stage, Image: req.Image,
		Digest: req.Digest, PreviousDigest: plan.PreviousDigest, Source: req.Source, Rollback: req.Rollback, RollbackBy: req.RollbackBy,
		RollbackReason: text.OneLine(req.RollbackReason, maxReasonTrailer)}, req.Trailers)
	if err != nil {
		return nil, err
	}
	objs := newObjectSet()
	changes := map[string][]byte{}
	files := make([]string, 0, len(plan.Changes))
	for _, ch := range plan.Changes {
		changes[ch.Path] = ch.Output
		files = append(files, ch.Path)
	}
	treeHash, err := objs.rewriteTree(c.store, tree, changes)
	if err != nil {
		return nil, fmt.Errorf("writing the new tree: %w", err)
	}
	who := object.Signature{Name: req.Author.Name, Email: req.Author.Email, When: e.opts.Now()}
	commit := &object.Commit{Author: who, Committer: who, Message: msg, TreeHash: treeHash,
		ParentHashes: []plumbing.Hash{head.Hash}}
	if d.key != nil {
		unsigned := &plumbing.MemoryObject{}
		if err := commit.EncodeWithoutSignature(unsigned); err != nil {
			return nil, fmt.Errorf("encoding the commit for signing: %w", err)
		}
		data, err := contentOf(unsigned)
		if err != nil {
			return nil, fmt.Errorf("encoding the commit for signing: %w", err)
		}
		if commit.PGPSignature, err = d.key.sign(data); err != nil {
			return nil, err
		}
	}
	commitHash, err := objs.encode(commit)
	if err != nil {
		return nil, fmt.Errorf("encoding the commit: %w", err)
	}
	return &prepared{tip: head.Hash, commit: commitHash, objects: objs, result: Result{CommitSHA: commitHash.String(),
		Changed: true, Files: files, PreviousDigest: plan.PreviousDigest}}, nil
}

// newestOwn looks back through recent history for the newest Ferry commit of this promotion and stage; it is
// returned only when it pins this very digest (with the same rollback flag), i.e. when this pin already landed.
func (e *Engine) newestOwn(c *cachedRepo, head *object.Commit, req Request) *object.Commit {
	if req.Promotion == "" || req.Stage == "" {
		return nil
	}
	var found *object.Commit
	walkRecent(c, head, e.opts.Depth, func(cm *object.Commit) bool {
		t := trailers(cm.Message)
		if t[TrailerPromotion] != req.Promotion || t[TrailerStage] != req.Stage {
			return true
		}
		if t[TrailerDigest] == req.Digest && (t[TrailerRollback] != "") == req.Rollback {
			found = cm
		}
		return false
	})
	return found
}

// walkRecent visits up to limit commits from head, newest first by committer time, stopping at the shallow
// boundary of the cache, until visit returns false.
func walkRecent(c *cachedRepo, head *object.Commit, limit int, visit func(*object.Commit) bool) {
	queue := []*object.Commit{head}
	seen := map[plumbing.Hash]bool{head.Hash: true}
	for n := 0; len(queue) > 0 && n < limit; n++ {
		best := 0
		for i, cm := range queue {
			if cm.Committer.When.After(queue[best].Committer.When) {
				best = i
			}
		}
		cm := queue[best]
		queue = append(queue[:best], queue[best+1:]...)
		if !visit(cm) {
			return
		}
		for _, p := range cm.ParentHashes {
			if seen[p] {
				continue
			}
			seen[p] = true
			if parent, err := object.GetCommit(c.store, p); err == nil {
				queue = append(queue, parent)
			}
		}
	}
}

// maxReasonTrailer bounds the rollback reason trailer: a reason quoting a metric is a sentence, not a report.
const maxReasonTrailer = 300
