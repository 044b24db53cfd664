// Package netaddr answers questions about network addresses that several engines ask the same way, so that their
// plain-HTTP policies agree: only this machine may be reached without TLS unless a host is marked insecure.
package netaddr

import (
	"net"
	"strings"
)

// IsLoopback reports whether host (with or without a port, IPv6 with or without brackets) names this machine:
// localhost, 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
