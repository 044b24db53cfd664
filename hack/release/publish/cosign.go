package publish

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferrycd/ferry/internal/netaddr"
)

// Cosign runs the real cosign CLI (hack/cosign.sh builds it). Env is its whole environment (nil: this process's);
// the key's password is added as COSIGN_PASSWORD.
type Cosign struct {
	Bin string
	Env []string
	// TLog uploads signatures to the public transparency log (Rekor). Off by default: with a key the signature
	// verifies offline, and this machine reaches no Rekor; a verifier then needs cosign's --insecure-ignore-tlog.
	TLog bool
	// Insecure lists registries reached over plain HTTP besides loopback ones.
	Insecure []string
}

// KeyPair is a cosign key pair on disk: the encrypted private key, its password, and the PEM public key.
type KeyPair struct {
	PrivateKey, PublicKey, Password string
	// Generated is true for a throwaway pair made by GenerateKeyPair.
	Generated bool
}

// GenerateKeyPair makes a throwaway key pair in dir with a random password, kept in dir/cosign.password.
func (c Cosign) GenerateKeyPair(ctx context.Context, dir string) (KeyPair, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return KeyPair{}, err
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return KeyPair{}, err
	}
	k := KeyPair{PrivateKey: filepath.Join(dir, "cosign.key"), PublicKey: filepath.Join(dir, "cosign.pub"),
		Password: hex.EncodeToString(secret), Generated: true}
	for _, f := range []string{k.PrivateKey, k.PublicKey} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return KeyPair{}, err
		}
	}
	if err := c.run(ctx, dir, k, "generate-key-pair"); err != nil {
		return KeyPair{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "cosign.password"), []byte(k.Password+"\n"), 0o600); err != nil {
		return KeyPair{}, err
	}
	return k, nil
}

// Sign signs the digest with the key.
func (c Cosign) Sign(ctx context.Context, k KeyPair, d name.Digest) error {
	return c.run(ctx, "", k, append(append([]string{"sign"}, c.signFlags(k, d)...), d.String())...)
}

// Attest attests predicateFile of the cosign type predicateType (spdxjson, slsaprovenance1, …) about the digest.
func (c Cosign) Attest(ctx context.Context, k KeyPair, d name.Digest, predicateType, predicateFile string) error {
	args := append([]string{"attest", "--type", predicateType, "--predicate", predicateFile}, c.signFlags(k, d)...)
	return c.run(ctx, "", k, append(args, d.String())...)
}

// VerifyFlags are the flags `cosign verify` and `cosign verify-attestation` need for what Sign wrote.
func (c Cosign) VerifyFlags(k KeyPair, d name.Digest) []string {
	flags := []string{"--key", k.PublicKey}
	if !c.TLog {
		flags = append(flags, "--insecure-ignore-tlog=true")
	}
	if c.plainHTTP(d) {
		flags = append(flags, "--allow-http-registry")
	}
	return flags
}

func (c Cosign) signFlags(k KeyPair, d name.Digest) []string {
	flags := []string{"--key", k.PrivateKey, "--yes"}
	if !c.TLog {
		flags = append(flags, "--tlog-upload=false", "--use-signing-config=false")
	}
	if c.plainHTTP(d) {
		flags = append(flags, "--allow-http-registry")
	}
	return flags
}

func (c Cosign) plainHTTP(d name.Digest) bool {
	host := d.RegistryStr()
	if netaddr.IsLoopback(host) {
		return true
	}
	for _, h := range c.Insecure {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// Run runs cosign with the key's password and returns its combined output.
func (c Cosign) Run(ctx context.Context, k KeyPair, args ...string) (string, error) {
	return c.exec(ctx, "", k, args...)
}

func (c Cosign) run(ctx context.Context, dir string, k KeyPair, args ...string) error {
	_, err := c.exec(ctx, dir, k, args...)
	return err
}

// exec runs cosign in dir (where generate-key-pair writes; empty: this process's folder), bounded in time.
func (c Cosign) exec(ctx context.Context, dir string, k KeyPair, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Dir = dir
	env := c.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(append([]string{}, env...), "COSIGN_PASSWORD="+k.Password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("cosign %s: %w\n%s", args[0], err, out)
	}
	return string(out), nil
}
