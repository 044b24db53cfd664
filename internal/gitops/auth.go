package gitops

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/ferrycd/ferry/internal/netaddr"
)

// Auth holds credentials as plain bytes; it is turned into a go-git auth method per call and never logged.
type Auth struct {
	// Username and Password (or a token in Password) for HTTP basic auth. Hosts that take a bare token accept any
	// non-empty user name, e.g. "x-access-token".
	Username string
	Password string
	// SSHKey is a PEM private key for ssh:// URLs, optionally protected by SSHKeyPassphrase.
	SSHKey           []byte
	SSHKeyPassphrase string
	// SSHKnownHosts is known_hosts content that the server's host key must match.
	SSHKnownHosts []byte
	// SSHInsecureIgnoreHostKey skips host key checks; meant for throwaway test servers only.
	SSHInsecureIgnoreHostKey bool
}

// String never shows a secret, so an Auth printed by mistake leaks nothing.
func (a Auth) String() string {
	switch {
	case len(a.SSHKey) > 0:
		return "ssh-key(redacted)"
	case a.Password != "":
		return "basic(" + a.Username + ", redacted)"
	}
	return "anonymous"
}

// GoString keeps %#v as quiet as %v.
func (a Auth) GoString() string { return a.String() }

func (a Auth) method(endpoint *transport.Endpoint) (transport.AuthMethod, error) {
	switch endpoint.Protocol {
	case "http", "https":
		if len(a.SSHKey) > 0 {
			return nil, errors.New("an SSH key was given for an HTTP repository URL")
		}
		if a.Password == "" && a.Username == "" {
			return nil, nil
		}
		user := a.Username
		if user == "" {
			user = "x-access-token"
		}
		return &githttp.BasicAuth{Username: user, Password: a.Password}, nil
	case "ssh":
		return a.sshMethod(endpoint)
	}
	return nil, fmt.Errorf("repository URL scheme %q is not supported (use https, ssh, or http on loopback)", endpoint.Protocol)
}

func (a Auth) sshMethod(endpoint *transport.Endpoint) (transport.AuthMethod, error) {
	if len(a.SSHKey) == 0 {
		return nil, errors.New("an ssh:// repository needs an SSH key")
	}
	user := endpoint.User
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeys(user, a.SSHKey, a.SSHKeyPassphrase)
	if err != nil {
		return nil, errors.New("parsing the SSH private key failed (wrong format or passphrase)")
	}
	switch {
	case a.SSHInsecureIgnoreHostKey:
		keys.HostKeyCallback = ssh.InsecureIgnoreHostKey()
	case len(a.SSHKnownHosts) > 0:
		cb, err := knownHostsCallback(a.SSHKnownHosts)
		if err != nil {
			return nil, err
		}
		keys.HostKeyCallback = cb
	default:
		return nil, errors.New("an ssh:// repository needs known hosts (or the insecure host-key option for tests)")
	}
	return keys, nil
}

// knownHostsCallback accepts a host key listed in known_hosts content (plain host names or [host]:port).
func knownHostsCallback(content []byte) (ssh.HostKeyCallback, error) {
	type entry struct {
		hosts []string
		key   ssh.PublicKey
	}
	var entries []entry
	rest := content
	for len(rest) > 0 {
		_, hosts, key, _, next, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			if len(entries) == 0 {
				return nil, fmt.Errorf("parsing known hosts: %w", err)
			}
			break
		}
		entries = append(entries, entry{hosts, key})
		rest = next
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		host, port, err := net.SplitHostPort(hostname)
		if err != nil {
			host, port = hostname, "22"
		}
		want := host
		if port != "22" {
			want = "[" + host + "]:" + port
		}
		for _, e := range entries {
			for _, h := range e.hosts {
				if h == want && string(e.key.Marshal()) == string(key.Marshal()) {
					return nil
				}
			}
		}
		return fmt.Errorf("host key of %s is not in the known hosts", hostname)
	}, nil
}

// checkURL refuses plain HTTP except on loopback or when marked insecure, and credentials inside the URL (they
// belong in Auth, where they cannot end up in an error message or a log).
func checkURL(raw string, insecureHTTP bool) (*transport.Endpoint, error) {
	if raw == "" {
		return nil, errors.New("repository URL is required")
	}
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			return nil, errors.New("repository URL must not hold a password; pass credentials in Auth")
		}
	}
	ep, err := transport.NewEndpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing repository URL: %w", err)
	}
	if ep.Protocol == "http" && !insecureHTTP && !netaddr.IsLoopback(ep.Host) {
		return nil, fmt.Errorf("repository URL %s uses plain HTTP on a non-loopback host; use https or mark it insecure", redact(raw))
	}
	if ep.Protocol == "file" {
		return nil, errors.New("repository URL must be https, ssh or loopback http, not a local path")
	}
	return ep, nil
}

// redact drops any user information from a URL before it goes into a message.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}
