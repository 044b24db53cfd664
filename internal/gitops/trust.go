package gitops

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/ferrycd/ferry/internal/gitops/pin"
)

// What Ferry trusts in Git. Trailers are text anyone who can push may write, so a commit that carries Ferry's
// trailers is taken for Ferry's earlier pin only when its own files pin the digest exactly as Ferry would (so
// adopting it can never sync something other than the digest) and, when commits are signed, when it carries a
// valid signature by the signing key. A merged pull request is trusted only as far as the merge result pins the
// digest (CheckPin).

// distrust says why cm, which carries Ferry's trailers for req, is not Ferry's own pin ("" when it is). Only a
// failure to read the commit is an error.
func distrust(cm *object.Commit, req Request, key *commitKey) (string, error) {
	pinned, err := pinsDigest(cm, req)
	if err != nil {
		return "", err
	}
	if !pinned {
		return "its files do not pin " + req.Digest, nil
	}
	if key == nil {
		return "", nil
	}
	if err := key.signed(cm); err != nil {
		return fmt.Sprintf("is not signed by Ferry's signing key (%v)", err), nil
	}
	return "", nil
}

// pinsDigest reports whether the commit's own tree already pins the request's digest: re-pinning it changes
// nothing.
func pinsDigest(cm *object.Commit, req Request) (bool, error) {
	tree, err := cm.Tree()
	if err != nil {
		return false, fmt.Errorf("reading tree of %s: %w", cm.Hash, err)
	}
	plan, err := pin.Apply(treeFS{tree}, req.pinRequest())
	if err != nil {
		return false, nil // the path or image is not there at that commit: it pins nothing
	}
	return len(plan.Changes) == 0, nil
}

// signed checks that cm carries exactly one signature, valid for its exact bytes, by the key's public half.
func (k *commitKey) signed(cm *object.Commit) error {
	switch n := strings.Count(cm.PGPSignature, "-----BEGIN "); {
	case n == 0:
		return errors.New("no signature")
	case n > 1:
		return errors.New("more than one signature") // git refuses these too: whose commit would it be?
	}
	payload := &plumbing.MemoryObject{}
	if err := cm.EncodeWithoutSignature(payload); err != nil {
		return fmt.Errorf("encoding the commit: %w", err)
	}
	data, err := contentOf(payload)
	if err != nil {
		return fmt.Errorf("encoding the commit: %w", err)
	}
	if err := k.verify(data, cm.PGPSignature); err != nil {
		return fmt.Errorf("bad signature: %w", err)
	}
	return nil
}

// PinCheck is what one commit pins for a Request.
type PinCheck struct {
	// CommitSHA is the commit read.
	CommitSHA string
	// Pinned: every reference to the image pins the request's digest exactly as Pin writes it, so pinning it
	// again would change nothing.
	Pinned bool
	// Digest is the digest the first reference holds ("" for a tag, or when there is none).
	Digest string
	// Files lists the files pinning again would change; Problem says why the pin could not be read at all
	// (the path or image is missing there, or a file does not parse).
	Files   []string
	Problem string
}

// CheckPin reads whether revision (a full commit SHA reachable on the server, e.g. a pull request's merge
// commit; "" for the tip of req.Branch) pins req's digest as Pin would write it. Nothing is written. Errors are
// about reaching the commit; what its files hold is the answer, never an error.
func (e *Engine) CheckPin(ctx context.Context, req Request, revision string) (PinCheck, error) {
	if err := req.pinRequest().Validate(); err != nil {
		return PinCheck{}, err
	}
	var want plumbing.Hash
	if revision != "" {
		if !plumbing.IsHash(revision) {
			return PinCheck{}, fmt.Errorf("revision %q is not a full commit SHA (40 hex digits)", revision)
		}
		want = plumbing.NewHash(revision)
	}
	c, err := e.repo(req.Remote)
	if err != nil {
		return PinCheck{}, err
	}
	for try := 1; ; try++ {
		h, err := e.resolve(ctx, c, req.Remote, want)
		if err != nil {
			return PinCheck{}, err
		}
		var check PinCheck
		err = c.locked(func() (err error) { check, err = checkPinAt(c, h, req); return err })
		if !errors.Is(err, errRaced) || try == 3 {
			return check, err
		}
	}
}

// checkPinAt plans the pin on commit h's tree; callers hold the store lock.
func checkPinAt(c *cachedRepo, h plumbing.Hash, req Request) (PinCheck, error) {
	cm, err := object.GetCommit(c.store, h)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return PinCheck{}, fmt.Errorf("%w: cache was compacted before %s could be read", errRaced, h)
	}
	if err != nil {
		return PinCheck{}, fmt.Errorf("reading commit %s: %w", h, err)
	}
	tree, err := cm.Tree()
	if err != nil {
		return PinCheck{}, fmt.Errorf("reading tree of %s: %w", h, err)
	}
	check := PinCheck{CommitSHA: h.String()}
	plan, err := pin.Apply(treeFS{tree}, req.pinRequest())
	if err != nil {
		check.Problem = err.Error()
		return check, nil
	}
	check.Digest, check.Pinned = plan.PreviousDigest, len(plan.Changes) == 0
	for _, ch := range plan.Changes {
		check.Files = append(check.Files, ch.Path)
	}
	return check, nil
}
