package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferrycd/ferry/hack/release/publish"
)

// releaseOptions are the flags of `release release`.
type releaseOptions struct {
	dist, registry, key, pub, cosign, builderID, configDir, chartDir string
	tlog                                                             bool
	insecure                                                         stringList
	cosignEnv                                                        []string // cosign's whole environment; nil: this process's
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func (o *releaseOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.dist, "dist", "dist", "folder `release image` wrote")
	fs.StringVar(&o.registry, "registry", "", "where to push: host[:port]/path; the image goes to <registry>/ferry-controller (required)")
	fs.StringVar(&o.key, "key", os.Getenv("FERRY_RELEASE_KEY"), "cosign private key file ($FERRY_RELEASE_KEY; its password in $COSIGN_PASSWORD); none: a throwaway pair is generated")
	fs.StringVar(&o.pub, "pub", os.Getenv("FERRY_RELEASE_PUB"), "the key's public half, PEM ($FERRY_RELEASE_PUB)")
	fs.StringVar(&o.cosign, "cosign", os.Getenv("FERRY_COSIGN"), "the cosign CLI ($FERRY_COSIGN; hack/cosign.sh builds it)")
	fs.StringVar(&o.builderID, "builder-id", envOr("FERRY_BUILDER_ID", "https://github.com/ferrycd/ferry/hack/release"), "the provenance's builder.id: who built ($FERRY_BUILDER_ID, e.g. the CI workflow's URL)")
	fs.StringVar(&o.configDir, "config", "config/default", "the kustomization install.yaml is rendered from")
	fs.StringVar(&o.chartDir, "chart", "charts/ferry", "the Helm chart copied to dist/charts/ferry with the image set")
	fs.BoolVar(&o.tlog, "tlog", false, "upload signatures to the public transparency log (needs Rekor reachable)")
	fs.Var(&o.insecure, "insecure-registry", "registry host[:port] reached over plain HTTP (loopback hosts always are; repeatable)")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func releaseCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	var o releaseOptions
	o.bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	rel, err := release(ctx, o, os.Stdout)
	if err != nil {
		return err
	}
	fmt.Printf("\nreleased %s\n", publish.PinnedReference(rel.Digest))
	return nil
}

// release publishes what `release image` built and writes install.yaml and the chart.
func release(ctx context.Context, o releaseOptions, log io.Writer) (*publish.Released, error) {
	if o.registry == "" {
		return nil, fmt.Errorf("--registry is required: make release REGISTRY=host[:port]/path")
	}
	if o.cosign == "" {
		return nil, fmt.Errorf("--cosign or $FERRY_COSIGN must name the cosign CLI (hack/cosign.sh builds it)")
	}
	c := publish.Cosign{Bin: o.cosign, Env: o.cosignEnv, TLog: o.tlog, Insecure: o.insecure}
	key, err := releaseKey(ctx, o, c, log)
	if err != nil {
		return nil, err
	}
	repository := strings.TrimSuffix(o.registry, "/") + "/ferry-controller"
	rel, err := publish.Release(ctx, publish.Options{Dist: o.dist, Repository: repository, BuilderID: o.builderID,
		Registry: publish.RegistryOptions(o.insecure), Cosign: c, Key: key})
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(log, "pushed, signed and attested;", rel.Verified.Summary())
	install, err := publish.RenderInstall(o.configDir, rel.Digest)
	if err != nil {
		return nil, err
	}
	installFile := filepath.Join(o.dist, publish.InstallFile)
	if err := os.WriteFile(installFile, install, 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintln(log, "wrote", installFile)
	if err := releaseChart(o, rel, log); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "verify it:\n  ferry verify %s --key %s --require-attestation spdxjson --require-attestation slsaprovenance1\n"+
		"  cosign verify %s %s\n", publish.PinnedReference(rel.Digest), key.PublicKey,
		strings.Join(c.VerifyFlags(key, rel.Digest), " "), rel.Digest)
	return rel, nil
}

// releaseChart copies the chart with the image set, or says loudly that there is no chart to copy.
func releaseChart(o releaseOptions, rel *publish.Released, log io.Writer) error {
	if _, err := os.Stat(filepath.Join(o.chartDir, "Chart.yaml")); os.IsNotExist(err) {
		fmt.Fprintf(log, "NOTE: no chart at %s: dist/charts/ferry not written\n", o.chartDir)
		return nil
	}
	dst := filepath.Join(o.dist, publish.ChartsDir, filepath.Base(o.chartDir))
	if err := publish.CopyChart(o.chartDir, dst, rel.Digest); err != nil {
		return err
	}
	fmt.Fprintln(log, "wrote", dst)
	return nil
}

// releaseKey is the key pair given, or a throwaway one with a warning that cannot be missed.
func releaseKey(ctx context.Context, o releaseOptions, c publish.Cosign, log io.Writer) (publish.KeyPair, error) {
	switch {
	case o.key != "" && o.pub != "":
		return publish.KeyPair{PrivateKey: o.key, PublicKey: o.pub, Password: os.Getenv("COSIGN_PASSWORD")}, nil
	case o.key != "" || o.pub != "":
		return publish.KeyPair{}, fmt.Errorf("give both --key and --pub (or $FERRY_RELEASE_KEY and $FERRY_RELEASE_PUB), or neither")
	}
	k, err := c.GenerateKeyPair(ctx, filepath.Join(o.dist, "keys"))
	if err != nil {
		return k, err
	}
	fmt.Fprintf(log, "\n*** WARNING: no release key given (--key/--pub or $FERRY_RELEASE_KEY/$FERRY_RELEASE_PUB).\n"+
		"*** Signing with a THROWAWAY key pair made just now in %s: only who holds that folder can\n"+
		"*** check this release. Give the project's release key to publish for others.\n\n", filepath.Dir(k.PrivateKey))
	return k, nil
}
