// Package gitops writes image pins into Git: it keeps a shallow cache per repository and branch, edits the tree
// in memory (package pin), commits with a template, trailers and an optional signature, and pushes, re-applying
// the pin on the new tip when another writer won the race. It holds a lock only around local object-store work,
// never around the network. It knows nothing of Promotions or Kubernetes and never logs or stores credentials.
package gitops
