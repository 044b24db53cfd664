// Package gitserver runs a real Git smart-HTTP server on 127.0.0.1 for tests: `git http-backend` behind
// net/http/cgi, serving bare repositories in a temporary folder. It owns repository seeding, inspection of what
// landed (log, files, trailers) and fault injection (server-side hooks, basic auth, request interception).
// It must never listen on anything but loopback and is not meant for production use.
package gitserver
