// Package e2e holds Ferry's end-to-end tests: the ferry-controller binary runs as a process against a whole
// local cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok nodes), real registries,
// real Git servers (git http-backend and Gitea) and the real cosign CLI. Tests only: nothing here is imported by
// Ferry, and nothing listens beyond loopback.
package e2e
