package gitops

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"golang.org/x/crypto/ssh"
)

// Signing holds a commit signing key as plain bytes: an armored OpenPGP private key, or an OpenSSH private key.
// Exactly one may be set. Keys are parsed per commit and never logged.
type Signing struct {
	PGPKey        []byte
	SSHKey        []byte
	KeyPassphrase string
}

// String never shows key material.
func (s *Signing) String() string {
	switch {
	case s == nil:
		return "none"
	case len(s.PGPKey) > 0:
		return "openpgp(redacted)"
	case len(s.SSHKey) > 0:
		return "ssh(redacted)"
	}
	return "none"
}

// signer returns a function that signs a commit's encoding and returns the armored signature.
func (s *Signing) signer() (func([]byte) (string, error), error) {
	switch {
	case s == nil || len(s.PGPKey) == 0 && len(s.SSHKey) == 0:
		return nil, nil
	case len(s.PGPKey) > 0 && len(s.SSHKey) > 0:
		return nil, errors.New("signing: give either an OpenPGP or an SSH key, not both")
	case len(s.PGPKey) > 0:
		return s.pgpSigner()
	}
	return s.sshSigner()
}

func (s *Signing) pgpSigner() (func([]byte) (string, error), error) {
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(s.PGPKey))
	if err != nil || len(ring) == 0 || ring[0].PrivateKey == nil {
		return nil, errors.New("signing: the OpenPGP key is not an armored private key")
	}
	entity := ring[0]
	if entity.PrivateKey.Encrypted {
		if err := entity.PrivateKey.Decrypt([]byte(s.KeyPassphrase)); err != nil {
			return nil, errors.New("signing: cannot decrypt the OpenPGP key (wrong passphrase)")
		}
	}
	for _, sub := range entity.Subkeys {
		if sub.PrivateKey != nil && sub.PrivateKey.Encrypted {
			_ = sub.PrivateKey.Decrypt([]byte(s.KeyPassphrase))
		}
	}
	return func(data []byte) (string, error) {
		var sig bytes.Buffer
		if err := openpgp.ArmoredDetachSign(&sig, entity, bytes.NewReader(data), nil); err != nil {
			return "", fmt.Errorf("signing commit: %w", err)
		}
		return sig.String(), nil
	}, nil
}

// sshSigner produces the SSHSIG format git verifies with gpg.format=ssh (namespace "git", SHA-512).
func (s *Signing) sshSigner() (func([]byte) (string, error), error) {
	var key ssh.Signer
	var err error
	if s.KeyPassphrase != "" {
		key, err = ssh.ParsePrivateKeyWithPassphrase(s.SSHKey, []byte(s.KeyPassphrase))
	} else {
		key, err = ssh.ParsePrivateKey(s.SSHKey)
	}
	if err != nil {
		return nil, errors.New("signing: the SSH key is not a private key (or the passphrase is wrong)")
	}
	return func(data []byte) (string, error) {
		const namespace, hashAlg = "git", "sha512"
		digest := sha512.Sum512(data)
		signed := append([]byte("SSHSIG"), sshString([]byte(namespace))...)
		signed = append(signed, sshString(nil)...)
		signed = append(signed, sshString([]byte(hashAlg))...)
		signed = append(signed, sshString(digest[:])...)
		sig, err := signSSH(key, signed)
		if err != nil {
			return "", fmt.Errorf("signing commit: %w", err)
		}
		blob := append([]byte("SSHSIG"), 0, 0, 0, 1)
		blob = append(blob, sshString(key.PublicKey().Marshal())...)
		blob = append(blob, sshString([]byte(namespace))...)
		blob = append(blob, sshString(nil)...)
		blob = append(blob, sshString([]byte(hashAlg))...)
		blob = append(blob, sshString(ssh.Marshal(sig))...)
		return armorSSH(blob), nil
	}, nil
}

// signSSH uses rsa-sha2-512 for RSA keys (git refuses SHA-1 RSA signatures) and the key's own algorithm otherwise.
func signSSH(key ssh.Signer, data []byte) (*ssh.Signature, error) {
	if as, ok := key.(ssh.AlgorithmSigner); ok && key.PublicKey().Type() == ssh.KeyAlgoRSA {
		return as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	}
	return key.Sign(rand.Reader, data)
}

func sshString(b []byte) []byte {
	out := make([]byte, 4, 4+len(b))
	binary.BigEndian.PutUint32(out, uint32(len(b)))
	return append(out, b...)
}

func armorSSH(blob []byte) string {
	enc := base64.StdEncoding.EncodeToString(blob)
	var b strings.Builder
	b.WriteString("-----BEGIN SSH SIGNATURE-----\n")
	for len(enc) > 70 {
		b.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	b.WriteString(enc + "\n-----END SSH SIGNATURE-----")
	return b.String()
}
