package signature

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Predicate types the summary reads beyond the ones Ferry can require by short name.
const (
	PredicateSLSAProvenanceV02 = "https://slsa.dev/provenance/v0.2"
	// predicateCycloneDXSpec is the predicate type CycloneDX's own specification names; cosign writes
	// PredicateCycloneDX.
	predicateCycloneDXSpec = "https://cyclonedx.org/specification/cyclonedx-json"
)

// AttestationSummary is what a person approving a digest wants to know of one attestation, read from its
// predicate: who built the image from which source (SLSA provenance), or what the SBOM lists. Attestation
// payloads come from whoever signed them, so every string is cut to maxSummaryString bytes of valid UTF-8 and
// anything unexpected leaves the field empty rather than failing verification.
type AttestationSummary struct {
	// BuilderID is the SLSA builder's id (runDetails.builder.id in v1, builder.id in v0.2).
	BuilderID string
	// BuildType is the SLSA build type URI.
	BuildType string
	// SourceRepository and SourceCommit are where the build took its source from: a git dependency of
	// resolvedDependencies or the externalParameters (v1), the configSource or a git material (v0.2).
	SourceRepository string
	SourceCommit     string
	// SBOMFormat is "SPDX-2.3", "CycloneDX 1.5", …; empty when the attestation is no SBOM.
	SBOMFormat string
	// Packages counts the SBOM's SPDX packages or CycloneDX components (nested ones included, to
	// maxComponentDepth); -1 when the attestation is no SBOM or the count could not be read.
	Packages int
}

// maxSummaryString bounds every string of a summary: enough for a builder URI or a repository URL, small enough
// that a status holding a few summaries stays small.
const maxSummaryString = 256

// maxComponentDepth bounds how deep nested CycloneDX components are counted.
const maxComponentDepth = 16

// Summarize reads the predicate of an in-toto statement of predicateType. predicate is the raw JSON value of
// the statement's "predicate" field; it is at most maxPayloadBytes (larger input gives an empty summary).
// Summarize never fails: what it cannot read it leaves out.
func Summarize(predicateType string, predicate []byte) AttestationSummary {
	out := AttestationSummary{Packages: -1}
	if len(predicate) == 0 || len(predicate) > maxPayloadBytes {
		return out
	}
	switch predicateType {
	case PredicateSLSAProvenanceV1:
		summarizeSLSAv1(predicate, &out)
	case PredicateSLSAProvenanceV02:
		summarizeSLSAv02(predicate, &out)
	case PredicateSPDX:
		summarizeSPDX(predicate, &out)
	case PredicateCycloneDX, predicateCycloneDXSpec:
		summarizeCycloneDX(predicate, &out)
	}
	out.BuilderID = clip(out.BuilderID)
	out.BuildType = clip(out.BuildType)
	out.SourceRepository = clip(out.SourceRepository)
	out.SourceCommit = clip(out.SourceCommit)
	out.SBOMFormat = clip(out.SBOMFormat)
	return out
}

// resourceDescriptor is the SLSA v1 (in-toto v1) resource descriptor, and close enough to a v0.2 material.
type resourceDescriptor struct {
	URI    string            `json:"uri"`
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

func summarizeSLSAv1(raw []byte, out *AttestationSummary) {
	var p struct {
		BuildDefinition struct {
			BuildType            string               `json:"buildType"`
			ExternalParameters   json.RawMessage      `json:"externalParameters"`
			ResolvedDependencies []resourceDescriptor `json:"resolvedDependencies"`
		} `json:"buildDefinition"`
		RunDetails struct {
			Builder struct {
				ID string `json:"id"`
			} `json:"builder"`
		} `json:"runDetails"`
	}
	if json.Unmarshal(raw, &p) != nil {
		return
	}
	out.BuilderID, out.BuildType = p.RunDetails.Builder.ID, p.BuildDefinition.BuildType
	if dep, ok := gitDependency(p.BuildDefinition.ResolvedDependencies); ok {
		out.SourceRepository, out.SourceCommit = dep.URI, gitCommitOf(dep.Digest)
		return
	}
	out.SourceRepository, out.SourceCommit = externalSource(p.BuildDefinition.ExternalParameters)
}

// externalSource reads the source from SLSA v1 externalParameters, whose shape each build type defines: GitHub
// Actions' workflow.repository, or a "source" given as a URI string or a resource descriptor.
func externalSource(raw json.RawMessage) (repo, commit string) {
	var ep struct {
		Workflow struct {
			Repository string `json:"repository"`
		} `json:"workflow"`
		Source json.RawMessage `json:"source"`
	}
	if json.Unmarshal(raw, &ep) != nil {
		return "", ""
	}
	if ep.Workflow.Repository != "" {
		return ep.Workflow.Repository, ""
	}
	var uri string
	if json.Unmarshal(ep.Source, &uri) == nil {
		return uri, ""
	}
	var rd resourceDescriptor
	if json.Unmarshal(ep.Source, &rd) == nil {
		return rd.URI, gitCommitOf(rd.Digest)
	}
	return "", ""
}

func summarizeSLSAv02(raw []byte, out *AttestationSummary) {
	var p struct {
		Builder struct {
			ID string `json:"id"`
		} `json:"builder"`
		BuildType  string `json:"buildType"`
		Invocation struct {
			ConfigSource resourceDescriptor `json:"configSource"`
		} `json:"invocation"`
		Materials []resourceDescriptor `json:"materials"`
	}
	if json.Unmarshal(raw, &p) != nil {
		return
	}
	out.BuilderID, out.BuildType = p.Builder.ID, p.BuildType
	if cs := p.Invocation.ConfigSource; cs.URI != "" {
		out.SourceRepository, out.SourceCommit = cs.URI, gitCommitOf(cs.Digest)
		return
	}
	if m, ok := gitDependency(p.Materials); ok {
		out.SourceRepository, out.SourceCommit = m.URI, gitCommitOf(m.Digest)
	}
}

// gitDependency picks the first dependency that is a git source: a "git+" URI, or one with a git commit digest.
func gitDependency(deps []resourceDescriptor) (resourceDescriptor, bool) {
	for _, d := range deps {
		if strings.HasPrefix(d.URI, "git+") || d.Digest["gitCommit"] != "" {
			return d, true
		}
	}
	return resourceDescriptor{}, false
}

// gitCommitOf reads a commit from a digest set: "gitCommit" (SLSA v1), else "sha1" (v0.2 and older v1 builders).
func gitCommitOf(digest map[string]string) string {
	if c := digest["gitCommit"]; c != "" {
		return c
	}
	return digest["sha1"]
}

// summarizeSPDX reads an SPDX JSON document, or the tag-value text cosign's "spdx" type puts in a JSON string.
func summarizeSPDX(raw []byte, out *AttestationSummary) {
	var text string
	if json.Unmarshal(raw, &text) == nil {
		out.SBOMFormat, out.Packages = "SPDX (tag-value)", countTagValuePackages(text)
		if v := tagValue(text, "SPDXVersion"); v != "" {
			out.SBOMFormat = v + " (tag-value)"
		}
		return
	}
	var doc struct {
		SPDXVersion string     `json:"spdxVersion"`
		Packages    []struct{} `json:"packages"`
	}
	if json.Unmarshal(raw, &doc) != nil {
		return
	}
	out.SBOMFormat = orDefault(doc.SPDXVersion, "SPDX")
	out.Packages = len(doc.Packages)
}

func countTagValuePackages(text string) int {
	n := 0
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "PackageName:") {
			n++
		}
	}
	return n
}

func tagValue(text, tag string) string {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, tag+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// cdxComponent is a CycloneDX component, read only for its nested components.
type cdxComponent struct {
	Components []cdxComponent `json:"components"`
}

func summarizeCycloneDX(raw []byte, out *AttestationSummary) {
	var bom struct {
		BOMFormat   string         `json:"bomFormat"`
		SpecVersion string         `json:"specVersion"`
		Components  []cdxComponent `json:"components"`
	}
	if json.Unmarshal(raw, &bom) != nil || bom.BOMFormat != "" && !strings.EqualFold(bom.BOMFormat, "CycloneDX") {
		return
	}
	out.SBOMFormat = strings.TrimSpace(orDefault(bom.BOMFormat, "CycloneDX") + " " + bom.SpecVersion)
	out.Packages = countComponents(bom.Components, 0)
}

func countComponents(cs []cdxComponent, depth int) int {
	n := len(cs)
	if depth >= maxComponentDepth {
		return n
	}
	for _, c := range cs {
		n += countComponents(c.Components, depth+1)
	}
	return n
}

// clip cuts s to maxSummaryString bytes on a rune boundary and replaces invalid UTF-8 and control characters, so
// that what a signer wrote cannot break the status or a rendered table.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
	if len(s) <= maxSummaryString {
		return s
	}
	cut := maxSummaryString
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
