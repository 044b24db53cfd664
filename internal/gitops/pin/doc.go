// Package pin rewrites image references in YAML to `repository@digest`: kustomize images entries, the containers of
// Kubernetes workloads, and Helm values at a key path. It reads structure with the yaml.v3 parser and edits the
// original bytes only at the spans the parser reports, so comments, key order and formatting are kept and the diff
// touches only the lines that hold images. It must not do I/O: callers hand it bytes and write the result.
package pin
