package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/internal/registry"
)

func init() { register(newCopyCmd) }

// copyOptions are the flags of `ferry copy`.
type copyOptions struct {
	dockerConfig string   // dockerconfigjson file; empty uses the local Docker login
	caFile       string   // extra PEM trust roots
	insecure     []string // registries allowed over plain HTTP besides loopback
	jobs         int
	verify       verifyFlags // when set: verify at the source before copying, and at the destination after
}

func newCopyCmd() *cobra.Command {
	var opts copyOptions
	cmd := &cobra.Command{
		Use:   "copy SRC@DIGEST DST_REPOSITORY",
		Short: "Copy an image or index by digest, with its signatures, attestations and SBOMs",
		Long: "Copy an image or multi-platform index by digest into another repository or registry, together with\n" +
			"every artifact attached to it (cosign sha256-<hex>.sig/.att/.sbom tags and OCI 1.1 referrers,\n" +
			"recursively). Blobs already at the destination are not moved; registries on loopback hosts are\n" +
			"reached over plain HTTP. Prints DST_REPOSITORY@DIGEST, then a summary.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCopy(cmd.Context(), cmd.OutOrStdout(), args[0], args[1], opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.dockerConfig, "docker-config", "", "registry credentials as a dockerconfigjson file (default: your Docker login)")
	f.StringVar(&opts.caFile, "ca-file", "", "PEM file of extra certificate authorities to trust")
	f.StringSliceVar(&opts.insecure, "insecure-registry", nil, "registry host[:port] that may be reached over plain HTTP (repeatable)")
	f.IntVar(&opts.jobs, "jobs", 4, "blobs copied in parallel")
	opts.verify.bind(cmd)
	return cmd
}

// runCopy copies src to dst and prints the destination reference and a summary to out.
func runCopy(ctx context.Context, out io.Writer, src, dst string, opts copyOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ropts, err := opts.registryOptions()
	if err != nil {
		return err
	}
	client, err := registry.NewClient(ropts)
	if err != nil {
		return err
	}
	defer client.Close()
	srcVerified, err := opts.verify.verifyIfAsked(ctx, src, ropts)
	if err != nil {
		return fmt.Errorf("nothing copied: %w", err)
	}
	res, err := client.Copy(ctx, src, dst)
	if err != nil {
		if errors.Is(err, registry.ErrDigestRequired) {
			return fmt.Errorf("%w (resolve the tag first, e.g. with `crane digest`)", err)
		}
		return err
	}
	fmt.Fprintln(out, res.Destination)
	fmt.Fprintf(out, "blobs: %d copied, %d mounted, %d already present; %s moved\n",
		res.BlobsCopied, res.BlobsMounted, res.BlobsSkipped, humanBytes(res.BytesMoved))
	fmt.Fprintf(out, "manifests: %d copied, %d already present\n", res.ManifestsCopied, res.ManifestsSkipped)
	fmt.Fprintf(out, "referrers: %d copied, %d already present; signature tags: %d copied, %d already present\n",
		res.ReferrersCopied, res.ReferrersSkipped, res.TagsCopied, res.TagsSkipped)
	fmt.Fprintf(out, "requests: %d\n", res.Requests)
	if srcVerified != nil {
		dstVerified, err := opts.verify.verifyIfAsked(ctx, res.Destination, ropts)
		if err != nil {
			return fmt.Errorf("copied, but verification at the destination failed: %w", err)
		}
		fmt.Fprintf(out, "source %s\ndestination %s\n", srcVerified.Summary(), dstVerified.Summary())
	}
	return nil
}

func (o copyOptions) registryOptions() (registry.Options, error) {
	ro := registry.Options{Insecure: o.insecure, Jobs: o.jobs, Keychain: authn.DefaultKeychain}
	if o.jobs < 1 {
		return ro, fmt.Errorf("--jobs must be at least 1, got %d", o.jobs)
	}
	if o.dockerConfig != "" {
		data, err := os.ReadFile(o.dockerConfig)
		if err != nil {
			return ro, fmt.Errorf("--docker-config: %w", err)
		}
		if ro.Keychain, err = registry.KeychainFromDockerConfigJSON(data); err != nil {
			return ro, fmt.Errorf("--docker-config %s: %w", o.dockerConfig, err)
		}
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return ro, fmt.Errorf("--ca-file: %w", err)
		}
		ro.CABundle = pem
	}
	return ro, nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
