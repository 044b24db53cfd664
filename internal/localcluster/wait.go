package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

const (
	// pollInterval is how often readiness is checked: short, because startup is a few seconds in all.
	pollInterval = 50 * time.Millisecond
	// attemptTimeout bounds one readiness check, so a hung endpoint is retried rather than waited on forever.
	attemptTimeout = 5 * time.Second
)

// waitFor polls cond until it holds. It fails at once when any component has exited, with that component's log
// tail, and on timeout with the last reason cond gave and the log tail of blame, the component expected to
// bring the condition about.
func (c *Cluster) waitFor(ctx context.Context, what string, blame *process, cond func(context.Context) error) error {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		if p := c.firstExited(); p != nil {
			return fmt.Errorf("waiting for %s: %w", what, p.exitError())
		}
		attemptCtx, cancel := context.WithTimeout(ctx, attemptTimeout)
		last := cond(attemptCtx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last check: %v)%s", what, ctx.Err(), last, blame.logTail())
		case <-ticker.C:
		}
	}
}

func (c *Cluster) firstExited() *process {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if p.exited() {
			return p
		}
	}
	return nil
}

// waitHealthy waits until url answers 200 OK. HTTPS endpoints must present a certificate of the cluster's CA.
func (c *Cluster) waitHealthy(ctx context.Context, p *process, url, token string) error {
	client := c.healthClient()
	defer client.CloseIdleConnections()
	return c.waitFor(ctx, p.name+" to be healthy at "+url, p, func(ctx context.Context) error {
		return checkHealth(ctx, client, url, token)
	})
}

func (c *Cluster) healthClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(c.pki.caCert)
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Proxy:           nil, // loopback only, whatever HTTPS_PROXY says
	}}
}

func checkHealth(ctx context.Context, client *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status + ": " + strings.TrimSpace(string(body)))
	}
	return nil
}
