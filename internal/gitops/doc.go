// Package gitops writes image pins into Git and reads trees back: one bare shallow cache per repository URL with
// each branch it uses as a ref (pull-request heads are created from their base's cached tip), edits in memory
// (package pin), commits with a template, trailers and an optional signature, and pushes, re-applying the pin on
// the new tip when another writer won the race. Checkout writes a folder at a revision for rendering. It holds a
// lock only around local object-store work, never around the network, and never force-pushes. It knows nothing
// of Promotions or Kubernetes and never logs or stores credentials.
package gitops
