package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/yaml"

	"github.com/ferrycd/ferry/internal/testenv"
)

// The on-call dashboard and alert rules query these metrics by name; these tests keep them from drifting apart
// from what the Recorder registers, and (with promtool) check that the PromQL parses and the alerts fire.

const configDir = "../../config/prometheus"

type dashboard struct {
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type ruleGroups struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert string `json:"alert"`
			Expr  string `json:"expr"`
		} `json:"rules"`
	} `json:"groups"`
}

type prometheusRule struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Spec       ruleGroups `json:"spec"`
}

func readDashboard(t *testing.T) (exprs, templateQueries []string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(configDir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("dashboard.json: panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("dashboard.json: panel %q queries nothing", p.Title)
		}
		for _, target := range p.Targets {
			if strings.TrimSpace(target.Expr) == "" {
				t.Errorf("dashboard.json: panel %q has an empty query", p.Title)
			}
			exprs = append(exprs, target.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("dashboard.json: variable %s: %v", v.Name, err)
		}
		templateQueries = append(templateQueries, q.Query)
	}
	return exprs, templateQueries
}

func readRules(t *testing.T) prometheusRule {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(configDir, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var r prometheusRule
	if err := yaml.Unmarshal(raw, &r); err != nil {
		t.Fatalf("rules.yaml: %v", err)
	}
	if r.APIVersion != "monitoring.coreos.com/v1" || r.Kind != "PrometheusRule" || len(r.Spec.Groups) == 0 {
		t.Fatalf("rules.yaml is not a PrometheusRule with groups: %s %s", r.APIVersion, r.Kind)
	}
	return r
}

func ruleExprs(r prometheusRule) map[string]string {
	out := map[string]string{}
	for _, g := range r.Spec.Groups {
		for _, rule := range g.Rules {
			out[rule.Alert] = rule.Expr
		}
	}
	return out
}

var (
	stringLiteral = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	matchers      = regexp.MustCompile(`\{[^}]*\}`)
	labelLists    = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	ranges        = regexp.MustCompile(`\[[^\]]*\]`)
	identifier    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	labelValues   = regexp.MustCompile(`^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	promqlWords   = []string{"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2", "by", "without", "on",
		"ignoring", "group_left", "group_right"}
)

// metricNames returns the metric names a PromQL expression selects: identifiers that are neither functions,
// keywords, label names in matchers or grouping clauses, nor durations.
func metricNames(expr string) []string {
	expr = stringLiteral.ReplaceAllString(expr, `""`)
	expr = matchers.ReplaceAllString(expr, "")
	expr = labelLists.ReplaceAllString(expr, "")
	expr = ranges.ReplaceAllString(expr, "")
	var names []string
	for _, loc := range identifier.FindAllStringIndex(expr, -1) {
		word := expr[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsAny(expr[loc[0]-1:loc[0]], "0123456789.$") {
			continue // the unit of a number or duration (1e3, 15m), or a Grafana variable
		}
		if strings.HasPrefix(strings.TrimSpace(expr[loc[1]:]), "(") || slices.Contains(promqlWords, strings.ToLower(word)) {
			continue // a function or aggregation call, or a keyword
		}
		names = append(names, word)
	}
	return names
}

func TestMetricNamesOfPromQL(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (stage, le) (rate(ferry_promotion_duration_seconds_bucket{namespace=~"$namespace"}[$window]))`: {"ferry_promotion_duration_seconds_bucket"},
		`max by (namespace) (ferry_stage_drift) == 1`:                                                          {"ferry_stage_drift"},
		`x_total unless x_total offset 15m or on(job) up{job="ferry_x"} > 1e3`:                                 {"x_total", "x_total", "up"},
		"histogram_quantile(0.95, sum without (pod) (rate(a_bucket[5m:1m])))":                                  {"a_bucket"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// seriesNames lists every series name the Recorder exposes once each metric has a value: counter and gauge
// names, and each histogram's _bucket, _sum and _count, taken from what a scrape returns.
func seriesNames(t *testing.T) map[string]bool {
	t.Helper()
	r, reg := newRecorder(t)
	recordOneOfEach(r)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range families {
		names[mf.GetName()] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+suffix] = true
			}
		}
	}
	if len(families) != len(Names()) {
		t.Fatalf("gathered %d families, Names lists %d", len(families), len(Names()))
	}
	return names
}

func TestDashboardAndAlertsUseRegisteredMetrics(t *testing.T) {
	known := seriesNames(t)
	exprs, queries := readDashboard(t)
	used := map[string]bool{}
	check := func(where, expr string, names []string) {
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric", where, expr)
		}
		for _, n := range names {
			if !known[n] {
				t.Errorf("%s: %q uses %s, which internal/metrics does not register", where, expr, n)
			}
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")] = true
		}
	}
	for _, e := range exprs {
		check("dashboard.json", e, metricNames(e))
	}
	for _, q := range queries {
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("dashboard.json: variable query %q is not label_values(metric, label)", q)
			continue
		}
		check("dashboard.json variable", q, []string{m[1]})
	}
	for _, n := range Names() {
		if !used[n] {
			t.Errorf("dashboard.json has no panel for %s", n)
		}
	}

	alerts := ruleExprs(readRules(t))
	for _, name := range []string{"FerryStageDrift", "FerryRollback", "FerryVerificationTampering",
		"FerryVerificationFailing", "FerryPromotionsFailing"} {
		if alerts[name] == "" {
			t.Errorf("rules.yaml: no alert %s", name)
		}
	}
	for name, expr := range alerts {
		check("rules.yaml "+name, expr, metricNames(expr))
	}
}

func TestKustomizationShipsDashboardAndRules(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(configDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources          []string `json:"resources"`
		ConfigMapGenerator []struct {
			Name  string   `json:"name"`
			Files []string `json:"files"`
		} `json:"configMapGenerator"`
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(k.Resources, "rules.yaml") {
		t.Errorf("kustomization.yaml does not apply rules.yaml: %v", k.Resources)
	}
	var files []string
	for _, g := range k.ConfigMapGenerator {
		files = append(files, g.Files...)
	}
	if !slices.ContainsFunc(files, func(f string) bool { return strings.HasSuffix(f, "=dashboard.json") || f == "dashboard.json" }) {
		t.Errorf("kustomization.yaml ships no ConfigMap of dashboard.json: %v", files)
	}
}

// promtool returns the real promtool built by hack/promtool.sh, skipping (or failing under make test) without it.
func promtool(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("FERRY_PROMTOOL")
	if bin == "" {
		msg := "FERRY_PROMTOOL is not set: run `make test`, or export FERRY_PROMTOOL=$(hack/promtool.sh)"
		if testenv.RequireTools() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

func runPromtool(t *testing.T, bin, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAlertsFireWithPromtool checks the rules with promtool and runs the unit tests of every alert in
// testdata/alerts_test.yaml on synthetic series.
func TestAlertsFireWithPromtool(t *testing.T) {
	bin := promtool(t)
	dir := t.TempDir()
	readRules(t) // the shape checks
	raw, err := os.ReadFile(filepath.Join(configDir, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Spec map[string]any `json:"spec"` // everything promtool needs: for, labels, annotations
	}
	if err := yaml.Unmarshal(raw, &rule); err != nil {
		t.Fatal(err)
	}
	groups, err := yaml.Marshal(rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "rules.yaml"), groups)
	tests, err := os.ReadFile(filepath.Join("testdata", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "alerts_test.yaml"), tests)
	runPromtool(t, bin, dir, "check", "rules", "rules.yaml")
	runPromtool(t, bin, dir, "test", "rules", "alerts_test.yaml")
}

var (
	rangeVariable = regexp.MustCompile(`\[\$\{?\w+\}?\]`)
	variable      = regexp.MustCompile(`\$\{?\w+\}?`)
)

// TestDashboardQueriesParseWithPromtool has promtool parse each dashboard query, as a recording rule, with
// Grafana's variables replaced by values they can take.
func TestDashboardQueriesParseWithPromtool(t *testing.T) {
	bin := promtool(t)
	exprs, _ := readDashboard(t)
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		e = rangeVariable.ReplaceAllString(e, "[1d]")
		e = variable.ReplaceAllString(e, ".*")
		rules = append(rules, rule{Record: fmt.Sprintf("ferry_dashboard_query_%d", i), Expr: e})
	}
	raw, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "dashboard.rules.yaml"), raw)
	runPromtool(t, bin, dir, "check", "rules", "dashboard.rules.yaml")
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
