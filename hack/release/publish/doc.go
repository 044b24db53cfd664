// Package publish releases a built ferry-controller image: it pushes the OCI index, signs it and attests its SBOM
// and SLSA provenance with the real cosign CLI and a key pair, checks the result with Ferry's own verifier, and
// renders what installs it (dist/install.yaml from config/default, dist/charts/ferry) pinned by digest. It never
// builds the image (internal/image does) and never signs without a key it was given or told to generate.
package publish
