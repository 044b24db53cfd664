package dashboard

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"k8s.io/client-go/rest"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

// browserStepTimeout bounds one step of a browser test: a wait for a condition fails after it, it is no
// expected duration.
const browserStepTimeout = 45 * time.Second

// chromium is the headless Chromium that hack/chromium.sh installs from Debian: $FERRY_CHROMIUM, else chromium
// on the PATH. Without it the test is skipped, or failed when FERRY_REQUIRE_TOOLS=1.
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("FERRY_CHROMIUM")
	if path == "" {
		path, _ = exec.LookPath("chromium")
	}
	if path != "" {
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	msg := "no Chromium (run hack/chromium.sh and set FERRY_CHROMIUM to the path it prints)"
	if testenv.RequireTools() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser is one headless Chromium tab for a test.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string // where screenshots go
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.WindowSize(1280, 860))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no deadline (a deadline would end it)
		t.Fatalf("starting %s: %v", chromium(t), err)
	}
	return &browser{t: t, ctx: ctx, dir: screenshotDir(t)}
}

// screenshotDir is $FERRY_TEST_OUTPUT/dashboard, else a fixed folder under the system's temporary folder that
// each run overwrites; the test logs it.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "ferry-dashboard-screenshots")
	if out := os.Getenv("FERRY_TEST_OUTPUT"); out != "" {
		dir = filepath.Join(out, "dashboard")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// do runs steps, failing the test with what was being done.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage %s:\n%s", what, err, b.eval("location.href"), b.eval("document.body.innerText"))
	}
}

// follow runs steps that load a new page (a click on a link, a submitted form) and waits until it has loaded;
// it returns the page's HTTP status.
func (b *browser) follow(what string, steps ...chromedp.Action[chromedp.Void]) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		b.t.Fatalf("%s: %v\npage %s:\n%s", what, err, b.eval("location.href"), b.eval("document.body.innerText"))
	}
	if resp == nil {
		return 0
	}
	return resp.Status
}

// eval evaluates a JavaScript expression in the page.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor waits until a JavaScript condition holds in the page, re-checking on every DOM change.
func (b *browser) waitFor(what, condition string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](condition, chromedp.WithPollingMutation(),
		chromedp.WithPollingTimeout(browserStepTimeout))); err != nil {
		b.t.Fatalf("waiting until %s: %v\npage text:\n%s", what, err, b.eval("document.body.innerText"))
	}
}

// screenshot saves the viewport as name.png and returns its path.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// waitLive waits until the page's event stream is open, so that a change made from now on reaches it.
func (b *browser) waitLive() {
	b.t.Helper()
	b.waitFor("live updates are connected", `document.getElementById("live-status").textContent.startsWith("Live:")`)
}

func js(s string) string { return fmt.Sprintf("%q", s) }

func TestBrowserPagesActionsAndLiveUpdates(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	b := newBrowser(t)
	ns := e.Namespace(t)
	createPromotion(t, e, ns, "shop", shopStages(), readyCondition("False", "Progressing", "prod runs a canary of sha256:b2b2b2b2b2b2"))
	createPromotion(t, e, ns, "fresh", nil)
	_, ts := startDashboard(t, e.Config, ns)
	shop := `document.querySelector('[data-promotion="` + ns + `/shop"]')`

	// All Promotions: one row each, stages left to right with their digests.
	b.follow("opening the list", chromedp.Navigate(ts.URL+"/"))
	if got := b.eval(`Array.from(` + shop + `.querySelectorAll("[data-stage]")).map(e => e.dataset.stage + " " + e.querySelector(".running").textContent.trim()).join("; ")`); got !=
		"dev sha256:b2b2b2b2b2b2; staging sha256:b2b2b2b2b2b2; prod sha256:a1a1a1a1a1a1" {
		t.Errorf("shop's stages = %q", got)
	}
	b.waitLive()
	b.screenshot("list")

	// A status written by the controller shows up in the open list without a reload.
	b.eval(`window.notReloaded = "yes"`)
	updateStatus(t, e, ns, "fresh", func(p *ferryv1.Promotion) {
		p.Status.Stages = []ferryv1.StageStatus{{Name: "dev", Phase: ferryv1.PhaseCopying, InFlightDigest: digestX}}
	})
	b.waitFor("the list shows fresh's dev copying", `document.querySelector('[data-promotion="`+ns+`/fresh"] [data-stage="dev"] .phase').textContent === "Copying"`)
	if b.eval(`window.notReloaded || "reloaded"`) != "yes" {
		t.Error("the list reloaded instead of updating in place")
	}

	// One Promotion: history, analysis chart with its threshold, and the actions that fit.
	b.follow("opening shop", chromedp.Click(chromedp.CSS(`[data-promotion="`+ns+`/shop"] th a`)))
	if got := b.eval(`document.querySelectorAll("#stage-prod svg.chart polyline").length + " lines, " + document.querySelectorAll("#stage-prod line.threshold").length + " thresholds"`); got != "2 lines, 1 thresholds" {
		t.Errorf("prod's charts: %s, want canary and baseline of error-rate under its max (p99 has no data to draw)", got)
	}
	b.eval(`document.getElementById("stage-prod").scrollIntoView({block: "start"}), ""`)
	readme := b.screenshot("promotion")
	if dst := os.Getenv("FERRY_DASHBOARD_SCREENSHOT"); dst != "" {
		copyFile(t, readme, dst)
	}

	// Roll dev back, confirming with the keyboard.
	b.follow("asking for a rollback", chromedp.Click(chromedp.CSS(`#action-rollback-dev`)))
	if v := getPromotion(t, e, ns, "shop").Annotations[ferryv1.RollbackAnnotation]; v != "" {
		t.Fatalf("the confirmation step set %s=%q", ferryv1.RollbackAnnotation, v)
	}
	b.screenshot("confirm")
	if status := b.follow("confirming", chromedp.Focus(chromedp.CSS(`#confirm`)), chromedp.KeyEvent(kb.Enter)); status != 200 {
		t.Errorf("confirming answered %d", status)
	}
	b.do("reading the notice", chromedp.WaitVisible(chromedp.CSS(`#notice`)))
	if v := getPromotion(t, e, ns, "shop").Annotations[ferryv1.RollbackAnnotation]; v != "dev" {
		t.Fatalf("%s = %q after the confirmed rollback, want dev", ferryv1.RollbackAnnotation, v)
	}
	if path := b.eval(`location.pathname`); path != "/promotions/"+ns+"/shop" {
		t.Errorf("after the POST the address is %s, want the Promotion's own", path)
	}

	// The controller takes the rollback up; the open page follows without a reload.
	b.waitLive()
	b.eval(`window.notReloaded = "yes"`)
	updateStatus(t, e, ns, "shop", func(p *ferryv1.Promotion) {
		dev := &p.Status.Stages[0]
		dev.Phase, dev.InFlightDigest, dev.Message = ferryv1.PhaseRollingBack, digestA, "committing the older pin to Git"
		dev.Hold = &ferryv1.HoldStatus{Digest: digestA, Reason: "RollbackRequested", RequestedBy: "test-user", Since: atPtr(90)}
	})
	b.waitFor("dev shows the rollback under way", `(function () {
		var dev = document.getElementById("stage-dev");
		return dev.querySelector(".phase").textContent.startsWith("RollingBack") && dev.querySelector(".hold") !== null &&
			dev.querySelector(".inflight").textContent.includes(`+js(digestA[:19])+`);
	})()`)
	if b.eval(`window.notReloaded || "reloaded"`) != "yes" {
		t.Error("the Promotion page reloaded instead of updating in place")
	}
	b.eval(`document.getElementById("stage-dev").scrollIntoView({block: "start"}), ""`)
	b.screenshot("promotion-live")

	// Provenance by digest prefix, typed and submitted with the keyboard.
	b.follow("opening provenance", chromedp.Navigate(ts.URL+"/provenance"))
	b.follow("searching provenance", chromedp.SendKeys(chromedp.CSS(`#digest`), digestA[7:21]+kb.Enter))
	if got := b.eval(`Array.from(document.querySelectorAll("table.provenance tbody tr")).map(r => r.cells[1].textContent + "/" + r.cells[2].textContent).join(" ")`); got !=
		"dev/in-flight dev/history prod/running prod/history" { // dev is rolling back to A
		t.Errorf("provenance rows = %q", got)
	}
	b.screenshot("provenance")
}

func TestBrowserForbiddenActionShowsTheRefusal(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	b := newBrowser(t)
	ns := e.Namespace(t)
	createPromotion(t, e, ns, "shop", shopStages())
	var viewer *rest.Config = readOnlyUser(t, e, ns, "viewer")
	_, ts := startDashboard(t, viewer, ns)

	b.follow("opening shop as a viewer", chromedp.Navigate(ts.URL+"/promotions/"+ns+"/shop"))
	b.follow("asking for a rollback as a viewer", chromedp.Click(chromedp.CSS(`#action-rollback-dev`)))
	if status := b.follow("confirming as a viewer", chromedp.Click(chromedp.CSS(`#confirm`))); status != 403 {
		t.Errorf("the refused rollback answered %d, want 403", status)
	}
	msg := b.eval(`document.getElementById("action-error").textContent`)
	for _, want := range []string{"Forbidden", `User "viewer" cannot patch resource "promotions"`, "nothing was changed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error on the page lacks %q: %s", want, msg)
		}
	}
	b.screenshot("forbidden")
	if _, ok := getPromotion(t, e, ns, "shop").Annotations[ferryv1.RollbackAnnotation]; ok {
		t.Error("a forbidden rollback changed the Promotion")
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatalf("writing the README screenshot: %v", err)
	}
	t.Logf("README screenshot written to %s", dst)
}
