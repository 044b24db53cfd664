package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/internal/registry"
	"github.com/ferrycd/ferry/internal/signature"
)

func init() { register(newVerifyCmd) }

func newVerifyCmd() *cobra.Command {
	var (
		policy verifyFlags
		reg    = copyOptions{jobs: 4}
	)
	cmd := &cobra.Command{
		Use:   "verify IMAGE@DIGEST",
		Short: "Verify that an image digest is signed (and attested) by accepted signers",
		Long: "Verify the cosign signatures of an image digest, found in legacy sha256-<hex>.sig/.att tags and in OCI 1.1\n" +
			"referrers (sigstore bundles), offline: with public keys (--key) or keyless identities checked against a\n" +
			"trusted root you provide (--trusted-root). Required attestations (--require-attestation) must be signed by\n" +
			"an accepted signer for the same digest. Registries on loopback hosts are reached over plain HTTP.\n" +
			"Prints one line naming the signers on success; exits non-zero with the reason for each signature otherwise.",
		Example: "  ferry verify ghcr.io/acme/app@sha256:… --key cosign.pub --require-attestation slsaprovenance1\n" +
			"  ferry verify ghcr.io/acme/app@sha256:… --trusted-root trusted_root.json \\\n" +
			"      --certificate-oidc-issuer https://token.actions.githubusercontent.com \\\n" +
			"      --certificate-identity-regexp 'https://github.com/acme/.*'",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := policy.policy()
			if err != nil {
				return err
			}
			ro, err := reg.registryOptions()
			if err != nil {
				return err
			}
			res, err := verifyImage(cmd.Context(), args[0], p, ro)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Summary())
			return nil
		},
	}
	policy.bind(cmd)
	f := cmd.Flags()
	f.StringVar(&reg.dockerConfig, "docker-config", "", "registry credentials as a dockerconfigjson file (default: your Docker login)")
	f.StringVar(&reg.caFile, "ca-file", "", "PEM file of extra certificate authorities to trust")
	f.StringSliceVar(&reg.insecure, "insecure-registry", nil, "registry host[:port] that may be reached over plain HTTP (repeatable)")
	return cmd
}

// verifyImage verifies ref against the policy through the registry options shared with `ferry copy`.
func verifyImage(ctx context.Context, ref string, p signature.Policy, ro registry.Options) (*signature.Result, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if _, err := signature.ParseDigestReference(ref); err != nil {
		return nil, err
	}
	d, err := ro.ParseDigest("image", ref)
	if err != nil {
		return nil, err
	}
	ropts, err := registry.RemoteOptions(ctx, ro)
	if err != nil {
		return nil, err
	}
	res, err := signature.VerifyDigest(ctx, d, p, ropts)
	if err != nil {
		return nil, explain(err)
	}
	return res, nil
}

// explain lays a verification failure out for a terminal: the verdict, then one line per rejected candidate.
func explain(err error) error {
	var e *signature.Error
	if !errors.As(err, &e) {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", e.Kind, strings.TrimSuffix(e.Error(), reasonsSuffix(e)))
	for _, r := range e.Reasons {
		b.WriteString("\n  - ")
		b.WriteString(r)
	}
	return &explained{msg: b.String(), err: err}
}

// reasonsSuffix is the part of e.Error() that lists reasons, printed one per line instead.
func reasonsSuffix(e *signature.Error) string {
	if len(e.Reasons) == 0 {
		return ""
	}
	return " (" + strings.Join(e.Reasons, "; ") + ")"
}

// explained keeps the original error (and its Kind) while printing the multi-line explanation.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }
