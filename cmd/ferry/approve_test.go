package main

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
	"github.com/ferrycd/ferry/internal/testenv"
)

// analysisTime is a time of the canary fixture: minutes after prod's canary step 2 started.
func analysisTime(minutes int) metav1.Time {
	return metav1.NewTime(fixtureTime.Add(8*time.Hour + time.Duration(minutes)*time.Minute))
}

// heldAnalysis is prod's analysis in the canary fixture: C is at step 2 of 3 (50%), held because Prometheus is
// unreachable and the missing-data budget ran out. Its measurements are deliberately out of time order.
func heldAnalysis() *ferryv1.AnalysisStatus {
	first, second := int32(0), int32(1)
	started, measured, outage, approved := analysisTime(0), analysisTime(12), analysisTime(9), analysisTime(-30)
	return &ferryv1.AnalysisStatus{
		Digest: digestC, Phase: ferryv1.AnalysisHeld, Run: ferryv1.RunCanary, Step: &second, Weight: 50,
		Message:       "4 of 12 measurements found no data, over the budget of 5 per step: waiting for ferry approve or ferry abort",
		StepStartedAt: &started, LastMeasuredAt: &measured, OutageSince: &outage,
		Missing: 4, Taken: 12, Budget: 5, Approvals: 1, ApprovedBy: "ferry-approve:alice", ApprovedAt: &approved,
		Tallies: []ferryv1.MetricTally{{Metric: "error-rate", Passed: 7, Inconclusive: 4}},
		Queries: []ferryv1.AnalysisQuery{
			{Metric: "error-rate", Track: "canary", Query: "sum(rate(http_requests_total{namespace=\"shop-prod\",code=~\"5..\",track=\"canary\"}[1m]))\n" +
				"  / sum(rate(http_requests_total{namespace=\"shop-prod\",track=\"canary\"}[1m]))\n"},
		},
		Measurements: []ferryv1.Measurement{
			{Metric: "error-rate", Track: "canary", Step: &first, Time: analysisTime(-20), Value: "0.002", Verdict: "Pass"},
			{Metric: "error-rate", Track: "canary", Step: &second, Time: analysisTime(12), Verdict: "Inconclusive",
				Reason: "PrometheusUnavailable", Message: "dial tcp 10.0.0.9:9090: connection refused"},
			{Metric: "error-rate", Track: "baseline", Step: &second, Time: analysisTime(5), Value: "0.003", Verdict: "Pass"},
		},
		Comparisons: []ferryv1.Comparison{{Metric: "error-rate", Verdict: "Marginal", PValue: "0.07",
			CanaryMedian: "0.004", BaselineMedian: "0.003", CanarySamples: 8, BaselineSamples: 8,
			Reason: "the canary errs more than the baseline, but not significantly at 95%"}},
	}
}

// canaryStages is the history fixture with analyses: dev's soak analysis passed, staging has none, prod runs B
// while C is in a canary whose analysis is in phase prodPhase.
func canaryStages(prodPhase ferryv1.AnalysisPhase, message string) []ferryv1.StageStatus {
	stages := fixtureStages()
	stages[0].Analysis = &ferryv1.AnalysisStatus{Digest: digestC, Phase: ferryv1.AnalysisPassed, Run: ferryv1.RunSoak,
		Message: "every metric passed 30 measurements", Taken: 30, Budget: 5}
	prod := &stages[2]
	prod.Phase, prod.InFlightDigest, prod.Message = ferryv1.PhaseCanary, digestC, "Canary step 2 of 3"
	prod.Analysis = heldAnalysis()
	prod.Analysis.Phase, prod.Analysis.Message = prodPhase, message
	return stages
}

func createCanaryShop(t *testing.T, e *testenv.Env, ns string) {
	t.Helper()
	createPromotion(t, e, ns, "shop", canaryStages(ferryv1.AnalysisHeld, heldAnalysis().Message))
}

// annotationManager is the field manager that set an annotation, found in managedFields as the controller
// finds it.
func annotationManager(p *ferryv1.Promotion, key string) string {
	for _, mf := range p.ManagedFields {
		if mf.FieldsV1 != nil && strings.Contains(string(mf.FieldsV1.Raw), `"f:`+key+`"`) {
			return mf.Manager
		}
	}
	return ""
}

func checkRequest(t *testing.T, p *ferryv1.Promotion, key, value, command string) {
	t.Helper()
	if v, ok := p.Annotations[key]; !ok || v != value {
		t.Errorf("annotation %s = %q (set: %v), want %q", key, v, ok, value)
	}
	// The manager names the user the API server authenticated: the controller records it as who asked.
	if m := annotationManager(p, key); !strings.HasPrefix(m, "ferry-"+command+":") || len(m) == len("ferry-"+command+":") {
		t.Errorf("%s is managed by %q, want ferry-%s:<user>", key, m, command)
	}
}

func TestApproveSetsTheAnnotationAsTheUser(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createCanaryShop(t, e, ns)

	out, err := runFerry(t, "approve", "shop", "--stage", "prod", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry approve: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"Approving the canary of sha256:cccccccccccc at step 2/3 (50%, analysis Held) in stage prod of promotion shop: set ferry.dev/approve=prod",
		"Ferry's controller will record who approved, start the missing-data budget again and accept a Marginal comparison, then remove the annotation.",
		"Follow it with: ferry analysis shop --stage prod",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("output:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	p := getShop(t, e, ns, "shop")
	checkRequest(t, p, ferryv1.ApproveAnnotation, "prod", "approve")

	// A second request while the first is pending changes nothing.
	_, err = runFerry(t, "approve", "shop", "--stage", "prod", "--kubeconfig", kubeconfig)
	if err == nil || !strings.Contains(err.Error(), `an approval is already pending on promotion "shop" (ferry.dev/approve="prod")`) {
		t.Errorf("second approval: err = %v", err)
	}
	if after := getShop(t, e, ns, "shop"); after.ResourceVersion != p.ResourceVersion {
		t.Errorf("a refused approval changed the Promotion: %v", after.Annotations)
	}
}

func TestAbortSetsTheAnnotationAsTheUser(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createCanaryShop(t, e, ns)

	// A held analysis can be aborted as well as approved.
	out, err := runFerry(t, "abort", "shop", "--stage", "prod", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry abort: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Aborting the canary of sha256:cccccccccccc at step 2/3 (50%, analysis Held) in stage prod of promotion shop: set ferry.dev/abort=prod\n",
		"Ferry's controller will fail the run and commit the previous digest (sha256:bbbbbbbbbbbb) back to Git, then remove the annotation.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	p := getShop(t, e, ns, "shop")
	checkRequest(t, p, ferryv1.AbortAnnotation, "prod", "abort")
	if _, ok := p.Annotations[ferryv1.ApproveAnnotation]; ok {
		t.Errorf("abort set the approve annotation too: %v", p.Annotations)
	}

	_, err = runFerry(t, "abort", "shop", "--stage", "prod", "--kubeconfig", kubeconfig)
	if err == nil || !strings.Contains(err.Error(), `an abort is already pending on promotion "shop" (ferry.dev/abort="prod")`) {
		t.Errorf("second abort: err = %v", err)
	}
}

func TestApproveAndAbortRefuseAndChangeNothing(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createCanaryShop(t, e, ns)
	createPromotion(t, e, ns, "busy", canaryStages(ferryv1.AnalysisRunning, "measuring step 2 of 3"))
	createPromotion(t, e, ns, "fresh", nil)
	before := map[string]string{}
	for _, name := range []string{"shop", "busy", "fresh"} {
		before[name] = getShop(t, e, ns, name).ResourceVersion
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"approve", "shop"}, `required flag(s) "stage" not set`},
		{[]string{"abort", "shop"}, `required flag(s) "stage" not set`},
		{[]string{"approve", "nope", "--stage", "prod"}, `promotion "nope" not found in namespace "` + ns + `"`},
		{[]string{"approve", "shop", "--stage", "qa"}, `--stage "qa": promotion "shop" has no such stage (stages: dev, staging, prod)`},
		{[]string{"abort", "shop", "--stage", "qa", "--force"}, `--stage "qa": promotion "shop" has no such stage (stages: dev, staging, prod)`},
		{[]string{"approve", "busy", "--stage", "prod"}, `the analysis of stage "prod" of promotion "busy" is Running, not Held ` +
			`(measuring step 2 of 3): only a held analysis waits for approval (--force sets ferry.dev/approve anyway)`},
		{[]string{"approve", "shop", "--stage", "dev"}, `the analysis of stage "dev" of promotion "shop" is Passed, not Held ` +
			`(every metric passed 30 measurements)`},
		{[]string{"approve", "shop", "--stage", "staging"}, `stage "staging" of promotion "shop" has no analysis to approve ` +
			`(phase Soaking) (--force sets ferry.dev/approve anyway)`},
		{[]string{"approve", "fresh", "--stage", "prod"}, `stage "prod" of promotion "fresh" has no analysis to approve (phase -)`},
		{[]string{"abort", "shop", "--stage", "dev"}, `the analysis of stage "dev" of promotion "shop" already ended: ` +
			`Passed (every metric passed 30 measurements): there is nothing to abort (--force sets ferry.dev/abort anyway)`},
		{[]string{"abort", "shop", "--stage", "staging"}, `stage "staging" of promotion "shop" has no canary or analysis ` +
			`under way (phase Soaking): there is nothing to abort`},
		{[]string{"abort", "fresh", "--stage", "prod"}, `stage "prod" of promotion "fresh" has no canary or analysis under way`},
	} {
		out, err := runFerry(t, append(tc.args, "--kubeconfig", kubeconfig)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q\n%s", tc.args, err, tc.want, out)
		}
	}
	for name, rv := range before {
		if p := getShop(t, e, ns, name); p.ResourceVersion != rv || len(p.Annotations) != 0 {
			t.Errorf("%s changed by refused requests: annotations %v", name, p.Annotations)
		}
	}
}

func TestForceSetsTheAnnotationAnyway(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createPromotion(t, e, ns, "busy", canaryStages(ferryv1.AnalysisRunning, "measuring step 2 of 3"))

	out, err := runFerry(t, "approve", "busy", "--stage", "prod", "--force", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry approve --force: %v\n%s", err, out)
	}
	if !strings.Contains(out, `Set with --force although the analysis of stage "prod" of promotion "busy" is Running, not Held`) {
		t.Errorf("output does not say what --force overrode:\n%s", out)
	}
	out, err = runFerry(t, "abort", "busy", "--stage", "staging", "--force", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry abort --force: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Aborting the analysis in stage staging of promotion busy: set ferry.dev/abort=staging\n") {
		t.Errorf("output:\n%s", out)
	}
	p := getShop(t, e, ns, "busy")
	checkRequest(t, p, ferryv1.ApproveAnnotation, "prod", "approve")
	checkRequest(t, p, ferryv1.AbortAnnotation, "staging", "abort")
}

// What an abort returns to: during a canary the digest the stable workload runs; during a soak the newest other
// digest promoted in the stage.
func TestAbortTarget(t *testing.T) {
	canary := canaryStages(ferryv1.AnalysisRunning, "")[2]
	if got := promotionctl.AbortTarget(canary); got != digestB {
		t.Errorf("canary: %s, want %s", got, digestB)
	}
	soak := fixtureStages()[2] // runs B, analysed in its soak; A was promoted before it
	soak.Phase, soak.Analysis = ferryv1.PhaseSoaking, &ferryv1.AnalysisStatus{Digest: digestB, Run: ferryv1.RunSoak}
	if got := promotionctl.AbortTarget(soak); got != digestA {
		t.Errorf("soak: %s, want %s", got, digestA)
	}
	if got := promotionctl.AbortTarget(ferryv1.StageStatus{Name: "prod", Digest: digestB}); got != "" {
		t.Errorf("nothing to return to: %s", got)
	}
}
