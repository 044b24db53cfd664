package signature

import (
	"errors"
	"fmt"
)

// One Ferry verifies images for many teams, and anyone who can push to a repository can attach artifacts to its
// digests. What one verification reads is therefore bounded whatever the registry holds: how many referrers and
// layers are examined, and how many bytes of manifests, payloads, envelopes and bundles are read. Input over a
// bound is never read whole first: sizes are checked as declared, and streams are read one byte past the bound
// to tell.

// limits are the bounds of one verification.
type limits struct {
	referrers     int   // referrers of the digest (of any artifact type) examined
	layers        int   // layers of one signature manifest
	manifestBytes int64 // one signature manifest or referrers index
	blobBytes     int64 // one payload, envelope or bundle layer
	totalBytes    int64 // every manifest, index and layer one verification reads
}

// maxPayloadBytes bounds one signed document (payload, envelope, bundle): SBOM attestations can be large, but
// not unbounded. A larger layer is refused, as one malformed candidate, before it is read.
const maxPayloadBytes = 4 << 20

// defaultLimits: an image with a few signatures and attestations reads well under a megabyte; 4 MiB is the
// distribution spec's limit for a manifest.
var defaultLimits = limits{
	referrers:     256,
	layers:        64,
	manifestBytes: 4 << 20,
	blobBytes:     maxPayloadBytes,
	totalBytes:    16 << 20,
}

// errTooLarge marks one layer over limits.blobBytes: that candidate is refused, the others still count.
var errTooLarge = errors.New("signature layer is larger than the limit")

// tooLarge is a verification that read up to a bound: nothing found so far is trusted, since what was left
// unread might change the verdict (a required attestation, say).
func tooLarge(ref string, format string, args ...any) *Error {
	return &Error{Kind: KindTooLarge, Ref: ref, Message: fmt.Sprintf(format, args...)}
}

// budget is what one verification may still read.
type budget struct {
	ref  string
	lim  limits
	left int64
}

func newBudget(ref string, lim limits) *budget {
	return &budget{ref: ref, lim: lim, left: lim.totalBytes}
}

// spend takes n bytes (of what) from the budget, or refuses the verification when they are not there.
func (b *budget) spend(n int64, what string) error {
	if n > b.left {
		return tooLarge(b.ref, "reading %s (%d bytes) would take this verification past the %d bytes of signature material it reads",
			what, n, b.lim.totalBytes)
	}
	b.left -= n
	return nil
}

// manifest checks and spends the size of a manifest or index read whole (what names it).
func (b *budget) manifest(n int64, what string) error {
	if n > b.lim.manifestBytes {
		return tooLarge(b.ref, "%s is %d bytes, more than the %d Ferry reads", what, n, b.lim.manifestBytes)
	}
	return b.spend(n, what)
}
