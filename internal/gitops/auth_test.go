package gitops

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

func TestAuthNeverPrintsSecrets(t *testing.T) {
	a := Auth{Username: "bot", Password: "hunter2", SSHKeyPassphrase: "pp"}
	for _, s := range []string{a.String(), fmt.Sprintf("%v %+v %#v", a, a, a)} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "pp)") {
			t.Fatalf("printed %q", s)
		}
	}
}

func TestHTTPAuthMethod(t *testing.T) {
	ep, _ := transport.NewEndpoint("https://git.example.com/a.git")
	m, err := Auth{Password: "tok"}.method(ep)
	basic, ok := m.(*githttp.BasicAuth)
	if err != nil || !ok || basic.Username != "x-access-token" || basic.Password != "tok" {
		t.Fatalf("method = %#v, %v", m, err)
	}
	if _, err := (Auth{SSHKey: []byte("k")}).method(ep); err == nil {
		t.Fatal("an SSH key was accepted for an HTTPS URL")
	}
}

func TestSSHAuthMethodChecksHostKeys(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	hostPub, _, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := ssh.NewPublicKey(hostPub)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := ssh.NewPublicKey(otherPub)
	knownHosts := []byte("[git.example.com]:2222 " + string(ssh.MarshalAuthorizedKey(hostKey)))

	ep, _ := transport.NewEndpoint("ssh://git@git.example.com:2222/fleet.git")
	if _, err := (Auth{SSHKey: pem.EncodeToMemory(block)}).method(ep); err == nil ||
		!strings.Contains(err.Error(), "known hosts") {
		t.Fatalf("no known hosts: err = %v", err)
	}
	m, err := Auth{SSHKey: pem.EncodeToMemory(block), SSHKnownHosts: knownHosts}.method(ep)
	if err != nil {
		t.Fatal(err)
	}
	keys := m.(*gitssh.PublicKeys)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}
	if err := keys.HostKeyCallback("git.example.com:2222", addr, hostKey); err != nil {
		t.Fatalf("known host key refused: %v", err)
	}
	if err := keys.HostKeyCallback("git.example.com:2222", addr, otherKey); err == nil {
		t.Fatal("unknown host key accepted")
	}
	if _, err := (Auth{SSHKey: []byte("garbage"), SSHKnownHosts: knownHosts}).method(ep); err == nil ||
		strings.Contains(err.Error(), "garbage") {
		t.Fatalf("bad key: err = %v", err)
	}
}
