package image

import (
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// Module is one Go module linked into a binary, as its build info says; a replaced module is listed as what
// replaced it, since that is the code that runs.
type Module struct {
	Path, Version string
	Replaces      string // "path version" this module replaced, if any
	Main          bool
}

// Modules lists the main module and every dependency in a binary's build info, sorted by path.
func Modules(bi *debug.BuildInfo) []Module {
	mods := []Module{{Path: bi.Main.Path, Version: bi.Main.Version, Main: true}}
	for _, d := range bi.Deps {
		m := Module{Path: d.Path, Version: d.Version}
		if d.Replace != nil {
			m = Module{Path: d.Replace.Path, Version: d.Replace.Version, Replaces: d.Path + " " + d.Version}
		}
		mods = append(mods, m)
	}
	sort.Slice(mods[1:], func(i, j int) bool { return mods[1+i].Path < mods[1+j].Path })
	return mods
}

// SBOMInput is what the SBOM describes.
type SBOMInput struct {
	Metadata
	// Repository is where the image is published (host/path), for the image's package URL; may be empty.
	Repository string
	// IndexDigest is the image index's digest ("sha256:…").
	IndexDigest string
	// Binaries are the compiled binaries per platform; their build info is read from the files.
	Binaries map[Platform]string
	// CAPackageVersion is the version of Debian's ca-certificates package the CA bundle came from.
	CAPackageVersion string
}

// SPDX 2.3 JSON, only the fields Ferry fills.
type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID                string            `json:"SPDXID"`
	Name                  string            `json:"name"`
	VersionInfo           string            `json:"versionInfo,omitempty"`
	DownloadLocation      string            `json:"downloadLocation"`
	FilesAnalyzed         bool              `json:"filesAnalyzed"`
	PrimaryPackagePurpose string            `json:"primaryPackagePurpose,omitempty"`
	Supplier              string            `json:"supplier,omitempty"`
	Comment               string            `json:"comment,omitempty"`
	ExternalRefs          []spdxExternalRef `json:"externalRefs,omitempty"`
}

type spdxExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// SBOM writes an SPDX 2.3 JSON document: the image, each platform's binary, the Go modules and standard library
// linked into the binaries (from their build info, so exactly what was compiled in), and the CA certificates.
func SBOM(in SBOMInput) ([]byte, error) {
	doc := spdxDocument{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:              "ferry-controller-" + in.Version,
		DocumentNamespace: fmt.Sprintf("%s/spdx/ferry-controller/%s", strings.TrimSuffix(in.Source, "/"), strings.TrimPrefix(in.IndexDigest, "sha256:")),
		CreationInfo:      spdxCreationInfo{Created: in.Created.UTC().Format(time.RFC3339), Creators: []string{"Tool: ferry-hack-release", "Organization: Ferry"}},
	}
	image := spdxPackage{SPDXID: "SPDXRef-Image", Name: "ferry-controller", VersionInfo: in.Version,
		DownloadLocation: "NOASSERTION", PrimaryPackagePurpose: "CONTAINER", Comment: "image index " + in.IndexDigest}
	if in.Repository != "" && in.IndexDigest != "" {
		image.ExternalRefs = []spdxExternalRef{purl(ociPURL(in.Repository, in.IndexDigest))}
	}
	doc.Packages = append(doc.Packages, image)
	doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image"})

	ca := spdxPackage{SPDXID: "SPDXRef-Deb-ca-certificates", Name: "ca-certificates", VersionInfo: in.CAPackageVersion,
		DownloadLocation: "NOASSERTION", PrimaryPackagePurpose: "OPERATING-SYSTEM", Supplier: "Organization: Debian",
		Comment:      "the certificates of Debian's package, concatenated into " + CABundlePath,
		ExternalRefs: []spdxExternalRef{purl("pkg:deb/debian/ca-certificates@" + in.CAPackageVersion + "?arch=all")}}
	doc.Packages = append(doc.Packages, ca)
	doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-Image", "CONTAINS", ca.SPDXID})

	ids := moduleIDs{}
	for _, p := range sortedPlatforms(in.Binaries) {
		bi, err := buildinfo.ReadFile(in.Binaries[p])
		if err != nil {
			return nil, fmt.Errorf("reading the build info of the %s binary: %w", p, err)
		}
		binID := spdxID("Binary-" + p.OS + "-" + p.Architecture)
		doc.Packages = append(doc.Packages, spdxPackage{SPDXID: binID, Name: "ferry-controller " + p.String(),
			VersionInfo: in.Version, DownloadLocation: "NOASSERTION", PrimaryPackagePurpose: "APPLICATION",
			Comment: "built with " + bi.GoVersion})
		doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-Image", "CONTAINS", binID})
		std := Module{Path: "stdlib", Version: bi.GoVersion}
		for _, m := range append(Modules(bi), std) {
			id, isNew := ids.id(m)
			doc.Relationships = append(doc.Relationships, spdxRelationship{binID, "CONTAINS", id})
			if isNew {
				doc.Packages = append(doc.Packages, goPackage(id, m, in.Source, in.Commit))
			}
		}
	}
	return json.MarshalIndent(doc, "", "  ")
}

// moduleIDs gives each module (path and version) one SPDX identifier, distinct even where two paths differ only
// in characters an identifier cannot hold.
type moduleIDs map[string]string // path@version -> id

func (ids moduleIDs) id(m Module) (id string, isNew bool) {
	key := m.Path + "@" + m.Version
	if id, ok := ids[key]; ok {
		return id, false
	}
	id = spdxID("Go-" + m.Path + "-" + m.Version)
	for n := 2; ids.taken(id); n++ {
		id = spdxID(fmt.Sprintf("Go-%s-%s-%d", m.Path, m.Version, n))
	}
	ids[key] = id
	return id, true
}

func (ids moduleIDs) taken(id string) bool {
	for _, v := range ids {
		if v == id {
			return true
		}
	}
	return false
}

func goPackage(id string, m Module, source, commit string) spdxPackage {
	p := spdxPackage{SPDXID: id, Name: m.Path, VersionInfo: m.Version, DownloadLocation: "NOASSERTION",
		PrimaryPackagePurpose: "LIBRARY", ExternalRefs: []spdxExternalRef{purl(goPURL(m))}}
	switch {
	case m.Main:
		p.DownloadLocation, p.PrimaryPackagePurpose = "git+"+source+"@"+commit, "APPLICATION"
	case m.Path == "stdlib":
		p.Comment = "the Go standard library"
	case m.Replaces != "":
		p.Comment = "replaces " + m.Replaces
	}
	return p
}

func purl(locator string) spdxExternalRef {
	return spdxExternalRef{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: locator}
}

// goPURL is a module's package URL: pkg:golang/<path>@<version>, the standard library as pkg:golang/stdlib.
func goPURL(m Module) string {
	v := m.Version
	if m.Path == "stdlib" {
		v = strings.TrimPrefix(v, "go")
	}
	return "pkg:golang/" + m.Path + "@" + v
}

// ociPURL is the image's package URL: pkg:oci/<name>@<digest>?repository_url=<host/path>.
func ociPURL(repository, digest string) string {
	name := repository[strings.LastIndex(repository, "/")+1:]
	return "pkg:oci/" + name + "@" + strings.ReplaceAll(digest, ":", "%3A") + "?repository_url=" + repository
}

var notIDChars = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// spdxID makes an SPDX identifier (letters, digits, '.' and '-') from any text.
func spdxID(s string) string { return "SPDXRef-" + notIDChars.ReplaceAllString(s, "-") }

func sortedPlatforms(m map[Platform]string) []Platform {
	ps := make([]Platform, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].String() < ps[j].String() })
	return ps
}
