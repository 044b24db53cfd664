package dashboard

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// maxFormBytes bounds a request body: an action form is a few hundred bytes.
const maxFormBytes = 16 << 10

// contentSecurityPolicy allows the page's own scripts, styles and fetches only: no inline script, no framing,
// no form posted elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// allowedHosts are the Host header values that name the dashboard listening on addr. A page served under any
// other name — a DNS name rebound to 127.0.0.1 by a hostile site — is refused, so that site cannot read it.
func allowedHosts(addr net.Addr) map[string]bool {
	hosts := map[string]bool{strings.ToLower(addr.String()): true}
	if tcp, ok := addr.(*net.TCPAddr); ok && (tcp.IP.Equal(net.IPv4(127, 0, 0, 1)) || tcp.IP.Equal(net.IPv6loopback)) {
		hosts[net.JoinHostPort("localhost", strconv.Itoa(tcp.Port))] = true
	}
	return hosts
}

// guard refuses requests that do not come from the dashboard's own pages, bounds request bodies and sets
// headers that keep the pages from being framed or sniffed.
func guard(hosts map[string]bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hosts[strings.ToLower(r.Host)] {
			http.Error(w, "refused: Host "+quote(r.Host)+" is not this dashboard's address (DNS-rebinding defence); "+
				"open the URL that `ferry dashboard` printed", http.StatusForbidden)
			return
		}
		if !originAllowed(r, hosts) {
			http.Error(w, "refused: this request comes from another site (Origin "+quote(r.Header.Get("Origin"))+
				"); the dashboard only accepts requests from its own pages", http.StatusForbidden)
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin") // not no-referrer: with it a browser sends "Origin: null" on POST
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// originAllowed accepts a request whose Origin is the dashboard itself. A request that changes something must
// carry an Origin (every browser sends one with a POST), or at least say it is same-origin.
func originAllowed(r *http.Request, hosts map[string]bool) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return true
		}
		return r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	host, ok := strings.CutPrefix(strings.ToLower(origin), "http://")
	return ok && hosts[host]
}

// validCSRF compares a form's token with the server's in constant time.
func (s *Server) validCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) == 1
}

func quote(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return "\"" + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s) + "\""
}
