package signature

import (
	"strings"
	"testing"
	"unicode/utf8"

	st "github.com/ferrycd/ferry/internal/signature/signaturetest"
)

// Predicates as builders and SBOM tools write them, attested with the real cosign CLI below.
const (
	slsaV1Predicate = `{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1",
		"externalParameters":{"workflow":{"ref":"refs/tags/v1.4.2","repository":"https://github.com/acme/shop","path":".github/workflows/release.yml"}},
		"resolvedDependencies":[{"uri":"git+https://github.com/acme/shop@refs/tags/v1.4.2","digest":{"gitCommit":"0123456789abcdef0123456789abcdef01234567"}}]},
		"runDetails":{"builder":{"id":"https://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v1.4.2"},"metadata":{"invocationID":"run-7"}}}`
	slsaV02Predicate = `{"builder":{"id":"https://cloudbuild.example.test/builder@v2"},"buildType":"https://cloudbuild.example.test/build@v1",
		"invocation":{"configSource":{"uri":"git+https://git.example.test/acme/shop.git","digest":{"sha1":"89abcdef0123456789abcdef0123456789abcdef"},"entryPoint":"build.yaml"}},
		"materials":[{"uri":"pkg:docker/golang@1.26","digest":{"sha256":"aa"}}]}`
	spdxPredicate = `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"shop",
		"documentNamespace":"https://example.test/spdx/shop","creationInfo":{"created":"2026-01-01T00:00:00Z","creators":["Tool: test"]},
		"packages":[{"SPDXID":"SPDXRef-a","name":"a","downloadLocation":"NOASSERTION"},{"SPDXID":"SPDXRef-b","name":"b","downloadLocation":"NOASSERTION"},
		{"SPDXID":"SPDXRef-c","name":"c","downloadLocation":"NOASSERTION"}]}`
	cycloneDXPredicate = `{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,
		"components":[{"type":"library","name":"a"},{"type":"library","name":"b","components":[{"type":"library","name":"b1"}]}]}`
	spdxTagValuePredicate = "SPDXVersion: SPDX-2.2\nDataLicense: CC0-1.0\nDocumentName: shop\n\nPackageName: a\nSPDXID: SPDXRef-a\n\nPackageName: b\nSPDXID: SPDXRef-b\n"
)

// TestSummariesOfCosignAttestations: what the real cosign attests, Ferry summarises after verifying it: the
// builder, source repository and commit of SLSA provenance (v1 and v0.2), and the format and package count of
// SPDX and CycloneDX SBOMs, in both of cosign's layouts.
func TestSummariesOfCosignAttestations(t *testing.T) {
	c := newCosign(t)
	cases := []struct {
		cosignType, predicateType, predicate string
		want                                 AttestationSummary
	}{
		{"slsaprovenance1", PredicateSLSAProvenanceV1, slsaV1Predicate, AttestationSummary{
			BuilderID:        "https://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v1.4.2",
			BuildType:        "https://actions.github.io/buildtypes/workflow/v1",
			SourceRepository: "git+https://github.com/acme/shop@refs/tags/v1.4.2",
			SourceCommit:     "0123456789abcdef0123456789abcdef01234567", Packages: -1}},
		{"slsaprovenance02", PredicateSLSAProvenanceV02, slsaV02Predicate, AttestationSummary{
			BuilderID: "https://cloudbuild.example.test/builder@v2", BuildType: "https://cloudbuild.example.test/build@v1",
			SourceRepository: "git+https://git.example.test/acme/shop.git",
			SourceCommit:     "89abcdef0123456789abcdef0123456789abcdef", Packages: -1}},
		{"spdxjson", PredicateSPDX, spdxPredicate, AttestationSummary{SBOMFormat: "SPDX-2.3", Packages: 3}},
		{"cyclonedx", PredicateCycloneDX, cycloneDXPredicate, AttestationSummary{SBOMFormat: "CycloneDX 1.5", Packages: 3}},
	}
	for _, layout := range []string{"--new-bundle-format=false", "--new-bundle-format=true"} {
		t.Run(layout, func(t *testing.T) {
			reg := st.NewRegistry(t, true)
			for _, tc := range cases {
				t.Run(tc.cosignType, func(t *testing.T) {
					d := reg.PushImage(t, "app-"+tc.cosignType)
					c.Run(t, append(append([]string{"sign"}, cosignSignFlags...), layout, d.String())...)
					pred := c.writePredicate(t, tc.cosignType+".predicate", tc.predicate)
					c.Run(t, append(append([]string{"attest", "--type", tc.cosignType, "--predicate", pred}, cosignSignFlags...), layout, d.String())...)
					res := verifyOK(t, d, Policy{Keys: [][]byte{c.PublicKey(t)}, RequiredAttestations: []string{tc.predicateType}})
					var got []AttestationSummary
					for _, a := range res.Attestations {
						if a.PredicateType == tc.predicateType {
							got = append(got, a.Summary)
						}
					}
					if len(got) != 1 || got[0] != tc.want {
						t.Fatalf("summaries of %s = %+v, want [%+v]", tc.predicateType, got, tc.want)
					}
				})
			}
		})
	}
}

// TestSummaryOfUnreadablePredicates: what the summary cannot read it leaves out; it never fails, and what it
// keeps is bounded.
func TestSummaryOfUnreadablePredicates(t *testing.T) {
	long := strings.Repeat("é", 400)
	cases := []struct {
		name, predicateType, predicate string
		want                           AttestationSummary
	}{
		{"not JSON", PredicateSLSAProvenanceV1, `{"runDetails":`, AttestationSummary{Packages: -1}},
		{"wrong shapes", PredicateSLSAProvenanceV1, `{"runDetails":{"builder":{"id":7}}}`, AttestationSummary{Packages: -1}},
		{"unknown type", "https://example.test/custom", `{"builder":{"id":"x"}}`, AttestationSummary{Packages: -1}},
		{"empty", PredicateSPDX, ``, AttestationSummary{Packages: -1}},
		{"SPDX tag-value", PredicateSPDX, `"` + strings.ReplaceAll(spdxTagValuePredicate, "\n", `\n`) + `"`,
			AttestationSummary{SBOMFormat: "SPDX-2.2 (tag-value)", Packages: 2}},
		{"another BOM format", PredicateCycloneDX, `{"bomFormat":"Other","components":[{}]}`, AttestationSummary{Packages: -1}},
		{"external source as URI", PredicateSLSAProvenanceV1, `{"buildDefinition":{"externalParameters":{"source":"git+https://x.test/r"}}}`,
			AttestationSummary{SourceRepository: "git+https://x.test/r", Packages: -1}},
		{"external source as descriptor", PredicateSLSAProvenanceV1, `{"buildDefinition":{"externalParameters":{"source":{"uri":"git+https://x.test/r","digest":{"sha1":"ab"}}}}}`,
			AttestationSummary{SourceRepository: "git+https://x.test/r", SourceCommit: "ab", Packages: -1}},
		{"v0.2 git material", PredicateSLSAProvenanceV02, `{"materials":[{"uri":"pkg:x"},{"uri":"git+https://x.test/r","digest":{"sha1":"cd"}}]}`,
			AttestationSummary{SourceRepository: "git+https://x.test/r", SourceCommit: "cd", Packages: -1}},
		{"control characters", PredicateSLSAProvenanceV1, `{"runDetails":{"builder":{"id":"a\nb|\u0007"}}}`,
			AttestationSummary{BuilderID: "a b| ", Packages: -1}},
		{"long strings are cut", PredicateSLSAProvenanceV1, `{"runDetails":{"builder":{"id":"` + long + `"}}}`,
			AttestationSummary{BuilderID: strings.Repeat("é", maxSummaryString/2), Packages: -1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Summarize(tc.predicateType, []byte(tc.predicate)); got != tc.want {
				t.Fatalf("Summarize = %+v, want %+v", got, tc.want)
			}
		})
	}
	huge := `{"packages":[` + strings.Repeat(`{},`, maxPayloadBytes/3) + `{}]}`
	if got := Summarize(PredicateSPDX, []byte(huge)); got.Packages != -1 {
		t.Fatalf("a predicate over %d bytes was read: %+v", maxPayloadBytes, got)
	}
}

func FuzzSummarize(f *testing.F) {
	types := []string{PredicateSLSAProvenanceV1, PredicateSLSAProvenanceV02, PredicateSPDX, PredicateCycloneDX, "https://example.test/x"}
	for i, p := range []string{slsaV1Predicate, slsaV02Predicate, spdxPredicate, cycloneDXPredicate, `{}`} {
		f.Add(uint8(i), []byte(p))
	}
	f.Add(uint8(2), []byte(`"`+strings.ReplaceAll(spdxTagValuePredicate, "\n", `\n`)+`"`))
	f.Add(uint8(3), []byte(`{"components":[{"components":[{"components":[]}]}]}`))
	f.Fuzz(func(t *testing.T, which uint8, predicate []byte) {
		s := Summarize(types[int(which)%len(types)], predicate)
		for _, v := range []string{s.BuilderID, s.BuildType, s.SourceRepository, s.SourceCommit, s.SBOMFormat} {
			if len(v) > maxSummaryString || !utf8.ValidString(v) || strings.ContainsAny(v, "\n\r\x00") {
				t.Fatalf("summary field %q is unbounded or unsafe", v)
			}
		}
		if s.Packages < -1 || s.Packages > len(predicate) {
			t.Fatalf("package count %d from %d bytes", s.Packages, len(predicate))
		}
	})
}
