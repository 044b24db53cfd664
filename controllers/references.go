package controllers

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"golang.org/x/crypto/ssh"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/sync"
)

// Default keys of referenced Secrets and ConfigMaps, documented on the API fields that use them.
const (
	keyDockerConfig = ".dockerconfigjson"
	keyCosignPub    = "cosign.pub"
	keyTrustedRoot  = "trusted_root.json"
	keyCABundle     = "ca.crt"
	keyToken        = "token"
	keyKubeconfig   = "value"
	keySigning      = "signing.key"
)

// reference is one Secret or ConfigMap a Promotion needs, with the spec field that names it and a check of the
// content it must hold. The same list drives validation and the watch index, so they cannot disagree.
type reference struct {
	field string
	kind  ferryv1.ObjectKind
	name  string
	check func(data map[string][]byte) error
}

// references lists every object the Promotion refers to, in spec order.
func references(p *ferryv1.Promotion) []reference {
	var refs []reference
	add := func(field string, kind ferryv1.ObjectKind, name string, check func(map[string][]byte) error) {
		refs = append(refs, reference{field: field, kind: kind, name: name, check: check})
	}
	addAccess := func(field string, a ferryv1.RegistryAccess) {
		if a.SecretRef != nil {
			add(field+".secretRef", ferryv1.SecretKind, a.SecretRef.Name, dockerConfigJSON)
		}
		if a.CABundleRef != nil {
			add(field+".caBundleRef", kindOrConfigMap(a.CABundleRef.Kind), a.CABundleRef.Name,
				keyHolds(orDefault(a.CABundleRef.Key, keyCABundle), parseCertificates))
		}
	}

	spec := &p.Spec
	addAccess("spec.source.registry", spec.Source.Registry)
	for i, k := range spec.Verification.Keys {
		add(fmt.Sprintf("spec.verification.keys[%d].secretRef", i), ferryv1.SecretKind, k.SecretRef.Name,
			keyHolds(orDefault(k.SecretRef.Key, keyCosignPub), parsePublicKey))
	}
	if tr := spec.Verification.TrustedRootRef; tr != nil {
		add("spec.verification.trustedRootRef", kindOrConfigMap(tr.Kind), tr.Name,
			keyHolds(orDefault(tr.Key, keyTrustedRoot), parseTrustedRoot))
	}
	if spec.Git.SecretRef != nil {
		add("spec.git.secretRef", ferryv1.SecretKind, spec.Git.SecretRef.Name, gitCredentials)
	}
	if s := spec.Git.Signing; s != nil {
		add("spec.git.signing.secretRef", ferryv1.SecretKind, s.SecretRef.Name,
			keyHolds(orDefault(s.SecretRef.Key, keySigning), signingKeyParser(s.Format)))
	}
	for i := range spec.Stages {
		st := &spec.Stages[i]
		field := fmt.Sprintf("spec.stages[%d]", i)
		addAccess(field+".registry", st.Registry.RegistryAccess)
		if pr := st.Approval.PullRequest; pr != nil {
			add(field+".approval.pullRequest.tokenSecretRef", ferryv1.SecretKind, pr.TokenSecretRef.Name,
				keyHolds(orDefault(pr.TokenSecretRef.Key, keyToken), nonEmpty))
		}
		if kc := st.Sync.KubeconfigSecretRef; kc != nil {
			add(field+".sync.kubeconfigSecretRef", ferryv1.SecretKind, kc.Name,
				keyHolds(orDefault(kc.Key, keyKubeconfig), parseKubeconfig))
		}
		if a := st.Analysis; a != nil && a.Prometheus.SecretRef != nil {
			add(field+".analysis.prometheus.secretRef", ferryv1.SecretKind, a.Prometheus.SecretRef.Name,
				prometheusCredentials)
		}
	}
	return append(refs, notificationReferences(p)...)
}

// orDefault is value, or def when value is empty (keys of referenced objects, author fields).
func orDefault(value, def string) string {
	if value == "" {
		return def
	}
	return value
}

func kindOrConfigMap(k ferryv1.ObjectKind) ferryv1.ObjectKind {
	if k == "" {
		return ferryv1.ConfigMapKind
	}
	return k
}

// keyHolds checks that data has key and that its value parses.
func keyHolds(key string, parse func([]byte) error) func(map[string][]byte) error {
	return func(data map[string][]byte) error {
		value, ok := data[key]
		if !ok {
			return &missingKeyError{keys: strconv.Quote(key)}
		}
		if err := parse(value); err != nil {
			return fmt.Errorf("key %q: %w", key, err)
		}
		return nil
	}
}

// missingKeyError says a referenced object lacks a key; it gets its own condition reason.
type missingKeyError struct{ keys string }

func (e *missingKeyError) Error() string { return "has no key " + e.keys }

func nonEmpty(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("is empty")
	}
	return nil
}

func parsePublicKey(b []byte) error {
	if _, err := cryptoutils.UnmarshalPEMToPublicKey(b); err != nil {
		return fmt.Errorf("is not a PEM public key: %w", err)
	}
	return nil
}

func parseTrustedRoot(b []byte) error {
	if _, err := root.NewTrustedRootFromJSON(b); err != nil {
		return fmt.Errorf("is not a Sigstore trusted root: %w", err)
	}
	return nil
}

func parseCertificates(b []byte) error {
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return errors.New("holds no PEM certificate")
	}
	return nil
}

func parseKubeconfig(b []byte) error {
	if _, err := sync.ConfigFromKubeconfig(b); err != nil {
		return fmt.Errorf("is not a usable kubeconfig: %w", err)
	}
	return nil
}

func signingKeyParser(format ferryv1.SigningFormat) func([]byte) error {
	if format == ferryv1.SigningSSH {
		return func(b []byte) error {
			_, err := ssh.ParseRawPrivateKey(b)
			var missing *ssh.PassphraseMissingError
			if err != nil && !errors.As(err, &missing) {
				return fmt.Errorf("is not an SSH private key: %w", err)
			}
			return nil
		}
	}
	return func(b []byte) error {
		keys, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("is not an armored GPG key: %w", err)
		}
		if len(keys) == 0 || keys[0].PrivateKey == nil {
			return errors.New("holds no GPG private key")
		}
		return nil
	}
}

// dockerConfigJSON checks a kubernetes.io/dockerconfigjson Secret.
func dockerConfigJSON(data map[string][]byte) error {
	return keyHolds(keyDockerConfig, func(b []byte) error {
		var cfg struct {
			Auths map[string]json.RawMessage `json:"auths"`
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("is not JSON: %w", err)
		}
		if len(cfg.Auths) == 0 {
			return errors.New(`has no "auths"`)
		}
		return nil
	})(data)
}

// gitCredentials accepts HTTPS basic credentials (username and password) or an SSH private key (identity).
func gitCredentials(data map[string][]byte) error {
	return keyOrBasicAuth(data, "identity", signingKeyParser(ferryv1.SigningSSH))
}

// prometheusCredentials accepts a bearer token or basic credentials.
func prometheusCredentials(data map[string][]byte) error {
	return keyOrBasicAuth(data, keyToken, nonEmpty)
}

// keyOrBasicAuth accepts data holding key (whose value must parse), or else "username" and "password".
func keyOrBasicAuth(data map[string][]byte, key string, parse func([]byte) error) error {
	if _, ok := data[key]; ok {
		return keyHolds(key, parse)(data)
	}
	_, user := data["username"]
	_, pass := data["password"]
	if user && pass {
		return nil
	}
	return &missingKeyError{keys: strconv.Quote(key) + `, or "username" and "password"`}
}
