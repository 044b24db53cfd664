package gitops

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"golang.org/x/crypto/ssh"

	"github.com/ferrycd/ferry/internal/gitserver"
)

// verifyCommit runs the real `git verify-commit` in the server's bare repository.
func verifyCommit(t *testing.T, s *gitserver.Server, sha string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(s.GitBin(), append(append(args, "verify-commit", "-v"), sha)...)
	cmd.Dir = s.RepoDir("fleet")
	cmd.Env = append(s.Env(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git verify-commit: %v\n%s", err, out)
	}
	return string(out)
}

func TestSSHSignedCommitVerifiesWithGit(t *testing.T) {
	requireTool(t, "ssh-keygen", "openssh-client")
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "ferry")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	allowed := filepath.Join(t.TempDir(), "allowed_signers")
	line := "ferry@example.com " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + "\n"
	if err := os.WriteFile(allowed, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	s, url := seed(t)
	req := request(url, "prod", digestA)
	req.Signing = &Signing{SSHKey: pem.EncodeToMemory(block)}
	res, err := newEngine(t).Pin(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	out := verifyCommit(t, s, res.CommitSHA, nil, "-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile="+allowed)
	if !strings.Contains(out, `Good "git" signature for ferry@example.com`) {
		t.Fatalf("verify-commit said:\n%s", out)
	}
}

func TestOpenPGPSignedCommitVerifiesWithGit(t *testing.T) {
	gpg := requireTool(t, "gpg", "gnupg")
	entity, err := openpgp.NewEntity("Ferry", "", "ferry@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	var private, public bytes.Buffer
	w, _ := armor.Encode(&private, openpgp.PrivateKeyType, nil)
	if err := entity.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	w, _ = armor.Encode(&public, openpgp.PublicKeyType, nil)
	if err := entity.Serialize(w); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()

	home, err := os.MkdirTemp("", "gpg") // short path: gpg-agent sockets must fit in sun_path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(home) })
	imp := exec.Command(gpg, "--batch", "--import")
	imp.Env = []string{"GNUPGHOME=" + home}
	imp.Stdin = &public
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}

	s, url := seed(t)
	req := request(url, "prod", digestA)
	req.Signing = &Signing{PGPKey: private.Bytes()}
	res, err := newEngine(t).Pin(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	out := verifyCommit(t, s, res.CommitSHA, []string{"GNUPGHOME=" + home})
	if !strings.Contains(out, `Good signature from "Ferry <ferry@example.com>"`) {
		t.Fatalf("verify-commit said:\n%s", out)
	}
}

func TestSigningKeyErrorsCommitNothing(t *testing.T) {
	s, url := seed(t)
	tip := s.Head("fleet", "main")
	for name, sig := range map[string]*Signing{
		"garbage ssh": {SSHKey: []byte("not a key")},
		"garbage pgp": {PGPKey: []byte("not a key")},
		"both":        {SSHKey: []byte("a"), PGPKey: []byte("b")},
	} {
		req := request(url, "prod", digestA)
		req.Signing = sig
		_, err := newEngine(t).Pin(context.Background(), req)
		if err == nil || !strings.HasPrefix(err.Error(), "signing: ") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	assertUntouched(t, s, tip)
}

// requireTool finds a binary git needs to verify signatures; it skips without it unless FERRY_REQUIRE_TOOLS=1.
func requireTool(t *testing.T, name, aptPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("FERRY_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s not found: apt-get install %s", name, aptPackage)
		}
		t.Skipf("%s not found: apt-get install %s (make test requires it)", name, aptPackage)
	}
	return p
}
