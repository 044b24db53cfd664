package main

import (
	"encoding/json"
	"strings"
	"testing"

	apiequality "k8s.io/apimachinery/pkg/api/equality"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
	"github.com/ferrycd/ferry/internal/testenv"
)

// section returns the lines of out after the line title up to the next empty line.
func section(out, title string) []string {
	_, rest, ok := strings.Cut(out, "\n"+title+"\n")
	if !ok {
		return nil
	}
	block, _, _ := strings.Cut(rest, "\n\n")
	return strings.Split(strings.TrimRight(block, "\n"), "\n")
}

func TestAnalysisPrintsTheStatus(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createCanaryShop(t, e, ns)

	out, err := runFerry(t, "analysis", "shop", "--stage", "prod", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry analysis: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Analysis of stage prod of promotion shop\n",
		"Digest: " + digestC + "\n",
		"Phase: Held\n",
		"Message: 4 of 12 measurements found no data, over the budget of 5 per step: waiting for ferry approve or ferry abort\n",
		"Run: Canary\n",
		"Step: 2/3, weight 50%\n",
		"Step started: 2026-03-01T20:00:00Z (",
		"Last measured: 2026-03-01T20:12:00Z (",
		"Missing: 4 of 12 measurements (budget 5)\n",
		"Outage since: 2026-03-01T20:09:00Z (",
		"Approvals: 1, last by ferry-approve:alice at 2026-03-01T19:30:00Z\n",
		"Tallies: error-rate 7 passed, 0 failed, 4 inconclusive\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The query is on one line, whatever its layout in the spec.
	queries := section(out, "Queries:")
	if len(queries) != 2 || !strings.HasSuffix(queries[1], `"canary"}[1m])) / sum(rate(http_requests_total{namespace="shop-prod",track="canary"}[1m]))`) ||
		strings.Join(strings.Fields(queries[1])[:2], " ") != "error-rate canary" {
		t.Errorf("queries:\n%s", strings.Join(queries, "\n"))
	}
	// Measurements, newest last.
	measurements := section(out, "Measurements (newest last):")
	wantRows := [][]string{
		{"TIME", "STEP", "METRIC", "TRACK", "VALUE", "VERDICT", "REASON", "MESSAGE"},
		{"2026-03-01T19:40:00Z", "1", "error-rate", "canary", "0.002", "Pass", "-", "-"},
		{"2026-03-01T20:05:00Z", "2", "error-rate", "baseline", "0.003", "Pass", "-", "-"},
		{"2026-03-01T20:12:00Z", "2", "error-rate", "canary", "-", "Inconclusive", "PrometheusUnavailable", "dial", "tcp",
			"10.0.0.9:9090:", "connection", "refused"},
	}
	checkTable(t, "measurements", measurements, wantRows)
	comparisons := section(out, "Baseline comparisons:")
	checkTable(t, "comparisons", comparisons, [][]string{
		{"METRIC", "VERDICT", "P-VALUE", "CANARY", "MEDIAN", "BASELINE", "MEDIAN", "SAMPLES", "REASON"},
		append([]string{"error-rate", "Marginal", "0.07", "0.004", "0.003", "8/8"},
			strings.Fields("the canary errs more than the baseline, but not significantly at 95%")...),
	})

	// -o json prints the status as the controller wrote it.
	out, err = runFerry(t, "analysis", "shop", "--stage", "prod", "-o", "json", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry analysis -o json: %v\n%s", err, out)
	}
	var got ferryv1.AnalysisStatus
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("-o json is not an AnalysisStatus: %v\n%s", err, out)
	}
	stored := prodStage(getShop(t, e, ns, "shop")).Analysis
	if !apiequality.Semantic.DeepEqual(&got, stored) || !apiequality.Semantic.DeepEqual(&got, heldAnalysis()) {
		t.Errorf("-o json does not round-trip:\n got %+v\nwant %+v", got, heldAnalysis())
	}
}

func checkTable(t *testing.T, what string, lines []string, want [][]string) {
	t.Helper()
	if len(lines) != len(want) {
		t.Errorf("%s: %d lines, want %d:\n%s", what, len(lines), len(want), strings.Join(lines, "\n"))
		return
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("%s line %d:\n got %q\nwant %q", what, i, got, w)
		}
	}
}

func TestAnalysisOfAStageWithoutOne(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createCanaryShop(t, e, ns)
	createPromotion(t, e, ns, "plain", fixtureStages())
	createPromotion(t, e, ns, "fresh", nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plain", "--stage", "prod"}, "Stage prod of promotion plain has no analysis: none is under way or recorded (phase Promoted).\n"},
		{[]string{"shop", "--stage", "staging"}, "Stage staging of promotion shop has no analysis: its spec declares no canary or analysis.\n"},
		{[]string{"fresh", "--stage", "prod"}, "Stage prod of promotion fresh has no analysis: the controller has recorded nothing for it yet.\n"},
		{[]string{"shop", "--stage", "staging", "-o", "json"}, "null\n"},
	} {
		out, err := runFerry(t, append(append([]string{"analysis"}, tc.args...), "--kubeconfig", kubeconfig)...)
		if err != nil || out != tc.want {
			t.Errorf("%v: %v\n got %q\nwant %q", tc.args, err, out, tc.want)
		}
	}
}

func TestAnalysisNamesWhatIsWrong(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createCanaryShop(t, e, ns)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"shop"}, `required flag(s) "stage" not set`},
		{[]string{"shop", "--stage", "qa"}, `--stage "qa": promotion "shop" has no such stage (stages: dev, staging, prod)`},
		{[]string{"nope", "--stage", "prod"}, `promotion "nope" not found in namespace "` + ns + `"`},
		{[]string{"shop", "--stage", "prod", "-o", "yaml"}, `--output "yaml": want one of table, json`},
	} {
		out, err := runFerry(t, append(append([]string{"analysis"}, tc.args...), "--kubeconfig", kubeconfig)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q\n%s", tc.args, err, tc.want, out)
		}
	}
}

func TestGetShowsTheCanaryStep(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createCanaryShop(t, e, ns)
	out, err := runFerry(t, "get", "--kubeconfig", e.Kubeconfig(t, ns))
	if err != nil {
		t.Fatalf("ferry get: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and one line per stage, got:\n%s", out)
	}
	for i, want := range []string{
		"dev  Promoted, analysis Passed  sha256:cccccccccccc",
		"staging  Soaking  sha256:bbbbbbbbbbbb",
		"prod  Canary 2/3 (50%), analysis Held: 4 of 12 missing  sha256:bbbbbbbbbbbb",
	} {
		if !strings.Contains(collapse(lines[i+1]), collapse(want)) {
			t.Errorf("line %d = %q, want cells %q", i+1, lines[i+1], want)
		}
	}
}

// collapse turns table padding (two spaces or more) into a tab, keeping single spaces inside cells.
func collapse(s string) string {
	var b strings.Builder
	for i, part := range strings.Split(strings.TrimSpace(s), "  ") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		if i > 0 && b.Len() > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(part)
	}
	return b.String()
}

// The PHASE column of a stage without an analysis is its phase alone, as before analyses existed.
func TestPhaseCell(t *testing.T) {
	p := &ferryv1.Promotion{Spec: ferryv1.PromotionSpec{Stages: []ferryv1.StageSpec{{Name: "prod",
		Canary: &ferryv1.CanarySpec{Steps: []ferryv1.CanaryStep{{Weight: 10}, {Weight: 50}, {Weight: 100}}}}}}}
	first := int32(0)
	for _, tc := range []struct {
		s    ferryv1.StageStatus
		want string
	}{
		{ferryv1.StageStatus{Name: "prod", Phase: ferryv1.PhaseSoaking}, "Soaking"},
		{ferryv1.StageStatus{Name: "prod", Phase: "-"}, "-"},
		{ferryv1.StageStatus{Name: "prod", Phase: ferryv1.PhaseCanary,
			Analysis: &ferryv1.AnalysisStatus{Phase: ferryv1.AnalysisRunning, Step: &first, Weight: 10}}, "Canary 1/3 (10%), analysis Running"},
		{ferryv1.StageStatus{Name: "other", Phase: ferryv1.PhaseCanary,
			Analysis: &ferryv1.AnalysisStatus{Phase: ferryv1.AnalysisRunning, Step: &first, Weight: 10}}, "Canary 1 (10%), analysis Running"},
		{ferryv1.StageStatus{Name: "prod", Phase: ferryv1.PhaseSoaking,
			Analysis: &ferryv1.AnalysisStatus{Phase: ferryv1.AnalysisHeld, Missing: 6, Taken: 9}}, "Soaking, analysis Held: 6 of 9 missing"},
		// Rolled back from a digest whose analysis passed: the verdict is not the running digest's.
		{ferryv1.StageStatus{Name: "prod", Phase: ferryv1.PhaseRolledBack, Digest: "sha256:" + strings.Repeat("a", 64),
			Analysis: &ferryv1.AnalysisStatus{Phase: ferryv1.AnalysisPassed, Digest: "sha256:" + strings.Repeat("b", 64)}},
			"RolledBack, analysis of " + promotionctl.ShortDigest("sha256:"+strings.Repeat("b", 64)) + " Passed"},
	} {
		if got := promotionctl.PhaseSummary(p, tc.s); got != tc.want {
			t.Errorf("promotionctl.PhaseSummary(%+v) = %q, want %q", tc.s, got, tc.want)
		}
	}
}
