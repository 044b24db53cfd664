package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// copyBlobs copies blobs to the destination, at most Options.Jobs at a time; the first failure cancels the rest.
func (o *copyOp) copyBlobs(ctx context.Context, blobs []v1.Descriptor) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.c.opts.jobs())
	for _, b := range blobs {
		g.Go(func() error {
			return retry(gctx, o.c.opts.Retry, "copying blob "+b.Digest.String(), func() error {
				return o.copyBlob(gctx, b)
			})
		})
	}
	return g.Wait()
}

// copyBlob moves one blob unless the destination has it: HEAD, then a cross-repository mount when both
// repositories share a registry, else a streamed GET from the source into a monolithic PUT.
func (o *copyOp) copyBlob(ctx context.Context, b v1.Descriptor) error {
	present, err := headBlob(ctx, o.dstC, o.dst, b.Digest)
	if err != nil {
		return err
	}
	if present {
		o.blobsSkipped.Add(1)
		return nil
	}
	location, mounted, err := o.startUpload(ctx, b.Digest)
	if err != nil {
		return err
	}
	if mounted {
		o.blobsMounted.Add(1)
		return nil
	}
	if err := o.streamBlob(ctx, b, location); err != nil {
		return err
	}
	o.blobsCopied.Add(1)
	return nil
}

// startUpload opens an upload session at the destination, asking for a mount from the source repository when
// possible; a registry that mounts answers 201 and no bytes need to move.
func (o *copyOp) startUpload(ctx context.Context, d v1.Hash) (location string, mounted bool, err error) {
	q := url.Values{}
	if o.mount {
		q.Set("mount", d.String())
		q.Set("from", o.src.RepositoryStr())
	}
	path := fmt.Sprintf("/v2/%s/blobs/uploads/", o.dst.RepositoryStr())
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := o.dstC.do(ctx, newRequest(http.MethodPost, nil, nil), path, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		return "", false, err
	}
	drain(resp)
	if resp.StatusCode == http.StatusCreated {
		return "", true, nil
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return "", false, fmt.Errorf("destination answered an upload request without a usable Location header")
	}
	if loc.Host != resp.Request.URL.Host {
		return "", false, permanentError{fmt.Errorf("destination asked to upload to another host %q", loc.Host)}
	}
	return loc.String(), false, nil
}

// errUploadReplay reports that an upload's body (a live stream from the source) cannot be sent twice; the whole
// blob copy is retried instead.
var errUploadReplay = errors.New("upload interrupted by an authentication challenge")

// streamBlob pipes the source blob into the destination upload without buffering it.
func (o *copyOp) streamBlob(ctx context.Context, b v1.Descriptor, location string) error {
	path := fmt.Sprintf("/v2/%s/blobs/%s", o.src.RepositoryStr(), b.Digest)
	src, err := o.srcC.do(ctx, newRequest(http.MethodGet, nil, nil), path, http.StatusOK)
	if isNotFound(err) {
		return permanentError{fmt.Errorf("source blob %s: %w", b.Digest, ErrNotFound)}
	}
	if err != nil {
		return err
	}
	defer src.Body.Close()
	u, err := url.Parse(location)
	if err != nil {
		return permanentError{fmt.Errorf("upload location: %w", err)}
	}
	q := u.Query()
	q.Set("digest", b.Digest.String())
	u.RawQuery = q.Encode()
	body := &countingReader{r: src.Body, n: &o.bytesMoved}
	used := false
	build := func(target string) (*http.Request, error) {
		if used {
			return nil, errUploadReplay
		}
		used = true
		req, err := http.NewRequest(http.MethodPut, target, io.NopCloser(body))
		if err != nil {
			return nil, err
		}
		req.ContentLength = b.Size
		req.Header.Set("Content-Type", "application/octet-stream")
		return req, nil
	}
	resp, err := o.dstC.do(ctx, build, u.String(), http.StatusCreated, http.StatusNoContent, http.StatusAccepted)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
