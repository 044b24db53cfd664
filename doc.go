// Package ferry is the root of Ferry, a GitOps continuous-delivery controller for Kubernetes that moves one
// signed image digest through an ordered pipeline of stages (see README.md and docs/architecture.md).
package ferry
