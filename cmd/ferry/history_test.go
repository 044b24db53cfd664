package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
	"github.com/ferrycd/ferry/internal/testenv"
)

// Digests of the fixture. digestA and digestA2 share their first 12 hex characters, so that a 12-character
// prefix of either is ambiguous.
var (
	digestA  = "sha256:aaaaaaaaaaaa" + strings.Repeat("1", 52)
	digestA2 = "sha256:aaaaaaaaaaaa" + strings.Repeat("2", 52)
	digestB  = "sha256:" + strings.Repeat("b", 64)
	digestC  = "sha256:" + strings.Repeat("c", 64)
	digestX  = "sha256:" + strings.Repeat("e", 64) // rejected in prod, never ran
	absent   = "sha256:" + strings.Repeat("f", 64) // in no status at all

	fixtureTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func at(hours int) metav1.Time {
	return metav1.NewTime(fixtureTime.Add(time.Duration(hours) * time.Hour))
}

func entry(d string, hours int, o ferryv1.Outcome, commit, approver string) ferryv1.StageHistoryEntry {
	return ferryv1.StageHistoryEntry{Digest: d, Time: at(hours), Outcome: o, CommitSHA: commit, Approver: approver,
		Signers: []string{"release-team"}, Source: "127.0.0.1:5001/acme/shop"}
}

// fixtureStages is the shop Promotion's status: dev runs C, staging runs B with C in flight, prod runs B after
// rejecting X; A and A2 are older digests.
func fixtureStages() []ferryv1.StageStatus {
	since, inFlight := at(7), metav1.NewTime(fixtureTime.Add(7*time.Hour+30*time.Minute))
	prodB := entry(digestB, 5, ferryv1.OutcomePromoted, strings.Repeat("3", 40), "alice")
	prodB.PullRequestURL = "http://127.0.0.1:3000/acme/shop-deploy/pulls/7"
	prodX := entry(digestX, 6, ferryv1.OutcomeRejected, "", "")
	prodX.Reason = "pull request closed without merge"
	prodX.PullRequestURL = "http://127.0.0.1:3000/acme/shop-deploy/pulls/8"
	return []ferryv1.StageStatus{
		{Name: "dev", Phase: ferryv1.PhasePromoted, Digest: digestC, Since: &since, History: []ferryv1.StageHistoryEntry{
			entry(digestC, 4, ferryv1.OutcomePromoted, strings.Repeat("c0", 20), "automatic"),
			entry(digestB, 2, ferryv1.OutcomePromoted, strings.Repeat("b0", 20), "automatic"),
			entry(digestA2, 1, ferryv1.OutcomePromoted, strings.Repeat("a2", 20), "automatic"),
			entry(digestA, 0, ferryv1.OutcomePromoted, strings.Repeat("a0", 20), "automatic"),
		}},
		{Name: "staging", Phase: ferryv1.PhaseSoaking, Digest: digestB, InFlightDigest: digestC, Since: &since, InFlightSince: &inFlight,
			History: []ferryv1.StageHistoryEntry{entry(digestB, 3, ferryv1.OutcomePromoted, strings.Repeat("5", 40), "automatic")}},
		{Name: "prod", Phase: ferryv1.PhasePromoted, Digest: digestB, Since: &since, History: []ferryv1.StageHistoryEntry{
			prodX, prodB, entry(digestA, 1, ferryv1.OutcomePromoted, strings.Repeat("1", 40), "bob"),
		}},
	}
}

// createShop creates the sample Promotion in ns with the fixture's status, as the controller would have left it.
func createShop(t *testing.T, e *testenv.Env, ns string) *ferryv1.Promotion {
	t.Helper()
	return createPromotion(t, e, ns, "shop", fixtureStages())
}

func createPromotion(t *testing.T, e *testenv.Env, ns, name string, stages []ferryv1.StageStatus) *ferryv1.Promotion {
	t.Helper()
	return e.CreateSample(t, ns, name, stages)
}

func getShop(t *testing.T, e *testenv.Env, ns, name string) *ferryv1.Promotion {
	t.Helper()
	var p ferryv1.Promotion
	if err := e.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// tableRows splits a table into rows of whitespace-separated fields, skipping the header.
func tableRows(out string) [][]string {
	var rows [][]string
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if i == 0 || strings.TrimSpace(line) == "" {
			continue
		}
		rows = append(rows, strings.Fields(line))
	}
	return rows
}

func TestHistoryListsEachStageNewestFirst(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createShop(t, e, ns)

	out, err := runFerry(t, "history", "shop", "--stage", "prod", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry history: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "STAGE") || !strings.Contains(strings.Split(out, "\n")[0], "PULL REQUEST") {
		t.Errorf("no header:\n%s", out)
	}
	want := [][]string{
		{"prod", "2026-03-01T18:00:00Z", promotionctl.ShortDigest(digestX), "Rejected", "-", "-", "release-team",
			"http://127.0.0.1:3000/acme/shop-deploy/pulls/8", "pull", "request", "closed", "without", "merge"},
		{"prod", "2026-03-01T17:00:00Z", promotionctl.ShortDigest(digestB), "Promoted", strings.Repeat("3", 12), "alice",
			"release-team", "http://127.0.0.1:3000/acme/shop-deploy/pulls/7", "-"},
		{"prod", "2026-03-01T13:00:00Z", promotionctl.ShortDigest(digestA), "Promoted", strings.Repeat("1", 12), "bob",
			"release-team", "-", "-"},
	}
	rows := tableRows(out)
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), out)
	}
	for i := range want {
		if strings.Join(rows[i], " ") != strings.Join(want[i], " ") {
			t.Errorf("row %d:\n got %q\nwant %q", i, rows[i], want[i])
		}
	}

	out, err = runFerry(t, "history", "shop", "-o", "wide", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry history -o wide: %v", err)
	}
	rows = tableRows(out)
	if len(rows) != 4+1+1+3 {
		t.Fatalf("%d rows for every stage, want 9 (staging's in-flight digest first):\n%s", len(rows), out)
	}
	if rows[0][0] != "dev" || rows[4][0] != "staging" || rows[4][3] != "in-flight:Soaking" || rows[5][0] != "staging" || rows[6][0] != "prod" {
		t.Errorf("stages out of spec order:\n%s", out)
	}
	if rows[0][2] != digestC || rows[0][4] != strings.Repeat("c0", 20) {
		t.Errorf("-o wide does not print full digests and commits: %q", rows[0])
	}
}

func TestHistoryJSON(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createShop(t, e, ns)

	out, err := runFerry(t, "history", "shop", "-o", "json", "--kubeconfig", e.Kubeconfig(t, ns))
	if err != nil {
		t.Fatalf("ferry history -o json: %v\n%s", err, out)
	}
	var got historyOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got.Namespace != ns || got.Promotion != "shop" || len(got.Stages) != 3 {
		t.Fatalf("got %+v", got)
	}
	prod := got.Stages[2]
	if prod.Name != "prod" || prod.Digest != digestB || len(prod.History) != 3 || prod.History[1].Approver != "alice" ||
		!prod.History[1].Time.Equal(&metav1.Time{Time: fixtureTime.Add(5 * time.Hour)}) {
		t.Errorf("prod = %+v", prod)
	}
}

func TestHistoryOfAStageWithoutHistory(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createPromotion(t, e, ns, "fresh", nil)
	out, err := runFerry(t, "history", "fresh", "--kubeconfig", e.Kubeconfig(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{"dev", "staging", "prod"} {
		if !strings.Contains(out, "Stage "+stage+" has no history yet.") {
			t.Errorf("nothing said about %s:\n%s", stage, out)
		}
	}
}

func TestHistoryNamesWhatIsWrong(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createShop(t, e, ns)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"history", "nope"}, `promotion "nope" not found in namespace "` + ns + `"`},
		{[]string{"history", "shop", "--stage", "qa"}, `--stage "qa": promotion "shop" has no such stage (stages: dev, staging, prod)`},
		{[]string{"history", "shop", "-o", "yaml"}, `--output "yaml": want one of table, wide, json`},
		{[]string{"history"}, "accepts 1 arg(s), received 0"},
	} {
		out, err := runFerry(t, append(tc.args, "--kubeconfig", kubeconfig)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q\n%s", tc.args, err, tc.want, out)
		}
	}
}

func TestCellKeepsTablesIntact(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "-",
		"  ":                     "-",
		"alice":                  "alice",
		"evil\x1b[2Jname":        "evil [2Jname",
		"line one\nline\ttwo\r":  "line one line two",
		"bidi\u0085next":         "bidi next",
		"ünïcode stays readable": "ünïcode stays readable",
	} {
		if got := promotionctl.Cell(in); got != want {
			t.Errorf("promotionctl.Cell(%q) = %q, want %q", in, got, want)
		}
	}
}
