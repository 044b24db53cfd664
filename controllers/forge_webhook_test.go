package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/scm"
	"github.com/ferrycd/ferry/internal/scm/giteatest"
	"github.com/ferrycd/ferry/internal/testenv"
	"github.com/ferrycd/ferry/internal/webhook"
)

// giteaDeploy is a deploy repository on Gitea: owned by the platform team, written by Ferry's bot, approved by a
// release manager who merges Ferry's pull requests.
type giteaDeploy struct {
	g              *giteatest.Server
	owner, bot, rm giteatest.User
	repo           giteatest.Repo
}

func newGiteaDeploy(t *testing.T, g *giteatest.Server, files map[string]string) *giteaDeploy {
	t.Helper()
	ctx := t.Context()
	d := &giteaDeploy{g: g}
	suffix := fmt.Sprintf("%06d", rand.IntN(1_000_000))
	var err error
	for _, u := range []struct {
		to   *giteatest.User
		name string
	}{{&d.owner, "platform-" + suffix}, {&d.bot, "ferry-bot-" + suffix}, {&d.rm, "release-manager-" + suffix}} {
		if *u.to, err = g.CreateUser(ctx, u.name); err != nil {
			t.Fatalf("creating Gitea user %s: %v\n%s", u.name, err, g.Log())
		}
	}
	if d.repo, err = g.CreateRepo(ctx, d.owner, "Deploy"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{d.bot.Name, d.rm.Name} {
		if err := g.AddCollaborator(ctx, d.owner, d.repo, u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := g.PushBranch(ctx, d.owner, d.repo, "main", "main", files); err != nil {
		t.Fatalf("seeding main: %v", err)
	}
	return d
}

// addWebhook configures a Gitea webhook of the repository, as its owner would in its settings: pull request and
// push events, JSON, signed with secret.
func (d *giteaDeploy) addWebhook(t *testing.T, url, secret string) {
	t.Helper()
	c, err := d.g.Client(t.Context(), d.owner)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.CreateRepoHook(d.repo.Owner, d.repo.Name, gitea.CreateHookOption{
		Type:   gitea.HookTypeGitea,
		Config: map[string]string{"url": url, "content_type": "json", "secret": secret},
		Events: []string{"pull_request", "push"}, Active: true,
	}); err != nil {
		t.Fatalf("creating the Gitea webhook: %v", err)
	}
}

// merge is the release manager approving: once Gitea has checked the pull request can be merged, merge it.
func (d *giteaDeploy) merge(t *testing.T, number int64) {
	t.Helper()
	c, err := d.g.Client(t.Context(), d.rm)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, fmt.Sprintf("pull request #%d to be mergeable", number), func() (bool, string) {
		pr, _, err := c.GetPullRequest(d.repo.Owner, d.repo.Name, number)
		if err != nil {
			return false, err.Error()
		}
		return pr.Mergeable, "mergeability not checked yet"
	})
	ok, _, err := c.MergePullRequest(d.repo.Owner, d.repo.Name, number, gitea.MergePullRequestOption{Style: gitea.MergeStyleMerge})
	if err != nil || !ok {
		t.Fatalf("merging #%d as %s: ok=%v err=%v", number, d.rm.Name, ok, err)
	}
}

// serveForgeWebhook serves the forge endpoints of internal/webhook for r on a loopback port until the test ends,
// and returns their base URL.
func serveForgeWebhook(t *testing.T, r *PromotionReconciler, secret string) string {
	t.Helper()
	srv, err := webhook.NewServer("", webhook.Config{ForgeSecret: []byte(secret), ForgeChanged: r.ForgeChanged}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook server: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

// TestGiteaMergeWebhookEndsTheApprovalWait: with the approval poll an hour away, a release manager's merge on a
// real Gitea reaches Ferry through Gitea's signed webhook, and the stage goes past AwaitingApproval — only the
// webhook can explain it.
func TestGiteaMergeWebhookEndsTheApprovalWait(t *testing.T) {
	e := testenv.Need(t, env)
	g := giteatest.StartForTest(t)
	f := newPipelineFixture(t, e)
	d := newGiteaDeploy(t, g, map[string]string{
		"envs/dev/kustomization.yaml": "resources:\n  - deployment.yaml\nimages:\n  - name: " + f.stageReg.Host + "/dev/shop\n    newTag: \"0.9\"\n",
		"envs/dev/deployment.yaml":    deploymentYAML(f.stageReg.Host + "/dev/shop:0.9"),
	})
	r := startManager(t, Engines{Git: newGitEngine(t), NewSCM: scm.New}, func(r *PromotionReconciler) {
		r.ApprovalPollInterval = time.Hour
	})
	const secret = "gitea-webhook-secret-0123456789"
	d.addWebhook(t, serveForgeWebhook(t, r, secret)+webhook.ForgePathPrefix+"gitea", secret)

	ctx := context.Background()
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "git", Namespace: f.ns},
			Data: map[string][]byte{"username": []byte(d.bot.Name), "password": []byte(d.bot.Token)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "gitea", Namespace: f.ns}, Data: map[string][]byte{"token": []byte(d.bot.Token)}},
	} {
		if err := e.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	p := f.promotion()
	p.Spec.Interval = &metav1.Duration{Duration: time.Hour}
	p.Spec.Git = ferryv1.GitSpec{URL: g.URL + "/" + d.repo.FullName() + ".git", SecretRef: &ferryv1.LocalObjectReference{Name: "git"}}
	p.Spec.Stages[0].Approval = ferryv1.ApprovalSpec{Mode: ferryv1.ApprovalPullRequest, PullRequest: &ferryv1.PullRequestApproval{
		Provider: ferryv1.ProviderGitea, APIURL: g.URL, TokenSecretRef: ferryv1.SecretKeyReference{Name: "gitea"}}}
	f.pushRelease(t, "1.0.0", true)
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}

	var number int64
	eventually(t, "dev to await approval of its pull request", func() (bool, string) {
		got := getPromotion(t, e.Client, f.ns, p.Name)
		if len(got.Status.Stages) == 0 {
			return false, "no status yet"
		}
		st := got.Status.Stages[0]
		if st.Phase == ferryv1.PhaseAwaitingApproval && st.PullRequest != nil {
			number = st.PullRequest.Number
		}
		return number != 0, string(st.Phase) + ": " + st.Message + "; " + conditionState(got, ferryv1.ConditionReady)
	})
	d.merge(t, number)
	eventually(t, "the merge to be seen through the webhook", func() (bool, string) {
		st := getPromotion(t, e.Client, f.ns, p.Name).Status.Stages[0]
		approved := st.PullRequest != nil && st.PullRequest.Approver == d.rm.Name
		return st.Phase == ferryv1.PhaseSyncing && approved, string(st.Phase) + ": " + st.Message
	})
}

// TestForgeEventsWakeOnlyThePromotionsWaitingOnThem: a forge event names a repository, a branch and a pull
// request; it wakes the Promotions of that repository and branch whose pull request it is, and no others.
func TestForgeEventsWakeOnlyThePromotionsWaitingOnThem(t *testing.T) {
	waiting := func(url, branch string, number int64) *ferryv1.Promotion {
		p := &ferryv1.Promotion{Spec: ferryv1.PromotionSpec{Git: ferryv1.GitSpec{URL: url, Branch: branch}},
			Status: ferryv1.PromotionStatus{Stages: []ferryv1.StageStatus{{Name: "dev"}, {Name: "prod"}}}}
		if number != 0 {
			p.Status.Stages[1].PullRequest = &ferryv1.PullRequestStatus{Number: number}
		}
		return p
	}
	merged := webhook.ForgeChange{Repository: "acme/deploy", Branch: "main", PullRequest: 7}
	pushed := webhook.ForgeChange{Repository: "acme/deploy", Branch: "main"}
	for _, tc := range []struct {
		name   string
		p      *ferryv1.Promotion
		change webhook.ForgeChange
		want   bool
	}{
		{"its pull request merged", waiting("https://git.example.com/Acme/Deploy.git", "", 7), merged, true},
		{"another pull request", waiting("https://git.example.com/acme/deploy.git", "main", 8), merged, false},
		{"another branch", waiting("https://git.example.com/acme/deploy.git", "release", 7), merged, false},
		{"no pull request open", waiting("https://git.example.com/acme/deploy.git", "main", 0), merged, false},
		{"a push while one is open", waiting("git@git.example.com:acme/deploy.git", "main", 3), pushed, true},
		{"a push with none open", waiting("git@git.example.com:acme/deploy.git", "main", 0), pushed, false},
	} {
		if got := waitsOn(tc.p, tc.change); got != tc.want {
			t.Errorf("%s: waitsOn = %v, want %v", tc.name, got, tc.want)
		}
	}
	// The index files a Promotion under its repository's path, lower case, whatever form its URL takes.
	for _, url := range []string{"https://git.example.com/Acme/Deploy.git", "git@git.example.com:acme/deploy.git", "ssh://git@h:22/acme/deploy"} {
		if got := indexGitRepository(waiting(url, "", 0)); len(got) != 1 || got[0] != "acme/deploy" {
			t.Errorf("index of %s = %v", url, got)
		}
	}
}
