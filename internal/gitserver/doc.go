// Package gitserver runs a real Git smart-HTTP server on 127.0.0.1 for tests: `git http-backend` behind
// net/http/cgi, serving bare repositories (fetch by reachable SHA allowed, as on the forges) in a temporary folder.
// It owns repository seeding (NewRepo, Commit, Symlink, Merge), inspection of what landed (Log, BranchLog, File,
// Head, Branches) and fault injection (ProtectBranch and SetHook for server-side hooks, RequireBasicAuth, Intercept
// for HTTP failures). Typical use: s := gitserver.Start(t); url := s.NewRepo("fleet", files); …; s.Log("fleet").
// It never listens beyond loopback; not for production.
package gitserver
