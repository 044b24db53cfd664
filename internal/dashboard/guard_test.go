package dashboard

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

func TestListenRefusesAddressesOtherMachinesReach(t *testing.T) {
	for _, address := range []string{"0.0.0.0:0", ":0", "[::]:0", "10.0.0.1:0", "example.com:0", "127.0.0.1"} {
		if ln, err := Listen(address); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) accepted a non-loopback address", address)
		} else if !strings.Contains(err.Error(), "--address") {
			t.Errorf("Listen(%q): %v: the error does not name the flag", address, err)
		}
	}
	ln, err := Listen("localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("localhost listened on %s, want 127.0.0.1", ip)
	}
	if u := URL(ln); !strings.HasPrefix(u, "http://127.0.0.1:") {
		t.Errorf("URL = %s", u)
	}
}

func TestForeignHostOriginAndLargeBodiesAreRefused(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createPromotion(t, e, ns, "shop", shopStages())
	srv, ts := startDashboard(t, e.Config, ns)
	port := ts.Listener.Addr().(*net.TCPAddr).Port
	actions := ts.URL + "/promotions/" + ns + "/shop/actions"
	valid := url.Values{"csrf": {srv.csrf}, "action": {"rollback"}, "stage": {"dev"}}.Encode()

	send := func(method, target, host string, header map[string]string, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// A name rebound to 127.0.0.1 by another site is not this dashboard.
	if code, body := send(http.MethodGet, ts.URL+"/", "attacker.example:"+itoa(port), nil, ""); code != http.StatusForbidden ||
		!strings.Contains(body, "DNS-rebinding") {
		t.Errorf("foreign Host = %d %s", code, body)
	}
	if code, _ := send(http.MethodGet, ts.URL+"/", "localhost:"+itoa(port), nil, ""); code != http.StatusOK {
		t.Errorf("Host localhost = %d, want 200", code)
	}
	// Another site's page may not read or post.
	if code, _ := send(http.MethodGet, ts.URL+"/", "", map[string]string{"Origin": "http://attacker.example"}, ""); code != http.StatusForbidden {
		t.Errorf("foreign Origin GET = %d", code)
	}
	if code, _ := send(http.MethodPost, actions, "", map[string]string{"Origin": "http://attacker.example"}, valid); code != http.StatusForbidden {
		t.Errorf("foreign Origin POST = %d", code)
	}
	if code, _ := send(http.MethodPost, actions, "", map[string]string{"Origin": "null"}, valid); code != http.StatusForbidden {
		t.Errorf("opaque Origin POST = %d", code)
	}
	if code, _ := send(http.MethodPost, actions, "", nil, valid); code != http.StatusForbidden {
		t.Errorf("POST without Origin = %d", code)
	}
	// A state-changing GET does not exist.
	if code, _ := send(http.MethodGet, actions+"?"+valid, "", nil, ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET of the action URL = %d, want 405", code)
	}
	// Bodies are bounded.
	huge := valid + "&pad=" + strings.Repeat("x", maxFormBytes)
	if code, _ := send(http.MethodPost, actions, "", map[string]string{"Origin": ts.URL}, huge); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized POST = %d, want 413", code)
	}
	if _, ok := getPromotion(t, e, ns, "shop").Annotations[ferryv1.RollbackAnnotation]; ok {
		t.Fatal("a refused request changed the Promotion")
	}
	// The same request from the dashboard's own page goes through.
	if code, body := send(http.MethodPost, actions, "", map[string]string{"Origin": ts.URL}, valid); code != http.StatusOK {
		t.Errorf("same-origin POST = %d\n%s", code, body)
	}
	resp, err := ts.Client().Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
}

func TestEventsNameThePromotionThatChanged(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createPromotion(t, e, ns, "shop", shopStages())
	_, ts := startDashboard(t, e.Config, ns)

	lines := openEvents(t, ts)
	if ct := lines.contentType; ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	// The stream is open: change the Promotion until its change arrives (the watch may start after the first
	// write, which the initial list then reports as ADDED — any event naming shop will do).
	updateStatus(t, e, ns, "shop", func(p *ferryv1.Promotion) { p.Status.Stages[1].Phase = ferryv1.PhasePromoted })
	for lines.Scan() {
		line := lines.Text()
		if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"namespace":"`+ns+`","name":"shop"`) {
			return
		}
	}
	t.Fatalf("the stream ended without naming shop: %v", lines.Err())
}

func TestEventsSayWhyLiveUpdatesStopped(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createPromotion(t, e, ns, "shop", shopStages())
	_, ts := startDashboard(t, userWithVerbs(t, e, ns, "no-watch", "get", "list"), ns)

	lines := openEvents(t, ts)
	for lines.Scan() {
		if line := lines.Text(); strings.Contains(line, `"type":"PROBLEM"`) {
			if !strings.Contains(line, "live updates stopped") || !strings.Contains(line, `cannot watch resource \"promotions\"`) {
				t.Errorf("the problem does not say the watch is forbidden: %s", line)
			}
			return
		}
	}
	t.Fatalf("the stream ended without saying live updates stopped: %v", lines.Err())
}

// eventStream is the open /events stream of a dashboard, read line by line.
type eventStream struct {
	*bufio.Scanner
	contentType string
}

// openEvents opens the dashboard's /events stream for at most a minute; it is closed when the test ends.
func openEvents(t *testing.T, ts *httptest.Server) eventStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return eventStream{Scanner: bufio.NewScanner(resp.Body), contentType: resp.Header.Get("Content-Type")}
}

func itoa(i int) string { return strconv.Itoa(i) }
