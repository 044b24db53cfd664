// Package gitserver runs a real Git smart-HTTP server on 127.0.0.1 for tests: `git http-backend` behind
// net/http/cgi, serving bare repositories in a temporary folder. It owns repository seeding, inspection of what
// landed (Log, File, Head) and fault injection (ProtectBranch and SetHook for server-side hooks,
// RequireBasicAuth, Intercept for HTTP failures). Typical use: s := gitserver.Start(t);
// url := s.NewRepo("fleet", files); …; s.Log("fleet"). It never listens beyond loopback; not for production.
package gitserver
