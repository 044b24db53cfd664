// Package scm opens and follows the pull requests through which a person approves a promotion: merged
// means approved (with the merge commit and who merged it), closed unmerged means rejected. It owns the
// branch naming, the title, body and evidence comment of those pull requests, Ferry's commit status on their
// head, and one Provider per forge (Gitea, GitHub, GitLab). It must not push commits, read Kubernetes objects
// or log tokens: callers hand in plain values.
package scm
