package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"
)

// Path is where notifications are posted.
const Path = "/registry"

// shutdownGrace is how long a stopping server lets requests in flight finish.
const shutdownGrace = 5 * time.Second

// Server serves a Handler on Path and a ForgeHandler under ForgePathPrefix, with the Config's limits. It is a
// controller-runtime Runnable that runs on every replica: one that does not lead answers 503, so that a registry
// or forge retries until it reaches the leader.
type Server struct {
	addr    string
	tls     *tls.Config
	limits  Limits
	handler *Handler      // nil when the registry endpoint has no credentials (forge events only)
	forge   *ForgeHandler // nil without Config.ForgeSecret
	// listening is true while the server accepts connections.
	listening atomic.Bool
}

// NewServer returns a Server for addr ("host:port"), serving HTTPS with tlsConfig when it is not nil. It serves
// the registry endpoint unless only a ForgeSecret is given, and the forge endpoints when one is.
func NewServer(addr string, c Config, tlsConfig *tls.Config) (*Server, error) {
	s := &Server{addr: addr, tls: tlsConfig, limits: c.Limits.withDefaults()}
	if len(c.Token) > 0 || len(c.HMACSecret) > 0 || len(c.ForgeSecret) == 0 {
		h, err := NewHandler(c)
		if err != nil {
			return nil, err
		}
		s.handler = h
	}
	if len(c.ForgeSecret) > 0 {
		f, err := NewForgeHandler(c)
		if err != nil {
			return nil, err
		}
		s.forge = f
	}
	return s, nil
}

// Start listens on the Server's address and serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("webhook server: %w", err)
	}
	return s.Serve(ctx, l)
}

// Serve serves on l until ctx ends, then lets requests in flight finish for a few seconds. It closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	lim := s.limits
	mux := http.NewServeMux()
	if s.handler != nil {
		mux.Handle(Path, s.handler)
	}
	if s.forge != nil {
		mux.Handle(ForgePathPrefix, s.forge)
	}
	// HTTP/1.1 only: one request per connection at a time, so that MaxConnections bounds requests too.
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		Protocols:         protocols,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	l = netutil.LimitListener(l, lim.MaxConnections)
	if s.tls != nil {
		cfg := s.tls.Clone()
		if cfg.MinVersion < tls.VersionTLS12 {
			cfg.MinVersion = tls.VersionTLS12
		}
		cfg.NextProtos = []string{"http/1.1"}
		l = tls.NewListener(l, cfg)
	}

	stopped := make(chan struct{})
	served := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-served:
			return
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
	}()
	s.listening.Store(true)
	err := srv.Serve(l)
	s.listening.Store(false)
	close(served)
	<-stopped
	if s.handler != nil {
		s.handler.Close()
	}
	if s.forge != nil {
		s.forge.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("registry webhook: %w", err)
}

// NeedLeaderElection is false: every replica serves, and those that do not lead answer 503.
func (*Server) NeedLeaderElection() bool { return false }

// Ready is a readiness check (healthz.Checker): the replica is unready until notifications can be received.
func (s *Server) Ready(*http.Request) error {
	if !s.listening.Load() {
		return errors.New("the registry webhook is not listening")
	}
	return nil
}
