// Package giteatest runs a real Gitea server (built by hack/gitea.sh, found through $FERRY_GITEA) on
// 127.0.0.1 for tests: one per test binary from TestMain, with helpers to create users, repositories
// and branches through Gitea's API and the git CLI. It is test support only: production code must not
// import it, and it never listens on anything but loopback.
package giteatest
