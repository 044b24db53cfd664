package notify

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/ferrycd/ferry/internal/netaddr"
)

// maxURLBytes bounds a receiver URL read from a Secret.
const maxURLBytes = 2048

// CheckURL checks a receiver URL read from a Secret: an absolute https URL, or http to a loopback address where no
// credential can leak over the network, without user information. Its error never repeats the URL, which may
// be a credential.
func CheckURL(raw string) error {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return errors.New("is empty")
	}
	if len(raw) > maxURLBytes {
		return fmt.Errorf("is longer than %d bytes", maxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("is not an absolute URL with a host")
	}
	if u.User != nil {
		return errors.New("must not hold user information; put credentials in the path or use an HMAC key")
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && netaddr.IsLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return errors.New("uses plain http to a host that is not loopback; use https")
	}
	return errors.New("is not an http(s) URL")
}
