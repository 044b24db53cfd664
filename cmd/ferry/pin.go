package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/internal/gitops/pin"
)

func init() { register(newPinCmd) }

// pinOptions are the flags of `ferry pin`.
type pinOptions struct {
	dir, image, newImage, digest string
	path, format                 string
	helmValues, key              string
}

func newPinCmd() *cobra.Command {
	var opts pinOptions
	cmd := &cobra.Command{
		Use:   "pin --dir CHECKOUT --image NAME --digest sha256:HEX [--path SUBDIR] [--helm-values FILE --key a.b.c]",
		Short: "Pin an image to a digest in a checkout's kustomization, manifests or Helm values",
		Long: "Rewrite every reference to the image under CHECKOUT/SUBDIR as NAME@DIGEST, editing files in place and\n" +
			"touching only the lines that hold the image (comments, key order and formatting are kept).\n" +
			"With --helm-values the image is at --key in that values file (a string, or a map with repository,\n" +
			"tag and digest); otherwise a kustomization's images: entry is used when SUBDIR has one, and the\n" +
			"containers of workload manifests (*.yaml, *.yml) below SUBDIR when it does not. Prints each file it\n" +
			"changed, or \"already pinned\". Nothing is written when any file is malformed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPin(cmd.OutOrStdout(), opts) },
	}
	f := cmd.Flags()
	f.StringVar(&opts.dir, "dir", "", "the checkout to edit (required)")
	f.StringVar(&opts.image, "image", "", "image repository to pin, e.g. ghcr.io/acme/app (a tag or digest on it is ignored)")
	f.StringVar(&opts.digest, "digest", "", "digest to pin, sha256:<64 hex>")
	f.StringVar(&opts.newImage, "new-image", "", "repository the digest lives in when it differs from --image (after a copy)")
	f.StringVar(&opts.path, "path", ".", "folder or file below --dir to edit")
	f.StringVar(&opts.format, "format", "auto", "auto, kustomize or manifests (ignored with --helm-values)")
	f.StringVar(&opts.helmValues, "helm-values", "", "Helm values file below --dir holding the image")
	f.StringVar(&opts.key, "key", "", "dotted key of the image in --helm-values, e.g. app.image")
	for _, name := range []string{"dir", "image", "digest"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func (o pinOptions) validate() error {
	if err := pin.ValidateDigest(o.digest); err != nil {
		return fmt.Errorf("--digest: %w", err)
	}
	if err := (pin.Target{Image: o.image, Digest: o.digest}).Validate(); err != nil {
		return fmt.Errorf("--image: %w", err)
	}
	if o.newImage != "" {
		if err := (pin.Target{Image: o.newImage, Digest: o.digest}).Validate(); err != nil {
			return fmt.Errorf("--new-image: %w", err)
		}
	}
	if (o.helmValues == "") != (o.key == "") {
		return errors.New("--helm-values and --key go together")
	}
	if info, err := os.Stat(o.dir); err != nil || !info.IsDir() {
		return fmt.Errorf("--dir %s is not a folder", o.dir)
	}
	switch o.format {
	case "auto", "kustomize", "manifests":
	default:
		return fmt.Errorf("--format %q is not one of auto, kustomize, manifests", o.format)
	}
	return nil
}

// runPin plans the pin over the whole checkout first and writes only when every file parsed and matched.
func runPin(out io.Writer, o pinOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	plan, err := pin.Apply(os.DirFS(o.dir), o.request())
	if o.helmValues == "" && o.format == "auto" && errors.Is(err, pin.ErrNotFound) {
		// No kustomization (or none naming the image) at --path: the image may be in plain manifests.
		req := o.request()
		req.Format = pin.FormatManifests
		plan, err = pin.Apply(os.DirFS(o.dir), req)
	}
	if err != nil {
		return err
	}
	if len(plan.Changes) == 0 {
		_, err := fmt.Fprintln(out, "already pinned")
		return err
	}
	for _, ch := range plan.Changes {
		if err := writeInPlace(filepath.Join(o.dir, filepath.FromSlash(ch.Path)), ch.Output); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(out, ch.Path); err != nil {
			return err
		}
	}
	return nil
}

func (o pinOptions) request() pin.Request {
	req := pin.Request{Format: pin.Format(o.format), Path: o.path,
		Target: pin.Target{Image: o.image, NewImage: o.newImage, Digest: o.digest}}
	switch {
	case o.helmValues != "":
		req.Format, req.Path, req.HelmKey = pin.FormatHelm, o.helmValues, o.key
	case o.format == "auto":
		req.Format = pin.FormatKustomize
	}
	return req
}

// writeInPlace replaces a file atomically (temporary file and rename), keeping its permissions.
func writeInPlace(path string, content []byte) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ferry-pin-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(content); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), info.Mode()&fs.ModePerm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
