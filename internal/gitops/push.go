package gitops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// rejection is a push the server answered with "ng": racy ones (the ref moved under us) are retried, the rest
// (hooks, policies) are not.
type rejection struct {
	reason    string
	retriable bool
	tip       plumbing.Hash
}

func (r *rejection) Error() string { return r.reason }

// push sends exactly the new objects and one ref update from old (the tip the commit was built on, or zero to
// create the branch). The server applies it only if the branch still points at old (or, for zero, does not
// exist), which is what makes concurrent writers safe without a lock.
func push(ctx context.Context, sess transport.ReceivePackSession, adv *packp.AdvRefs, branch plumbing.ReferenceName,
	old plumbing.Hash, p *prepared) error {
	var pack bytes.Buffer
	enc := packfile.NewEncoder(&pack, p.objects.mem, !adv.Capabilities.Supports(capability.OFSDelta))
	if _, err := enc.Encode(p.objects.order, 10); err != nil {
		return fmt.Errorf("packing the commit: %w", err)
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(adv.Capabilities)
	var progress bytes.Buffer
	if adv.Capabilities.Supports(capability.Sideband64k) {
		_ = req.Capabilities.Set(capability.Sideband64k)
		req.Progress = &progress // hooks' messages arrive here
	}
	req.Commands = []*packp.Command{{Name: branch, Old: old, New: p.commit}}
	req.Packfile = io.NopCloser(&pack)
	report, err := sess.ReceivePack(ctx, req)
	if report != nil {
		if rej := rejected(report, progress.String(), p.tip); rej != nil {
			return rej
		}
	}
	if err != nil {
		return fmt.Errorf("pushing to %s: %w", branch.Short(), classifyPush(err, progress.String()))
	}
	return nil
}

// classifyPush tells a refusal (the server answered 4xx: nothing landed) from an unknown outcome (no answer, or
// 5xx: the commit may have landed). Neither is retried here; running the same Pin again settles an unknown
// outcome, because a landed commit is recognised by its trailers.
func classifyPush(err error, serverSaid string) error {
	if errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) {
		return fmt.Errorf("%w: %v", ErrAuth, err)
	}
	if code := httpStatus(err); code >= 400 && code < 500 {
		return fmt.Errorf("%w: %v%s", ErrRejected, err, said(serverSaid))
	}
	return fmt.Errorf("%w: %v%s", ErrOutcomeUnknown, err, said(serverSaid))
}

func rejected(report *packp.ReportStatus, serverSaid string, tip plumbing.Hash) error {
	if report.UnpackStatus != "ok" {
		return fmt.Errorf("%w: server could not unpack the commit: %s%s", ErrRejected, report.UnpackStatus, said(serverSaid))
	}
	for _, s := range report.CommandStatuses {
		if s.Status == "ok" {
			continue
		}
		if strings.Contains(s.Status, "hook declined") || strings.Contains(s.Status, "protected") {
			return fmt.Errorf("%w: %s: %s%s", ErrRejected, s.ReferenceName.Short(), s.Status, said(serverSaid))
		}
		return &rejection{reason: fmt.Sprintf("%s: %s%s", s.ReferenceName.Short(), s.Status, said(serverSaid)),
			retriable: true, tip: tip}
	}
	return nil
}

// said quotes what the server printed (hook output), trimmed and stripped of control characters.
func said(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "remote:", "")), " ")
	if s == "" {
		return ""
	}
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return " (server said: " + s + ")"
}

// httpStatus digs the HTTP status out of a go-git error (its UnexpectedError does not unwrap); 0 when none.
func httpStatus(err error) int {
	var unexpected *plumbing.UnexpectedError
	if errors.As(err, &unexpected) {
		err = unexpected.Err
	}
	var httpErr *githttp.Err
	if errors.As(err, &httpErr) {
		return httpErr.StatusCode()
	}
	return 0
}
