package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

// kubeEnv is a real API server shared by this package's cluster-facing command tests.
var kubeEnv *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &kubeEnv) }

func TestGetShowsStagesFromTheAPIServer(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	ctx := context.Background()

	p, err := testenv.SamplePromotion(ns)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	now := metav1.Now()
	p.Status.Stages = []ferryv1.StageStatus{
		{Name: "dev", Phase: ferryv1.PhasePromoted, Digest: digest, Since: &now},
		{Name: "staging", Phase: ferryv1.PhaseSoaking, Digest: digest, Since: &now},
	}
	p.Status.Conditions = []metav1.Condition{{Type: ferryv1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: "Progressing", Message: "staging is soaking", LastTransitionTime: now}}
	if err := e.Client.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}

	out, err := runFerry(t, "get", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry get: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and one line per stage, got:\n%s", out)
	}
	wantRows := [][]string{
		{"PROMOTION", "READY", "REASON", "STAGE", "PHASE", "DIGEST"},
		{"shop", "False", "Progressing", "dev", "Promoted", "sha256:abababababab"},
		{"staging", "Soaking", "sha256:abababababab"},
		{"prod", "-", "<none>"},
	}
	for i, want := range wantRows {
		fields := strings.Fields(lines[i])
		for j, w := range want {
			if j >= len(fields) || fields[j] != w {
				t.Errorf("line %d = %q, want fields %q", i, lines[i], want)
				break
			}
		}
	}

	out, err = runFerry(t, "get", "shop", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry get shop: %v", err)
	}
	if !strings.Contains(out, "Ready=False (Progressing): staging is soaking") {
		t.Errorf("ferry get NAME does not print the conditions:\n%s", out)
	}

	out, err = runFerry(t, "get", "-A", "--kubeconfig", kubeconfig)
	if err != nil || !strings.Contains(out, "NAMESPACE") || !strings.Contains(out, ns) {
		t.Errorf("ferry get -A: %v\n%s", err, out)
	}
}

func TestGetNamesWhatIsMissing(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	_, err := runFerry(t, "get", "nope", "--kubeconfig", kubeconfig)
	if err == nil || !strings.Contains(err.Error(), `promotion "nope" not found in namespace "`+ns+`"`) {
		t.Errorf("err = %v", err)
	}
	out, err := runFerry(t, "get", "--kubeconfig", kubeconfig)
	if err != nil || !strings.Contains(out, "No Promotions found in namespace "+ns) {
		t.Errorf("empty namespace: %v %q", err, out)
	}
	_, err = runFerry(t, "get", "--kubeconfig", filepath.Join(t.TempDir(), "missing"))
	if err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Errorf("missing kubeconfig: %v", err)
	}
}

func TestVersion(t *testing.T) {
	out, err := runFerry(t, "version")
	if err != nil || !strings.HasPrefix(out, "ferry ") || !strings.Contains(out, "go1.") {
		t.Errorf("ferry version = %q, %v", out, err)
	}
}
