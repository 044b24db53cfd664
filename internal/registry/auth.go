package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// dockerConfig is the shape of a Kubernetes kubernetes.io/dockerconfigjson Secret's .dockerconfigjson value.
type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

type dockerAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// configKeychain resolves credentials from parsed dockerconfigjson entries: an exact host match first, then the
// longest matching "*.domain" wildcard (the kubelet's matching rules), else anonymous.
type configKeychain struct {
	exact    map[string]authn.AuthConfig
	wildcard map[string]authn.AuthConfig // keyed by ".domain" suffix (with port, if any)
}

// KeychainFromDockerConfigJSON turns the content of a dockerconfigjson Secret into a keychain. Registries the
// content does not mention are reached anonymously. Error messages never include credential material.
func KeychainFromDockerConfigJSON(data []byte) (authn.Keychain, error) {
	var cfg dockerConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("dockerconfigjson: not valid JSON: %w", sanitizeJSONError(err))
	}
	if cfg.Auths == nil {
		return nil, errors.New(`dockerconfigjson: missing "auths" object`)
	}
	kc := &configKeychain{exact: map[string]authn.AuthConfig{}, wildcard: map[string]authn.AuthConfig{}}
	for key, a := range cfg.Auths {
		host, err := normalizeConfigKey(key)
		if err != nil {
			return nil, fmt.Errorf("dockerconfigjson: auths key %q: %w", key, err)
		}
		ac, err := a.authConfig()
		if err != nil {
			return nil, fmt.Errorf("dockerconfigjson: auths[%q]: %w", key, err)
		}
		if suffix, ok := strings.CutPrefix(host, "*"); ok {
			if !strings.HasPrefix(suffix, ".") || len(suffix) < 2 || strings.Contains(suffix, "*") {
				return nil, fmt.Errorf("dockerconfigjson: auths key %q: only a leading \"*.\" wildcard is supported", key)
			}
			kc.wildcard[suffix] = ac
			continue
		}
		if strings.Contains(host, "*") {
			return nil, fmt.Errorf("dockerconfigjson: auths key %q: only a leading \"*.\" wildcard is supported", key)
		}
		kc.exact[host] = ac
	}
	return kc, nil
}

// sanitizeJSONError drops anything but the error's kind and offset, since a type error may quote input values.
func sanitizeJSONError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("syntax error at offset %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q has the wrong type (%s)", te.Field, te.Value)
	}
	return errors.New("cannot be decoded")
}

func (a dockerAuth) authConfig() (authn.AuthConfig, error) {
	ac := authn.AuthConfig{
		Username:      a.Username,
		Password:      a.Password,
		IdentityToken: a.IdentityToken,
		RegistryToken: a.RegistryToken,
	}
	if a.Auth != "" && ac.Username == "" && ac.Password == "" {
		raw, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return authn.AuthConfig{}, errors.New(`"auth" is not valid base64`)
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return authn.AuthConfig{}, errors.New(`"auth" does not decode to "username:password"`)
		}
		ac.Username, ac.Password = user, pass
	}
	if ac == (authn.AuthConfig{}) {
		return authn.AuthConfig{}, errors.New("no credentials (username/password, auth, identitytoken or registrytoken)")
	}
	return ac, nil
}

// normalizeConfigKey reduces the many spellings of a registry key ("https://host:5000/v2/", "host") to the
// registry host; Docker Hub's historical keys map to the name go-containerregistry uses for it.
func normalizeConfigKey(key string) (string, error) {
	k := strings.TrimSpace(key)
	if k == "" {
		return "", errors.New("empty registry")
	}
	if strings.Contains(k, "://") {
		u, err := url.Parse(k)
		if err != nil || u.Host == "" {
			return "", errors.New("not a registry host or URL")
		}
		k = u.Host
	} else if i := strings.IndexByte(k, '/'); i >= 0 {
		k = k[:i]
	}
	k = strings.ToLower(k)
	switch k {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return name.DefaultRegistry, nil
	}
	return k, nil
}

func (kc *configKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host := strings.ToLower(r.RegistryStr())
	if ac, ok := kc.exact[host]; ok {
		return authn.FromConfig(ac), nil
	}
	best, bestLen := authn.AuthConfig{}, 0
	hostOnly, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		hostOnly, port = host[:i], host[i:]
	}
	for suffix, ac := range kc.wildcard {
		sHost, sPort := suffix, ""
		if i := strings.LastIndexByte(suffix, ':'); i >= 0 {
			sHost, sPort = suffix[:i], suffix[i:]
		}
		// "*.example.com" matches exactly one more label, as the kubelet does.
		rest, ok := strings.CutSuffix(hostOnly, sHost)
		if !ok || sPort != port || rest == "" || strings.Contains(rest, ".") {
			continue
		}
		if len(suffix) > bestLen {
			best, bestLen = ac, len(suffix)
		}
	}
	if bestLen > 0 {
		return authn.FromConfig(best), nil
	}
	return authn.Anonymous, nil
}
