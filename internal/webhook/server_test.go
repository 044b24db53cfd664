package webhook

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests serve the webhook over real HTTP on loopback.

const (
	testToken  = "0123456789abcdef-token"
	testSecret = "0123456789abcdef-hmac-secret"
)

// pushes records what the webhook passed on to the controller. While full, it refuses wake-ups, as the
// controller does when too many are waiting.
type pushes struct {
	mu      sync.Mutex
	repos   []string
	full    bool
	refused int
}

func (p *pushes) pushed(repo string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.full {
		p.refused++
		return false
	}
	p.repos = append(p.repos, repo)
	return true
}

func (p *pushes) setFull(full bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.full = full
}

func (p *pushes) refusals() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

func (p *pushes) get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.repos)
}

func (p *pushes) count(repo string) int {
	n := 0
	for _, r := range p.get() {
		if r == repo {
			n++
		}
	}
	return n
}

// manualTimers stand in for time.AfterFunc: a test ends intervals by calling fire, so no test waits for time.
type manualTimers struct {
	mu      sync.Mutex
	pending []*manualTimer
}

type manualTimer struct {
	f       func()
	stopped bool
}

func (m *manualTimers) afterFunc(_ time.Duration, f func()) func() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &manualTimer{f: f}
	m.pending = append(m.pending, t)
	return func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// fire runs every timer pending now (those they start wait for the next fire) and returns how many ran.
func (m *manualTimers) fire() int {
	m.mu.Lock()
	due := m.pending
	m.pending = nil
	m.mu.Unlock()
	n := 0
	for _, t := range due {
		m.mu.Lock()
		stopped := t.stopped
		t.stopped = true
		m.mu.Unlock()
		if !stopped {
			t.f()
			n++
		}
	}
	return n
}

// testServer is a webhook served on a loopback port.
type testServer struct {
	url     string
	addr    string
	pushes  *pushes
	timers  *manualTimers
	handler *Handler
	client  *http.Client
}

// serve starts a webhook with cfg (Pushed is set by serve) and stops it when the test ends.
func serve(t *testing.T, cfg Config) *testServer {
	t.Helper()
	p := &pushes{}
	cfg.Pushed = p.pushed
	s, err := NewServer("", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	timers := &manualTimers{}
	if s.handler != nil {
		s.handler.throttle.afterFunc = timers.afterFunc
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{url: "http://" + l.Addr().String() + Path, addr: l.Addr().String(), pushes: p, timers: timers,
		handler: s.handler, client: client}
}

// post sends body with the given headers (and the URL's query) and returns the response, its body read.
func (s *testServer) post(t *testing.T, query, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url+query, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func bearerHeader(token string) []string { return []string{"Authorization", "Bearer " + token} }

func push(repo string) string { return fmt.Sprintf(`{"repository":%q}`, repo) }

func TestUnauthenticatedRequestsAreRefusedAndNothingIsEnqueued(t *testing.T) {
	body := push("registry.example.com/team/app")
	t.Run("token", func(t *testing.T) {
		s := serve(t, Config{Token: []byte(testToken)})
		for name, req := range map[string]struct {
			query  string
			header []string
		}{
			"no credential":         {},
			"wrong token":           {header: bearerHeader("0123456789abcdef-wrong")},
			"token prefix":          {header: bearerHeader(testToken[:len(testToken)-1])},
			"token with extra":      {header: bearerHeader(testToken + "x")},
			"basic scheme":          {header: []string{"Authorization", "Basic " + testToken}},
			"wrong query token":     {query: "?token=nope"},
			"signature, no secret":  {header: []string{SignatureHeader, Signature([]byte(testToken), []byte(body))}},
			"empty bearer":          {header: []string{"Authorization", "Bearer "}},
			"bearer without space":  {header: []string{"Authorization", "Bearer" + testToken}},
			"token in other header": {header: []string{"X-Token", testToken}},
		} {
			resp, _ := s.post(t, req.query, body, req.header...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: %s, want 401", name, resp.Status)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("%s: WWW-Authenticate %q", name, got)
			}
		}
		if got := s.pushes.get(); len(got) != 0 {
			t.Errorf("refused notifications woke %v", got)
		}
	})
	t.Run("hmac", func(t *testing.T) {
		s := serve(t, Config{HMACSecret: []byte(testSecret)})
		good := Signature([]byte(testSecret), []byte(body))
		for name, header := range map[string][]string{
			"no signature":                {},
			"signature of another body":   {SignatureHeader, Signature([]byte(testSecret), []byte(body+" "))},
			"signature with another key":  {SignatureHeader, Signature([]byte(testSecret+"x"), []byte(body))},
			"no sha256= prefix":           {SignatureHeader, strings.TrimPrefix(good, "sha256=")},
			"sha1":                        {SignatureHeader, "sha1=" + strings.TrimPrefix(good, "sha256=")},
			"not hex":                     {SignatureHeader, "sha256=" + strings.Repeat("zz", 32)},
			"truncated":                   {SignatureHeader, good[:len(good)-2]},
			"the secret as a bearer":      bearerHeader(testSecret),
			"signature in the bearer":     bearerHeader(good),
			"signature in another header": {"X-Hub-Signature", good},
		} {
			resp, _ := s.post(t, "", body, header...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: %s, want 401", name, resp.Status)
			}
		}
		if got := s.pushes.get(); len(got) != 0 {
			t.Errorf("refused notifications woke %v", got)
		}
	})
}

func TestAuthenticatedNotificationsAreAccepted(t *testing.T) {
	const repo = "registry.example.com/team/app"
	body := push(repo)
	sig := Signature([]byte(testSecret), []byte(body))
	cases := []struct {
		name   string
		cfg    Config
		query  string
		header []string
	}{
		{"bearer token", Config{Token: []byte(testToken)}, "", bearerHeader(testToken)},
		{"bearer scheme in lower case", Config{Token: []byte(testToken)}, "", []string{"Authorization", "bearer " + testToken}},
		{"token in the query", Config{Token: []byte(testToken)}, "?token=" + testToken, nil},
		{"HMAC signature", Config{HMACSecret: []byte(testSecret)}, "", []string{SignatureHeader, sig}},
		{"upper-case hex signature", Config{HMACSecret: []byte(testSecret)}, "", []string{SignatureHeader, "sha256=" + strings.ToUpper(strings.TrimPrefix(sig, "sha256="))}},
		{"token, both configured", Config{Token: []byte(testToken), HMACSecret: []byte(testSecret)}, "", bearerHeader(testToken)},
		{"signature, both configured", Config{Token: []byte(testToken), HMACSecret: []byte(testSecret)}, "", []string{SignatureHeader, sig}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := serve(t, tc.cfg)
			if resp, msg := s.post(t, tc.query, body, tc.header...); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("%s: %s", resp.Status, msg)
			}
			if got := s.pushes.get(); !slices.Equal(got, []string{repo}) {
				t.Fatalf("woke %v, want [%s]", got, repo)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	s := serve(t, Config{Token: []byte(testToken)})
	tok := bearerHeader(testToken)
	if resp, _ := s.post(t, "", `{`, tok...); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("malformed: %s", resp.Status)
	}
	if resp, _ := s.post(t, "", `{"hello":"world"}`, tok...); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no notification: %s", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodGet, s.url, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Errorf("GET: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
	}
	other, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(s.url, Path)+"/other", strings.NewReader(push("a/b")))
	other.Header.Set("Authorization", "Bearer "+testToken)
	if resp, err = s.client.Do(other); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("another path: %s", resp.Status)
	}
	if got := s.pushes.get(); len(got) != 0 {
		t.Errorf("bad requests woke %v", got)
	}
}

func TestBodyOverTheLimitIs413(t *testing.T) {
	limit := DefaultLimits().MaxBodyBytes
	for _, cfg := range []Config{{Token: []byte(testToken)}, {HMACSecret: []byte(testSecret)}} {
		s := serve(t, cfg)
		auth := func(body string) []string {
			if cfg.Token != nil {
				return bearerHeader(testToken)
			}
			return []string{SignatureHeader, Signature([]byte(testSecret), []byte(body))}
		}
		// Exactly at the limit: a notification padded with spaces is accepted.
		atLimit := push("a/b")
		atLimit += strings.Repeat(" ", int(limit)-len(atLimit))
		if resp, msg := s.post(t, "", atLimit, auth(atLimit)...); resp.StatusCode != http.StatusAccepted {
			t.Errorf("body of exactly %d bytes: %s %s", limit, resp.Status, msg)
		}
		over := atLimit + " "
		resp, msg := s.post(t, "", over, auth(over)...)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("body of %d bytes: %s %s", len(over), resp.Status, msg)
		}
		if got := s.pushes.count("index.docker.io/a/b"); got != 1 {
			t.Errorf("woke %d times, want once (the notification at the limit)", got)
		}
	}
}

// readUntilClosed reads conn until the server closes it or deadline passes, and returns what it read.
func readUntilClosed(conn net.Conn, deadline time.Time) (string, error) {
	_ = conn.SetReadDeadline(deadline)
	b, err := io.ReadAll(conn)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return string(b), fmt.Errorf("the server kept the connection open: %w", err)
		}
		// A reset is the server closing too.
	}
	return string(b), nil
}

func TestSlowlorisIsCutOffByReadHeaderTimeout(t *testing.T) {
	const headerTimeout = 300 * time.Millisecond
	s := serve(t, Config{Token: []byte(testToken), Limits: Limits{ReadHeaderTimeout: headerTimeout, ReadTimeout: time.Minute}})

	t.Run("headers never finished", func(t *testing.T) {
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		began := time.Now()
		if _, err := io.WriteString(conn, "POST "+Path+" HTTP/1.1\r\nHost: ferry\r\nAuthorization: Bearer "+testToken+"\r\n"); err != nil {
			t.Fatal(err)
		}
		if got, err := readUntilClosed(conn, began.Add(10*time.Second)); err != nil {
			t.Fatal(err)
		} else if got != "" {
			t.Errorf("the server answered %q", got)
		}
		if took := time.Since(began); took < headerTimeout-50*time.Millisecond {
			t.Errorf("closed after %v, before the header timeout %v", took, headerTimeout)
		}
	})

	t.Run("headers trickled a byte at a time", func(t *testing.T) {
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		began := time.Now()
		stop := make(chan struct{})
		trickled := make(chan struct{})
		go func() {
			defer close(trickled)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			header := "POST " + Path + " HTTP/1.1\r\nHost: ferry\r\nX-Padding: " + strings.Repeat("a", 10_000)
			for i := 0; i < len(header); i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte{header[i]}); err != nil {
					return
				}
			}
		}()
		_, err = readUntilClosed(conn, began.Add(10*time.Second))
		close(stop)
		<-trickled
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("a trickling client held the connection %v; the header timeout is %v", took, headerTimeout)
		}
	})

	if got := s.pushes.get(); len(got) != 0 {
		t.Errorf("woke %v", got)
	}
}

func TestSlowBodyIsCutOffByReadTimeout(t *testing.T) {
	const readTimeout = 500 * time.Millisecond
	s := serve(t, Config{Token: []byte(testToken), Limits: Limits{ReadTimeout: readTimeout}})
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	began := time.Now()
	body := push("a/b")
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: ferry\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s",
		Path, testToken, len(body), body[:3]); err != nil {
		t.Fatal(err)
	}
	got, err := readUntilClosed(conn, began.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got != "" && !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Errorf("answered %q", got)
	}
	if n := len(s.pushes.get()); n != 0 {
		t.Errorf("an unfinished notification woke %d repositories", n)
	}
}

func TestConnectionsAreCapped(t *testing.T) {
	s := serve(t, Config{Token: []byte(testToken), Limits: Limits{MaxConnections: 2, ReadHeaderTimeout: time.Minute}})
	// Two clients that connect and say nothing hold both connections (accepted in the order they connected).
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, s.url, strings.NewReader(push("a/b")))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := s.client.Do(req)
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	// The third connection waits while both slots are held. (Showing that something does not happen needs a
	// bounded wait; the server's timeouts are a minute here, so nothing else would release a slot.)
	select {
	case code := <-answered:
		t.Fatalf("a third connection was served (%d) while two were held", code)
	case <-time.After(300 * time.Millisecond):
	}
	_ = idle[0].Close()
	select {
	case code := <-answered:
		if code != http.StatusAccepted {
			t.Fatalf("answered %d once a slot was free", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting connection was not served once a slot was free")
	}
}

func TestFloodOfOneRepositoryWakesOncePerInterval(t *testing.T) {
	s := serve(t, Config{Token: []byte(testToken)})
	const flooded, other = "registry.example.com/team/flooded", "registry.example.com/team/other"
	tok := bearerHeader(testToken)

	var wg sync.WaitGroup
	codes := make(chan int, 400)
	for range 8 {
		wg.Go(func() {
			for range 50 {
				req, _ := http.NewRequest(http.MethodPost, s.url, strings.NewReader(push(flooded)))
				req.Header.Set(tok[0], tok[1])
				resp, err := s.client.Do(req)
				if err != nil {
					codes <- -1
					continue
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			}
		})
	}
	// Another repository gets through during the flood, at once.
	if resp, _ := s.post(t, "", push(other), tok...); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("other repository during the flood: %s", resp.Status)
	}
	if got := s.pushes.count(other); got != 1 {
		t.Fatalf("other repository woke %d times during the flood, want 1", got)
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusAccepted {
			t.Fatalf("a flooded notification was answered %d, want 202 (folded, not refused)", code)
		}
	}
	if got := s.pushes.count(flooded); got != 1 {
		t.Fatalf("400 notifications in one interval woke the repository %d times, want 1", got)
	}

	// The interval ends: what the flood folded becomes one more wake-up (the last push is never lost); the other
	// repository had nothing folded and wakes no more.
	s.timers.fire()
	if got := s.pushes.count(flooded); got != 2 {
		t.Fatalf("after the interval: %d wake-ups, want 2", got)
	}
	if got := s.pushes.count(other); got != 1 {
		t.Fatalf("other repository woke %d times, want 1", got)
	}
	// A quiet interval follows; then the repository is forgotten and the next notification wakes it at once.
	if n := s.timers.fire(); n != 1 {
		t.Fatalf("%d intervals were open, want 1", n)
	}
	if got := s.pushes.count(flooded); got != 2 {
		t.Fatalf("a quiet interval woke the repository (%d wake-ups)", got)
	}
	if n := s.handler.throttle.tracked(); n != 0 {
		t.Fatalf("%d repositories are still remembered", n)
	}
	if resp, _ := s.post(t, "", push(flooded), tok...); resp.StatusCode != http.StatusAccepted || s.pushes.count(flooded) != 3 {
		t.Fatalf("next notification: %s, %d wake-ups", resp.Status, s.pushes.count(flooded))
	}
}

func TestThrottleStopsItsTimersWhenClosed(t *testing.T) {
	p := &pushes{}
	th := newThrottle(time.Hour, p.pushed)
	timers := &manualTimers{}
	th.afterFunc = timers.afterFunc
	th.notify("a")
	th.notify("a")
	th.close()
	if n := timers.fire(); n != 0 {
		t.Fatalf("%d timers ran after close", n)
	}
	if th.notify("b"); len(p.get()) != 1 {
		t.Fatalf("woke %v after close", p.get())
	}
}

func TestReplicaThatDoesNotLeadAnswers503(t *testing.T) {
	leader := make(chan struct{})
	s := serve(t, Config{Token: []byte(testToken), Leader: leader})
	const repo = "registry.example.com/team/app"

	resp, _ := s.post(t, "", push(repo), bearerHeader(testToken)...)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("standby: %s, want 503", resp.Status)
	}
	if got := resp.Header.Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After %q, want 5", got)
	}
	if !resp.Close {
		t.Error("the standby kept the connection open: a registry's retry would come back to it")
	}
	if got := s.pushes.get(); len(got) != 0 {
		t.Fatalf("the standby woke %v", got)
	}
	// Credentials are checked first, on every replica.
	if resp, _ := s.post(t, "", push(repo)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("standby, no token: %s", resp.Status)
	}

	close(leader) // elected: the registry's retry is taken
	if resp, _ := s.post(t, "", push(repo), bearerHeader(testToken)...); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("leader: %s", resp.Status)
	}
	if got := s.pushes.get(); !slices.Equal(got, []string{repo}) {
		t.Fatalf("woke %v", got)
	}
}

// TestFullQueueAnswers503AndTheRetryIsTaken: when the controller cannot queue a wake-up, the registry hears 503
// with Retry-After (it retries on 5xx) instead of 202, and the repository is not held in the throttle, so that
// the retry is passed on at once.
func TestFullQueueAnswers503AndTheRetryIsTaken(t *testing.T) {
	s := serve(t, Config{Token: []byte(testToken)})
	const repo = "registry.example.com/team/app"
	tok := bearerHeader(testToken)

	s.pushes.setFull(true)
	resp, msg := s.post(t, "", push(repo), tok...)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("full queue: %s %s, want 503", resp.Status, msg)
	}
	if got := resp.Header.Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After %q, want 5", got)
	}
	if n := s.pushes.refusals(); n != 1 {
		t.Errorf("the controller was offered the wake-up %d times, want 1", n)
	}
	if n := s.handler.throttle.tracked(); n != 0 {
		t.Fatalf("a refused notification left %d repositories waiting for their interval", n)
	}

	s.pushes.setFull(false) // the controller drained its queue; the registry retries
	if resp, msg := s.post(t, "", push(repo), tok...); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("retry: %s %s, want 202", resp.Status, msg)
	}
	if got := s.pushes.get(); !slices.Equal(got, []string{repo}) {
		t.Fatalf("woke %v, want [%s] at once", got, repo)
	}
}

// TestRefusedWakeUpAtIntervalEndIsPassedOnLater: notifications folded into an interval were answered 202, so a
// wake-up the controller refuses at the interval's end is passed on at the end of the next one, not lost.
func TestRefusedWakeUpAtIntervalEndIsPassedOnLater(t *testing.T) {
	s := serve(t, Config{Token: []byte(testToken)})
	const repo = "registry.example.com/team/app"
	tok := bearerHeader(testToken)
	for range 2 { // the first is passed on, the second folded
		if resp, msg := s.post(t, "", push(repo), tok...); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s %s", resp.Status, msg)
		}
	}
	s.pushes.setFull(true)
	if n := s.timers.fire(); n != 1 {
		t.Fatalf("%d intervals ended, want 1", n)
	}
	if got, n := s.pushes.count(repo), s.pushes.refusals(); got != 1 || n != 1 {
		t.Fatalf("at the interval's end: %d wake-ups and %d refusals, want 1 and 1", got, n)
	}
	s.pushes.setFull(false)
	s.timers.fire()
	if got := s.pushes.count(repo); got != 2 {
		t.Fatalf("after the next interval: %d wake-ups, want 2 (the folded notification passed on)", got)
	}
	// Nothing more was folded: a quiet interval ends it.
	s.timers.fire()
	if got, n := s.pushes.count(repo), s.handler.throttle.tracked(); got != 2 || n != 0 {
		t.Fatalf("%d wake-ups, %d repositories tracked; want 2 and 0", got, n)
	}
}

func TestWebhookRefusesToStartWithoutCredentials(t *testing.T) {
	pushed := func(string) bool { return true }
	if _, err := NewServer(":0", Config{Pushed: pushed}, nil); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("no credentials: %v", err)
	}
	for _, cfg := range []Config{
		{Token: []byte("short-secret"), Pushed: pushed},
		{HMACSecret: []byte("short-secret"), Pushed: pushed},
	} {
		_, err := NewServer(":0", cfg, nil)
		if err == nil || !strings.Contains(err.Error(), "at least 16") {
			t.Fatalf("short credential: %v", err)
		}
		if strings.Contains(err.Error(), "short-secret") {
			t.Fatalf("the error shows the credential: %v", err)
		}
	}
}

func TestReadyOnlyWhileListening(t *testing.T) {
	s, err := NewServer("127.0.0.1:0", Config{Token: []byte(testToken), Pushed: func(string) bool { return true }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Ready(nil) == nil {
		t.Fatal("ready before listening")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for s.Ready(nil) != nil {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s.Ready(nil) == nil {
		t.Fatal("ready after stopping")
	}
}

// A raw HTTP/1.1 request on a kept-alive connection after a 401 still works: refusing does not wedge the
// connection.
func TestConnectionUsableAfterRefusal(t *testing.T) {
	s := serve(t, Config{Token: []byte(testToken)})
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	send := func(auth string) int {
		body := push("a/b")
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: ferry\r\n%sContent-Length: %d\r\n\r\n%s", Path, auth, len(body), body)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code := send("Authorization: Bearer " + testToken + "\r\n"); code != http.StatusAccepted {
		t.Fatalf("token: %d", code)
	}
}
