// Package localcluster starts a whole local Kubernetes cluster on 127.0.0.1 from binaries built from Go modules:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and kwok simulating the Nodes and their Pods, so
// Deployments roll out for real without a container runtime. It is for `make demo` and the e2e tests: it owns the
// cluster's state folder, certificates, tokens, processes and logs, and it must never bind anything but loopback,
// download anything, or leave a process behind after Stop.
package localcluster
