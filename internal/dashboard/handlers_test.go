package dashboard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

// get fetches a page as the browser would, from the dashboard's own origin.
func get(t *testing.T, ts *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := ts.Client().Get(ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// post sends a form from the dashboard's own origin.
func post(t *testing.T, ts *httptest.Server, path string, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", ts.URL)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// stageOrder is the order in which stage cards appear in a page.
var stageCard = regexp.MustCompile(`data-stage="([^"]+)"`)

func TestListShowsEachPromotionWithItsStagesInOrder(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createPromotion(t, e, ns, "shop", shopStages(), readyCondition(metav1.ConditionFalse, "Progressing", "prod runs a canary"),
		metav1.Condition{Type: ferryv1.ConditionDrifted, Status: metav1.ConditionTrue, Reason: "ImageDrift",
			Message: "dev: Deployment web runs sha256:0000 instead of the declared digest", LastTransitionTime: at(0)})
	createPromotion(t, e, ns, "fresh", nil)
	_, ts := startDashboard(t, e.Config, ns)

	code, body := get(t, ts, "/")
	if code != http.StatusOK {
		t.Fatalf("GET / = %d\n%s", code, body)
	}
	shop := body[strings.Index(body, `data-promotion="`+ns+`/shop"`):]
	var order []string
	for _, m := range stageCard.FindAllStringSubmatch(shop, 3) {
		order = append(order, m[1])
	}
	if strings.Join(order, " ") != "dev staging prod" {
		t.Errorf("stages of shop in order %v, want dev staging prod", order)
	}
	for _, want := range []string{
		"Ready: <strong>False</strong> (Progressing)",
		`title="` + digestB + `"`, ">sha256:b2b2b2b2b2b2<", // dev and staging run B, shortened
		"Canary 1/3 (10%), analysis Running: 1 of 4 missing", // prod's phase with its canary step
		"→ <code class=\"digest\" title=\"" + digestB,        // prod's in-flight digest
		"pull request #7",
		"Drifted: dev: Deployment web runs sha256:0000 instead of the declared digest", // the Drifted condition
		`href="/promotions/` + ns + `/fresh"`, "not started",                           // a Promotion the controller has not reconciled
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the list lacks %q", want)
		}
	}
	if strings.Contains(body, "not-a-secret") || strings.Contains(body, "0123456789abcdef") {
		t.Error("the page shows the content of a Secret")
	}

	// The fragment the page re-fetches on a change holds the same table, without the layout.
	code, frag := get(t, ts, "/fragments/promotions")
	if code != http.StatusOK || strings.Contains(frag, "<html") || !strings.Contains(frag, `data-promotion="`+ns+`/shop"`) {
		t.Errorf("GET /fragments/promotions = %d\n%s", code, frag)
	}
}

func TestPromotionPageShowsHistoryAnalysisAndForgeLinks(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createPromotion(t, e, ns, "shop", shopStages())
	_, ts := startDashboard(t, e.Config, ns)

	code, body := get(t, ts, "/promotions/"+ns+"/shop")
	if code != http.StatusOK {
		t.Fatalf("GET promotion = %d\n%s", code, body)
	}
	prod := body[strings.Index(body, `id="stage-prod"`):]
	for _, want := range []string{
		// The sample's Git repository is a Gitea one (prod's pull requests), so commits link to its pages.
		`href="http://127.0.0.1:3000/acme/shop-deploy/commit/` + commitA + `"`,
		`href="http://127.0.0.1:3000/acme/shop-deploy/pulls/5"`, "alice", "release-team",
		"Rejected", "pull request closed without merge",
		"<strong>Running</strong> · Canary · step 1/3 (10%)",
		"thresholds: max 0.01",
		`data-action="abort"`, // a canary under way can be aborted
	} {
		if !strings.Contains(prod, want) {
			t.Errorf("stage prod lacks %q", want)
		}
	}
	// One chart per metric the spec declares; p99-latency-seconds has no measurement yet.
	if n := strings.Count(prod, `<svg class="chart"`); n != 2 || !strings.Contains(prod, "No measurements yet") {
		t.Errorf("%d charts in prod, want error-rate and an empty p99-latency-seconds", n)
	}
	if n := strings.Count(prod, "<polyline"); n != 2 {
		t.Errorf("%d lines in the chart, want canary and baseline", n)
	}
	dev := body[strings.Index(body, `id="stage-dev"`):strings.Index(body, `id="stage-staging"`)]
	if !strings.Contains(dev, `data-action="rollback"`) || strings.Contains(dev, `data-action="approve"`) {
		t.Errorf("dev runs B after A: it offers a rollback and nothing to approve:\n%s", dev)
	}

	code, body = get(t, ts, "/promotions/"+ns+"/missing")
	if code != http.StatusNotFound || !strings.Contains(body, `promotion &#34;missing&#34; not found`) {
		t.Errorf("GET a missing Promotion = %d\n%s", code, body)
	}
}

func TestProvenanceFindsEveryStageThatRanTheDigest(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createPromotion(t, e, ns, "shop", shopStages())
	_, ts := startDashboard(t, e.Config, ns)

	code, body := get(t, ts, "/provenance?digest="+digestA[7:19])
	if code != http.StatusOK {
		t.Fatalf("GET provenance = %d\n%s", code, body)
	}
	if !strings.Contains(body, "Digest <code>"+digestA+"</code>") {
		t.Errorf("the prefix does not resolve to the full digest:\n%s", body)
	}
	rows := regexp.MustCompile(`(?s)<td><a href="/promotions/[^"]+/shop">shop</a>.*?</tr>`).FindAllString(body, -1)
	// dev's history, prod running it and prod's history.
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3:\n%s", len(rows), body)
	}
	if !strings.Contains(rows[1], "<td>prod</td>") || !strings.Contains(rows[1], "<td>running</td>") ||
		!strings.Contains(rows[1], "alice") || !strings.Contains(rows[1], "/commit/"+commitA) {
		t.Errorf("prod's running row lacks its approver or commit: %s", rows[1])
	}

	code, body = get(t, ts, "/provenance?digest=sha256:ffffffffffff")
	if code != http.StatusNotFound || !strings.Contains(body, "digest not found") {
		t.Errorf("an unknown digest = %d\n%s", code, body)
	}
	code, body = get(t, ts, "/provenance?digest=%3Cscript%3E")
	if code != http.StatusNotFound || strings.Contains(body, "<script>") || !strings.Contains(body, "not a digest") {
		t.Errorf("a bad digest = %d\n%s", code, body)
	}
}

func TestActionsNeedAConfirmedPostWithTheToken(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createPromotion(t, e, ns, "shop", shopStages())
	srv, ts := startDashboard(t, e.Config, ns)
	pending := func() string { return getPromotion(t, e, ns, "shop").Annotations[ferryv1.RollbackAnnotation] }

	// The confirmation step shows what will happen and changes nothing.
	code, body := get(t, ts, "/promotions/"+ns+"/shop/confirm?action=rollback&stage=dev")
	if code != http.StatusOK || !strings.Contains(body, "Roll back stage dev of promotion shop from sha256:b2b2b2b2b2b2?") ||
		!strings.Contains(body, "the previous digest, "+digestA) || !strings.Contains(body, `name="csrf" value="`+srv.csrf+`"`) {
		t.Fatalf("confirm page = %d\n%s", code, body)
	}
	if v := pending(); v != "" {
		t.Fatalf("showing the confirmation set %s=%q", ferryv1.RollbackAnnotation, v)
	}

	form := url.Values{"action": {"rollback"}, "stage": {"dev"}}
	if code, body := post(t, ts, "/promotions/"+ns+"/shop/actions", form); code != http.StatusForbidden || !strings.Contains(body, "security token") {
		t.Errorf("POST without the token = %d\n%s", code, body)
	}
	form.Set("csrf", strings.Repeat("0", len(srv.csrf)))
	if code, _ := post(t, ts, "/promotions/"+ns+"/shop/actions", form); code != http.StatusForbidden {
		t.Errorf("POST with a wrong token = %d", code)
	}
	if v := pending(); v != "" {
		t.Fatalf("a refused POST set %s=%q", ferryv1.RollbackAnnotation, v)
	}

	form.Set("csrf", srv.csrf)
	code, body = post(t, ts, "/promotions/"+ns+"/shop/actions", form)
	if code != http.StatusOK || !strings.Contains(body, "Asked for a rollback of stage dev: set ferry.dev/rollback=dev.") {
		t.Fatalf("POST rollback = %d\n%s", code, body)
	}
	if v := pending(); v != "dev" {
		t.Fatalf("%s = %q, want dev", ferryv1.RollbackAnnotation, v)
	}
	p := getPromotion(t, e, ns, "shop")
	if m := managerOf(p, ferryv1.RollbackAnnotation); !strings.HasPrefix(m, "ferry-rollback:") {
		t.Errorf("the annotation's field manager is %q: the controller cannot tell who asked", m)
	}

	// A second request while the first is pending is refused, with the reason on the page.
	code, body = post(t, ts, "/promotions/"+ns+"/shop/actions", form)
	if code != http.StatusConflict || !strings.Contains(body, "a rollback is already pending") || !strings.Contains(body, `role="alert"`) {
		t.Errorf("a second rollback = %d\n%s", code, body)
	}

	// A chosen digest is checked against the stage's history: staging never ran A.
	form = url.Values{"csrf": {srv.csrf}, "action": {"rollback"}, "stage": {"staging"}, "to": {digestA}}
	code, body = post(t, ts, "/promotions/"+ns+"/shop/actions", form)
	if code != http.StatusConflict || !strings.Contains(body, "digest not found in the history of stage") {
		t.Errorf("rollback of staging to A = %d\n%s", code, body)
	}
	// Approving an analysis that is not held is refused, as `ferry approve` refuses it.
	form = url.Values{"csrf": {srv.csrf}, "action": {"approve"}, "stage": {"prod"}}
	code, body = post(t, ts, "/promotions/"+ns+"/shop/actions", form)
	if code != http.StatusConflict || !strings.Contains(body, "is Running, not Held") {
		t.Errorf("approve a running analysis = %d\n%s", code, body)
	}
	if _, ok := getPromotion(t, e, ns, "shop").Annotations[ferryv1.ApproveAnnotation]; ok {
		t.Error("a refused approval set the annotation")
	}
}

func TestHeldStagesOfferApproveAndClearHold(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	stages := shopStages()
	stages[2].Analysis.Phase, stages[2].Analysis.Message = ferryv1.AnalysisHeld, "4 of 12 measurements missing"
	stages[0].Hold = &ferryv1.HoldStatus{Digest: digestB, Reason: "RollbackRequested", RequestedBy: "bob", Since: atPtr(31)}
	createPromotion(t, e, ns, "shop", stages)
	srv, ts := startDashboard(t, e.Config, ns)

	_, body := get(t, ts, "/promotions/"+ns+"/shop")
	for _, want := range []string{`id="action-approve-prod"`, `id="action-abort-prod"`, `id="action-clear-hold-dev"`, "asked by bob"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	for action, annotation := range map[string]string{"approve": ferryv1.ApproveAnnotation, "clear-hold": ferryv1.ClearHoldAnnotation} {
		stage := map[string]string{"approve": "prod", "clear-hold": "dev"}[action]
		code, body := post(t, ts, "/promotions/"+ns+"/shop/actions", url.Values{"csrf": {srv.csrf}, "action": {action}, "stage": {stage}})
		if code != http.StatusOK {
			t.Errorf("POST %s = %d\n%s", action, code, body)
		}
		if v := getPromotion(t, e, ns, "shop").Annotations[annotation]; v != stage {
			t.Errorf("%s = %q, want %s", annotation, v, stage)
		}
	}
}

func TestForbiddenActionShowsTheAPIServersRefusal(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createPromotion(t, e, ns, "shop", shopStages())
	srv, ts := startDashboard(t, readOnlyUser(t, e, ns, "viewer"), ns)

	// The read-only user reads and follows the Promotions as anyone does...
	if code, body := get(t, ts, "/promotions/"+ns+"/shop"); code != http.StatusOK || !strings.Contains(body, "Stage prod") {
		t.Fatalf("GET as a viewer = %d\n%s", code, body)
	}
	// ...but the API server refuses its rollback, and the page says so.
	code, body := post(t, ts, "/promotions/"+ns+"/shop/actions", url.Values{"csrf": {srv.csrf}, "action": {"rollback"}, "stage": {"dev"}})
	if code != http.StatusForbidden {
		t.Errorf("POST as a viewer = %d, want 403", code)
	}
	for _, want := range []string{`role="alert"`, "Forbidden: the API server refused this request for your user, so nothing was changed.",
		`User &#34;viewer&#34; cannot patch resource &#34;promotions&#34;`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q:\n%s", want, body)
		}
	}
	if _, ok := getPromotion(t, e, ns, "shop").Annotations[ferryv1.RollbackAnnotation]; ok {
		t.Error("a forbidden rollback changed the Promotion")
	}
}

func managerOf(p *ferryv1.Promotion, annotation string) string {
	for _, m := range p.ManagedFields {
		if m.FieldsV1 != nil && strings.Contains(string(m.FieldsV1.Raw), `"f:`+annotation+`"`) {
			return m.Manager
		}
	}
	return ""
}
