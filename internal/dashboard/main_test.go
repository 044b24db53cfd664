package dashboard

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/testenv"
)

// kubeEnv is a real API server shared by this package's tests.
var kubeEnv *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &kubeEnv) }

// Digests and commits of the fixture, recognisable in pages.
var (
	digestA = "sha256:" + strings.Repeat("a1", 32)
	digestB = "sha256:" + strings.Repeat("b2", 32)
	digestX = "sha256:" + strings.Repeat("c3", 32)
	commitA = strings.Repeat("0a", 20)
	commitB = strings.Repeat("0b", 20)
	// fixtureT is two hours ago, so that ages read as they would on a real cluster (screenshots show them).
	fixtureT = time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)
)

func at(minutes int) metav1.Time {
	return metav1.NewTime(fixtureT.Add(time.Duration(minutes) * time.Minute))
}

func atPtr(minutes int) *metav1.Time { t := at(minutes); return &t }

func step(i int32) *int32 { return &i }

// shopStages are the fixture's states: dev runs B after A (so it can roll back), staging soaks B, prod runs A
// with a canary of B at step 1 whose analysis measured error-rate on two tracks, one value failing and one
// missing.
func shopStages() []ferryv1.StageStatus {
	promoted := func(d, commit string, minutes int, approver, pr string) ferryv1.StageHistoryEntry {
		return ferryv1.StageHistoryEntry{Digest: d, CommitSHA: commit, Time: at(minutes), Approver: approver,
			Signers: []string{"release-team"}, Outcome: ferryv1.OutcomePromoted, PullRequestURL: pr}
	}
	var ms []ferryv1.Measurement
	for i, v := range []string{"0.002", "0.004", "0.03", ""} {
		verdict, reason := "Pass", ""
		switch {
		case v == "":
			verdict, reason = "Inconclusive", "NoData"
		case v == "0.03":
			verdict, reason = "Fail", "AboveMax"
		}
		ms = append(ms,
			ferryv1.Measurement{Metric: "error-rate", Track: "canary", Step: step(0), Time: at(60 + i), Value: v, Verdict: verdict, Reason: reason},
			ferryv1.Measurement{Metric: "error-rate", Track: "baseline", Step: step(0), Time: at(60 + i), Value: "0.001", Verdict: "Pass"})
	}
	return []ferryv1.StageStatus{
		{Name: "dev", Phase: ferryv1.PhasePromoted, Digest: digestB, Since: atPtr(30), HealthySince: atPtr(30),
			History: []ferryv1.StageHistoryEntry{promoted(digestB, commitB, 30, "automatic", ""), promoted(digestA, commitA, 0, "automatic", "")}},
		{Name: "staging", Phase: ferryv1.PhaseSoaking, Digest: digestB, Since: atPtr(40),
			History: []ferryv1.StageHistoryEntry{promoted(digestB, commitB, 40, "automatic", "")}},
		{Name: "prod", Phase: ferryv1.PhaseCanary, Digest: digestA, InFlightDigest: digestB, Since: atPtr(59),
			PullRequest: &ferryv1.PullRequestStatus{Number: 7, URL: "http://127.0.0.1:3000/acme/shop-deploy/pulls/7",
				Digest: digestB, Approver: "alice"},
			Analysis: &ferryv1.AnalysisStatus{Digest: digestB, Phase: ferryv1.AnalysisRunning, Run: ferryv1.RunCanary,
				Step: step(0), Weight: 10, Taken: 4, Missing: 1, Budget: 3, Measurements: ms},
			History: []ferryv1.StageHistoryEntry{
				{Digest: digestX, Time: at(50), Outcome: ferryv1.OutcomeRejected, Reason: "pull request closed without merge"},
				promoted(digestA, commitA, 20, "alice", "http://127.0.0.1:3000/acme/shop-deploy/pulls/5")}},
	}
}

// createPromotion creates the sample Promotion under name with the given stage status, written through the
// status subresource as the controller does.
func createPromotion(t *testing.T, e *testenv.Env, ns, name string, stages []ferryv1.StageStatus, conditions ...metav1.Condition) *ferryv1.Promotion {
	t.Helper()
	return e.CreateSample(t, ns, name, stages, conditions...)
}

func readyCondition(status metav1.ConditionStatus, reason, message string) metav1.Condition {
	return metav1.Condition{Type: ferryv1.ConditionReady, Status: status, Reason: reason, Message: message, LastTransitionTime: at(0)}
}

// updateStatus changes a Promotion's status as the controller would.
func updateStatus(t *testing.T, e *testenv.Env, ns, name string, change func(*ferryv1.Promotion)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p ferryv1.Promotion
		if err := e.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
			return err
		}
		change(&p)
		return e.Client.Status().Update(context.Background(), &p)
	})
	if err != nil {
		t.Fatalf("updating the status of %s: %v", name, err)
	}
}

func getPromotion(t *testing.T, e *testenv.Env, ns, name string) *ferryv1.Promotion {
	t.Helper()
	var p ferryv1.Promotion
	if err := e.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// userClient is a client as `ferry dashboard` makes it from a kubeconfig: Ferry's types, SelfSubjectReview and
// watch support.
func userClient(t *testing.T, cfg *rest.Config) client.WithWatch {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := ferryv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := authenticationv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startDashboard serves a dashboard for namespace ns with the client of cfg on a loopback port, with its watch
// running, until the test ends.
func startDashboard(t *testing.T, cfg *rest.Config, ns string) (*Server, *httptest.Server) {
	t.Helper()
	c := userClient(t, cfg)
	srv, err := New(Options{Client: c, Namespace: ns, User: "test-user", Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	ts.Config.Handler = srv.Handler(ts.Listener.Addr())
	ts.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.RunEvents(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		ts.Close()
	})
	return srv, ts
}

type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// readOnlyUser is a user bound to a Role that may read and watch Promotions in ns, and nothing more.
func readOnlyUser(t *testing.T, e *testenv.Env, ns, name string) *rest.Config {
	t.Helper()
	return userWithVerbs(t, e, ns, name, "get", "list", "watch")
}

// userWithVerbs is a user bound to a Role that allows verbs on Promotions in ns, and nothing more.
func userWithVerbs(t *testing.T, e *testenv.Env, ns, name string, verbs ...string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "promotion-viewer", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{ferryv1.GroupVersion.Group}, Resources: []string{"promotions"},
			Verbs: verbs}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "promotion-viewer", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}}}
	for _, obj := range []client.Object{role, binding} {
		if err := e.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	return e.User(t, name)
}
