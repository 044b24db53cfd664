package notify

import (
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCheckURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://hooks.slack.com/services/T0/B0/XXXX": true,
		"https://ci.example.com:8443/ferry":           true,
		"http://127.0.0.1:8080/hook":                  true,
		"http://localhost/hook":                       true,
		"http://[::1]:9000/":                          true,
		" https://ci.example.com/hook\n":              true, // a Secret file's final newline
		"http://ci.example.com/hook":                  false,
		"http://10.0.0.1/hook":                        false,
		"ftp://ci.example.com/hook":                   false,
		"https://user:pass@ci.example.com/hook":       false,
		"https:///no-host":                            false,
		"/relative":                                   false,
		"":                                            false,
		"https://" + strings.Repeat("a", 3000):        false,
	} {
		err := CheckURL(raw)
		if (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", raw, err, ok)
		}
	}
}

// FuzzCheckURL: whatever a Secret holds, CheckURL never panics, accepts only https or loopback http, and its
// error never repeats the URL.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://hooks.slack.com/services/T/B/X", "http://127.0.0.1:1/x", "http://evil.example/",
		"https://u:p@h/", "http://[::1", "%zz", "https://h/\x00", "http://localhost.evil.example/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		err := CheckURL(raw)
		if err != nil {
			if trimmed := strings.TrimSpace(raw); len(trimmed) >= 6 && strings.Contains(err.Error(), trimmed) {
				t.Fatalf("error %q repeats the URL", err)
			}
			return
		}
		u, perr := url.Parse(strings.TrimSpace(raw))
		if perr != nil {
			t.Fatalf("accepted %q that does not parse: %v", raw, perr)
		}
		if h := u.Hostname(); u.Scheme != "https" && !(u.Scheme == "http" && (strings.EqualFold(h, "localhost") || net.ParseIP(h).IsLoopback())) {
			t.Fatalf("accepted %q: neither https nor http to loopback", raw)
		}
		if u.User != nil {
			t.Fatalf("accepted user information in %q", raw)
		}
	})
}

// FuzzVerify: any header and body never panic; a body's own signature verifies and a changed body does not.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), []byte(`{"event":"Promoted"}`), "sha256=00")
	f.Add([]byte("k"), []byte(""), "sha256="+strings.Repeat("g", 64))
	f.Add([]byte("key-of-sixteen-b"), []byte("x"), " sha256=ABCDEF ")
	f.Fuzz(func(t *testing.T, key, body []byte, header string) {
		_ = Verify(key, body, header)
		sig := Sign(key, body)
		if !Verify(key, body, sig) {
			t.Fatal("a body's own signature does not verify")
		}
		if Verify(key, append(append([]byte{}, body...), '!'), sig) {
			t.Fatal("a changed body verifies")
		}
	})
}

// FuzzSlackText: whatever a peer's message says, the Slack payload is valid JSON and carries no raw < or >, so
// it can ping no one and forge no link.
func FuzzSlackText(f *testing.F) {
	f.Add("<!channel>", "prod", "alice <@U123>", "https://git.example/pr/1>")
	f.Add("\xff\xfe", "", "", "")
	f.Fuzz(func(t *testing.T, msg, stage, who, pr string) {
		m := Message{DeliveryID: "id", Event: "Promoted", Namespace: "ns", Promotion: "p", Stage: stage, Message: msg,
			Approver: who, PullRequestURL: pr, Time: time.Unix(0, 0)}
		body, err := Body(Slack, m, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		var payload struct{ Text string }
		if err := json.Unmarshal(body, &payload); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		if strings.ContainsAny(payload.Text, "<>") {
			t.Fatalf("raw angle bracket in %q", payload.Text)
		}
	})
}
