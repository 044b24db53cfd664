// Package image builds ferry-controller's container image without Docker: it cross-compiles static binaries,
// lays them on a base made here from nothing (passwd, CA certificates from Debian's ca-certificates package,
// /tmp), assembles a reproducible multi-arch OCI index, writes it as an OCI image layout, and describes it with
// an SPDX SBOM (from the binaries' embedded build info) and SLSA provenance. It never pulls a base image, pushes,
// or signs: publishing is hack/release's job.
package image
