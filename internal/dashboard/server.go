package dashboard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/internal/netaddr"
)

// Options configure a dashboard.
type Options struct {
	// Client is the user's own client: every read, watch and request is made with it.
	Client client.WithWatch
	// Namespace scopes the Promotions listed and watched; empty for every namespace.
	Namespace string
	// User is who the API server authenticates the client as, shown in the page header; may be empty.
	User string
	// Log receives the server's own errors (a failed watch, a template error); nil discards them.
	Log io.Writer
}

// Server is one dashboard. Its CSRF token lives as long as it does.
type Server struct {
	opts   Options
	csrf   string
	pages  *pages
	events *broker
}

// New prepares a dashboard; Serve runs it.
func New(o Options) (*Server, error) {
	if o.Client == nil {
		return nil, errors.New("dashboard: no client")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return nil, fmt.Errorf("making the CSRF token: %w", err)
	}
	p, err := loadPages()
	if err != nil {
		return nil, err
	}
	return &Server{opts: o, csrf: hex.EncodeToString(token), pages: p, events: newBroker()}, nil
}

// Listen opens address for the dashboard, refusing any address that is not loopback: the dashboard acts with
// the user's credentials and has no login of its own, so no other machine may reach it. "localhost" means
// 127.0.0.1, so that a resolver cannot send it elsewhere.
func Listen(address string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("--address %q: want host:port, for example 127.0.0.1:8087: %w", address, err)
	}
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip == nil || !netaddr.IsLoopback(host) {
		return nil, fmt.Errorf("--address %q: the dashboard acts with your kubeconfig's credentials and has no "+
			"login of its own, so it listens on a loopback address only (127.0.0.1 or [::1])", address)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", address, err)
	}
	return ln, nil
}

// URL is the address a person opens for a listener.
func URL(ln net.Listener) string { return "http://" + ln.Addr().String() + "/" }

// Serve serves the dashboard on ln until ctx ends, watching Promotions for live updates meanwhile.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.RunEvents(ctx)
	srv := &http.Server{
		Handler:           s.Handler(ln.Addr()),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		// No WriteTimeout: the event stream stays open; it ends with ctx.
	}
	go func() {
		<-ctx.Done()
		shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving the dashboard: %w", err)
	}
	return nil
}

// RunEvents watches Promotions with the user's client and feeds the event streams of open pages until ctx ends.
func (s *Server) RunEvents(ctx context.Context) {
	s.events.run(ctx, s.opts.Client, s.opts.Namespace, s.opts.Log)
}

// Handler is the dashboard's HTTP handler for a server listening on addr: it accepts only the Host names of
// addr (DNS-rebinding defence) and requests from its own origin.
func (s *Server) Handler(addr net.Addr) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(staticFS())))
	mux.HandleFunc("GET /{$}", s.handleList)
	mux.HandleFunc("GET /fragments/promotions", s.handleListFragment)
	mux.HandleFunc("GET /promotions/{namespace}/{name}", s.handlePromotion)
	mux.HandleFunc("GET /fragments/promotions/{namespace}/{name}", s.handlePromotionFragment)
	mux.HandleFunc("GET /promotions/{namespace}/{name}/confirm", s.handleConfirm)
	mux.HandleFunc("POST /promotions/{namespace}/{name}/actions", s.handleAction)
	mux.HandleFunc("GET /provenance", s.handleProvenance)
	mux.HandleFunc("GET /events", s.handleEvents)
	return guard(allowedHosts(addr), mux)
}
