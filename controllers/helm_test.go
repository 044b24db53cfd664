package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

// helmFixture runs one stage, dev, in the HelmValues format: its path in a Git repository of its own holds an
// umbrella chart with a vendored dependency, synced into a namespace of the test API server by the real sync
// engine, with the test playing the deployment controller.
type helmFixture struct {
	*pipelineFixture
	e    *testenv.Env
	dev  string // the stage's namespace
	repo string // the chart's repository
}

// newHelmFixture seeds the repository with shopChart, its files changed by the ones extra returns for the stage's
// image repository (nil for none).
func newHelmFixture(t *testing.T, extra func(repository string) map[string]string) *helmFixture {
	t.Helper()
	e := testenv.Need(t, env)
	f := &helmFixture{pipelineFixture: newPipelineFixture(t, e), e: e, dev: e.Namespace(t)}
	var changed map[string]string
	if extra != nil {
		changed = extra(f.repository())
	}
	f.repo = f.git.NewRepo("acme/shop-chart", shopChart(f.repository(), changed))
	startRolloutController(t, e.Client, f.dev)
	syncer := NewGitopsSyncer()
	t.Cleanup(syncer.Close)
	startManager(t, Engines{Git: newGitEngine(t), Sync: syncer, WorkDir: t.TempDir()})
	return f
}

// repository is the dev stage's image repository.
func (f *helmFixture) repository() string { return f.stageReg.Host + "/dev/shop" }

func (f *helmFixture) promotion() *ferryv1.Promotion {
	p := f.pipelineFixture.promotion()
	p.Spec.Interval = &metav1.Duration{Duration: time.Second}
	p.Spec.Git.URL = f.repo
	stage := &p.Spec.Stages[0]
	stage.Sync.Namespace = f.dev
	stage.Manifest = ferryv1.ManifestSpec{Format: ferryv1.ManifestHelmValues,
		Helm: &ferryv1.HelmValuesSpec{File: "values.yaml", KeyPath: "image"}}
	return p
}

// shopChart is the dev stage's umbrella chart: the shop's Deployment, whose image comes from the values, a
// dependency vendored under charts/, and a test hook. extra adds or replaces files.
func shopChart(repository string, extra map[string]string) map[string]string {
	files := map[string]string{
		"envs/dev/Chart.yaml": "apiVersion: v2\nname: shop\nversion: 1.0.0\ndependencies:\n" +
			"  - name: greeter\n    version: 0.1.0\n    repository: https://charts.example.com\n",
		"envs/dev/values.yaml": "# dev values\nimage:\n  repository: " + repository + "\n  tag: \"0.9\" # kept for humans\n" +
			"greeter:\n  greeting: hello dev\n",
		"envs/dev/templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: 2
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
        - name: shop
          image: "{{ .Values.image.repository }}{{ with .Values.image.digest }}@{{ . }}{{ else }}:{{ .Values.image.tag }}{{ end }}"
`,
		"envs/dev/templates/tests/test.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n" +
			"  annotations:\n    helm.sh/hook: test\nspec:\n  containers:\n    - name: t\n      image: busybox\n",
		"envs/dev/charts/greeter/Chart.yaml": "apiVersion: v2\nname: greeter\nversion: 0.1.0\n",
		"envs/dev/charts/greeter/templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n" +
			"  name: {{ .Release.Name }}-greeter\ndata:\n  greeting: {{ required \"greeting is required\" .Values.greeting | quote }}\n",
	}
	for name, content := range extra {
		files[name] = content
	}
	return files
}

// A HelmValues stage is pinned in its values file, rendered from its chart, applied, and becomes healthy, running
// the pinned digest.
func TestHelmStageIsPinnedRenderedAndHealthy(t *testing.T) {
	f := newHelmFixture(t, nil)
	repository := f.repository()
	ctx := context.Background()
	v1 := f.pushRelease(t, "1.0.0", true).DigestStr()
	p := f.promotion()
	if err := f.e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "dev to promote "+v1, func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		if len(got.Status.Stages) == 0 {
			return false, conditionState(got, ferryv1.ConditionReady)
		}
		st := got.Status.Stages[0]
		return st.Digest == v1 && st.Phase == ferryv1.PhasePromoted, string(st.Phase) + ": " + st.Message + "; " +
			conditionState(got, ferryv1.ConditionReady)
	})

	var d appsv1.Deployment
	if err := f.e.Client.Get(ctx, types.NamespacedName{Namespace: f.dev, Name: "shop-dev"}, &d); err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != repository+"@"+v1 {
		t.Errorf("the release runs %s, want the pinned %s@%s", img, repository, v1)
	}
	var cm corev1.ConfigMap
	if err := f.e.Client.Get(ctx, types.NamespacedName{Namespace: f.dev, Name: "shop-dev-greeter"}, &cm); err != nil {
		t.Errorf("the vendored dependency was not applied: %v", err)
	} else if cm.Data["greeting"] != "hello dev" {
		t.Errorf("greeting = %q", cm.Data["greeting"])
	}
	var pod corev1.Pod
	if err := f.e.Client.Get(ctx, types.NamespacedName{Namespace: f.dev, Name: "shop-dev-test"}, &pod); !apierrors.IsNotFound(err) {
		t.Errorf("the test hook was applied (err = %v)", err)
	}
	values, _ := f.git.File("acme/shop-chart", "main", "envs/dev/values.yaml")
	for _, want := range []string{"# dev values", "tag: \"0.9\" # kept for humans", "digest: " + v1} {
		if !strings.Contains(values, want) {
			t.Errorf("pinned values.yaml does not hold %q:\n%s", want, values)
		}
	}
}

// A chart that does not render stalls the Promotion at the sync step, with Helm's error, naming the field.
func TestHelmChartThatFailsToRenderStalls(t *testing.T) {
	f := newHelmFixture(t, func(repository string) map[string]string {
		return map[string]string{"envs/dev/values.yaml": "image:\n  repository: " + repository + "\n  tag: \"0.9\"\n"}
	})
	f.pushRelease(t, "1.0.0", true)
	p := f.promotion()
	if err := f.e.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Promotion to stall on the chart", func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		c := apimeta.FindStatusCondition(got.Status.Conditions, ferryv1.ConditionStalled)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonHelmRenderFailed &&
			strings.HasPrefix(c.Message, "spec.stages[0].manifest.helm.chart: ") &&
			strings.Contains(c.Message, "shop/charts/greeter/templates/configmap.yaml") &&
			strings.Contains(c.Message, "greeting is required"), conditionState(got, ferryv1.ConditionStalled)
	})
	if st := getPromotion(t, f.e.Client, f.ns, p.Name).Status.Stages[0]; st.Phase != ferryv1.PhaseSyncing || st.LastCommit == "" {
		t.Errorf("stage = %s at %q, want pinned and waiting at the sync", st.Phase, st.LastCommit)
	}
}

// The API server refuses a chart folder outside the stage path and a release name Helm would refuse.
func TestHelmFieldsAreValidated(t *testing.T) {
	e := testenv.Need(t, env)
	ns := e.Namespace(t)
	for _, tc := range []struct {
		name string
		helm ferryv1.HelmValuesSpec
		want []string
	}{
		{"chart outside the stage path", ferryv1.HelmValuesSpec{KeyPath: "image", Chart: "../shared/shop"},
			[]string{"spec.stages[0].manifest.helm.chart", "must be relative to the stage path and must not contain '..'"}},
		{"absolute chart folder", ferryv1.HelmValuesSpec{KeyPath: "image", Chart: "/charts/shop"},
			[]string{"spec.stages[0].manifest.helm.chart", "must be relative to the stage path"}},
		{"release name Helm refuses", ferryv1.HelmValuesSpec{KeyPath: "image", ReleaseName: "Shop_1"},
			[]string{"spec.stages[0].manifest.helm.releaseName", "should match"}},
		{"release name too long", ferryv1.HelmValuesSpec{KeyPath: "image", ReleaseName: strings.Repeat("a", 54)},
			[]string{"spec.stages[0].manifest.helm.releaseName", "may not be more than 53"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePromotion(t, ns)
			p.Spec.Stages[0].Manifest = ferryv1.ManifestSpec{Format: ferryv1.ManifestHelmValues, Helm: &tc.helm}
			err := e.Client.Create(context.Background(), p)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("err = %v, want Invalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q: %v", w, err)
				}
			}
		})
	}
	p := samplePromotion(t, ns)
	p.Spec.Stages[0].Manifest = ferryv1.ManifestSpec{Format: ferryv1.ManifestHelmValues,
		Helm: &ferryv1.HelmValuesSpec{KeyPath: "app.image", Chart: "chart", ReleaseName: "shop.dev-1"}}
	if err := e.Client.Create(context.Background(), p); err != nil {
		t.Fatalf("a valid chart folder and release name were refused: %v", err)
	}
}
