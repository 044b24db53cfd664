package gitops

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
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

// commitKey is the configured signing key. It signs Ferry's commits, and its public half tells Ferry's own
// commits apart from ones that merely carry Ferry's trailers (anyone who can push can write those).
type commitKey struct {
	// sign returns the armored signature of a commit's encoding.
	sign func(data []byte) (string, error)
	// verify checks an armored signature of data against the public half of the key.
	verify func(data []byte, armored string) error
}

// key parses the signing key; nil (and no error) when commits are not signed.
func (s *Signing) key() (*commitKey, error) {
	switch {
	case s == nil || len(s.PGPKey) == 0 && len(s.SSHKey) == 0:
		return nil, nil
	case len(s.PGPKey) > 0 && len(s.SSHKey) > 0:
		return nil, errors.New("signing: give either an OpenPGP or an SSH key, not both")
	case len(s.PGPKey) > 0:
		return s.pgpKey()
	}
	return s.sshKey()
}

func (s *Signing) pgpKey() (*commitKey, error) {
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
	sign := func(data []byte) (string, error) {
		var sig bytes.Buffer
		if err := openpgp.ArmoredDetachSign(&sig, entity, bytes.NewReader(data), nil); err != nil {
			return "", fmt.Errorf("signing commit: %w", err)
		}
		return sig.String(), nil
	}
	// Only this entity (its primary key or a signing subkey) is in the ring, so a signature that checks out is
	// by the configured key and no other.
	verify := func(data []byte, armored string) error {
		_, err := openpgp.CheckArmoredDetachedSignature(openpgp.EntityList{entity}, bytes.NewReader(data),
			strings.NewReader(armored), nil)
		return err
	}
	return &commitKey{sign: sign, verify: verify}, nil
}

// SSH signatures are git's (gpg.format=ssh): the SSHSIG format with namespace "git".
const (
	sshSigMagic     = "SSHSIG"
	sshSigNamespace = "git"
	sshSigHash      = "sha512"
)

// sshKey signs in the SSHSIG format git verifies with gpg.format=ssh (SHA-512).
func (s *Signing) sshKey() (*commitKey, error) {
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
	sign := func(data []byte) (string, error) {
		sig, err := signSSH(key, sshSignedData(sshSigHash, data))
		if err != nil {
			return "", fmt.Errorf("signing commit: %w", err)
		}
		blob := append([]byte(sshSigMagic), 0, 0, 0, 1)
		blob = append(blob, sshString(key.PublicKey().Marshal())...)
		blob = append(blob, sshString([]byte(sshSigNamespace))...)
		blob = append(blob, sshString(nil)...)
		blob = append(blob, sshString([]byte(sshSigHash))...)
		blob = append(blob, sshString(ssh.Marshal(sig))...)
		return armorSSH(blob), nil
	}
	verify := func(data []byte, armored string) error { return verifySSH(key.PublicKey(), data, armored) }
	return &commitKey{sign: sign, verify: verify}, nil
}

// sshSignedData is what an SSHSIG signature signs: the magic, namespace, reserved field, hash name and the hash
// of the message.
func sshSignedData(hashAlg string, data []byte) []byte {
	var digest []byte
	if hashAlg == "sha256" {
		sum := sha256.Sum256(data)
		digest = sum[:]
	} else {
		sum := sha512.Sum512(data)
		digest = sum[:]
	}
	signed := append([]byte(sshSigMagic), sshString([]byte(sshSigNamespace))...)
	signed = append(signed, sshString(nil)...)
	signed = append(signed, sshString([]byte(hashAlg))...)
	return append(signed, sshString(digest)...)
}

// sshSig is an SSHSIG blob after its magic.
type sshSig struct {
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  []byte
	HashAlg   string
	Signature []byte
}

// verifySSH checks an armored SSHSIG signature of data: by pub itself (not merely by a key it names), for git,
// with a hash git accepts, and never SHA-1 RSA, which git refuses too.
func verifySSH(pub ssh.PublicKey, data []byte, armored string) error {
	blob, err := dearmorSSH(armored)
	if err != nil {
		return err
	}
	var sig sshSig
	if !bytes.HasPrefix(blob, []byte(sshSigMagic)) || ssh.Unmarshal(blob[len(sshSigMagic):], &sig) != nil {
		return errors.New("not an SSH signature")
	}
	switch {
	case sig.Version != 1:
		return fmt.Errorf("SSH signature version %d is not 1", sig.Version)
	case !bytes.Equal(sig.PublicKey, pub.Marshal()):
		return errors.New("signed by another SSH key")
	case sig.Namespace != sshSigNamespace:
		return fmt.Errorf("SSH signature is for %q, not git", sig.Namespace)
	case sig.HashAlg != "sha512" && sig.HashAlg != "sha256":
		return fmt.Errorf("SSH signature hash %q is not sha256 or sha512", sig.HashAlg)
	}
	var inner ssh.Signature
	if err := ssh.Unmarshal(sig.Signature, &inner); err != nil {
		return errors.New("SSH signature is malformed")
	}
	if inner.Format == ssh.KeyAlgoRSA {
		return errors.New("SSH signature uses SHA-1 RSA")
	}
	return pub.Verify(sshSignedData(sig.HashAlg, data), &inner)
}

// dearmorSSH decodes one "SSH SIGNATURE" armor block.
func dearmorSSH(armored string) ([]byte, error) {
	const begin, end = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----"
	body, began := strings.CutPrefix(strings.TrimSpace(armored), begin)
	body, ended := strings.CutSuffix(body, end)
	if !began || !ended || strings.Contains(body, "-----") {
		return nil, errors.New("not one armored SSH signature")
	}
	return base64.StdEncoding.DecodeString(strings.Join(strings.Fields(body), ""))
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
