package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/scm"
	"github.com/ferrycd/ferry/internal/scm/giteatest"
	"github.com/ferrycd/ferry/internal/signature"
	"github.com/ferrycd/ferry/internal/signature/signaturetest"
)

// evidenceForge is the deploy repository of stagesFixture on a real Gitea of the test's own: Ferry's bot
// writes it and opens the pull requests for staging, which a release manager would merge.
type evidenceForge struct {
	srv        *giteatest.Server
	owner, bot giteatest.User
	repo       giteatest.Repo
}

func newEvidenceForge(t *testing.T, f *stagesFixture) *evidenceForge {
	t.Helper()
	ctx := context.Background()
	g := &evidenceForge{srv: giteatest.StartForTest(t)}
	var err error
	if g.owner, err = g.srv.CreateUser(ctx, "platform"); err != nil {
		t.Fatal(err)
	}
	if g.bot, err = g.srv.CreateUser(ctx, "ferry-bot"); err != nil {
		t.Fatal(err)
	}
	if g.repo, err = g.srv.CreateRepo(ctx, g.owner, "deploy"); err != nil {
		t.Fatal(err)
	}
	if err := g.srv.AddCollaborator(ctx, g.owner, g.repo, g.bot.Name); err != nil {
		t.Fatal(err)
	}
	// The same stages as the fixture's own Git server holds.
	files := map[string]string{
		"envs/dev/kustomization.yaml":  "resources:\n  - deployment.yaml\nimages:\n  - name: " + f.stageReg.Host + "/dev/shop\n    newTag: \"0.9\"\n",
		"envs/dev/deployment.yaml":     deploymentYAML(f.stageReg.Host + "/dev/shop:0.9"),
		"envs/staging/deployment.yaml": deploymentYAML(f.stageReg.Host + "/staging/shop:0.9"),
	}
	if _, err := g.srv.PushBranch(ctx, g.owner, g.repo, "main", "main", files); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "git", Namespace: f.ns}, Data: map[string][]byte{"username": []byte(g.bot.Name), "password": []byte(g.bot.Token)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "gitea", Namespace: f.ns}, Data: map[string][]byte{"token": []byte(g.bot.Token)}},
	} {
		if err := f.e.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// promotion is the fixture's dev → staging Promotion on the Gitea repository, dev soaking 2 s and staging
// approved by pull request.
func (g *evidenceForge) promotion(f *stagesFixture) *ferryv1.Promotion {
	p := f.promotion()
	p.Spec.Git = ferryv1.GitSpec{URL: g.srv.URL + "/" + g.repo.FullName() + ".git", SecretRef: &ferryv1.LocalObjectReference{Name: "git"}}
	p.Spec.Stages[0].Gates.Soak = &metav1.Duration{Duration: 2 * time.Second}
	p.Spec.Stages[1].Approval = ferryv1.ApprovalSpec{Mode: ferryv1.ApprovalPullRequest, PullRequest: &ferryv1.PullRequestApproval{
		Provider: ferryv1.ProviderGitea, APIURL: g.srv.URL, TokenSecretRef: ferryv1.SecretKeyReference{Name: "gitea"}}}
	p.Spec.Verification.RequiredAttestations = []ferryv1.AttestationRequirement{{PredicateType: signature.PredicateSLSAProvenanceV1}}
	return p
}

// pushAttestedRelease pushes a release signed by the fixture's key, with SLSA v1 provenance and an SPDX SBOM.
func pushAttestedRelease(t *testing.T, f *stagesFixture, tag string) name.Digest {
	t.Helper()
	d := f.pushRelease(t, tag, true)
	slsa := `{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1","externalParameters":{},
		"resolvedDependencies":[{"uri":"git+https://github.com/acme/shop@refs/tags/v` + tag + `","digest":{"gitCommit":"0123456789abcdef0123456789abcdef01234567"}}]},
		"runDetails":{"builder":{"id":"https://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v` + tag + `"}}}`
	spdx := `{"spdxVersion":"SPDX-2.3","packages":[{"name":"a"},{"name":"b"}]}`
	signaturetest.PushLegacy(t, d, "att",
		f.signer.LegacyAttestation(t, signaturetest.StatementWith(d, signature.PredicateSLSAProvenanceV1, slsa)),
		f.signer.LegacyAttestation(t, signaturetest.StatementWith(d, signature.PredicateSPDX, spdx)))
	return d
}

// pull reads a pull request and Ferry's evidence comments on it as the owner.
func (g *evidenceForge) pull(t *testing.T, number int64) (*gitea.PullRequest, []string) {
	t.Helper()
	c, err := g.srv.Client(context.Background(), g.owner)
	if err != nil {
		t.Fatal(err)
	}
	pr, _, err := c.GetPullRequest(g.repo.Owner, g.repo.Name, number)
	if err != nil {
		t.Fatal(err)
	}
	comments, _, err := c.ListIssueComments(g.repo.Owner, g.repo.Name, number, gitea.ListIssueCommentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var evidence []string
	for _, cm := range comments {
		if strings.Contains(cm.Body, scm.EvidenceMarker) {
			evidence = append(evidence, cm.Body)
		}
	}
	return pr, evidence
}

// status reads the combined status of commit sha as the owner.
func (g *evidenceForge) status(t *testing.T, sha string) *gitea.CombinedStatus {
	t.Helper()
	c, err := g.srv.Client(context.Background(), g.owner)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := c.GetCombinedStatus(g.repo.Owner, g.repo.Name, sha)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestApprovalPullRequestShowsEvidence: on the real API server and a real Gitea, the pull request that asks for
// staging's approval states what Ferry verified — the signer and the policy, the attestations' predicate types,
// builder and SBOM — and how dev ran the digest (soak, verdict, its commit), in the description and in one Ferry
// comment; the head commit carries Ferry's success status. When a newer digest supersedes it, its status turns to
// failure and the comment says why, still one comment.
func TestApprovalPullRequestShowsEvidence(t *testing.T) {
	f := newStagesFixture(t)
	g := newEvidenceForge(t, f)
	ctx := context.Background()
	v1 := pushAttestedRelease(t, f, "1.0.0").DigestStr()
	p := g.promotion(f)
	if err := f.e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}

	var st ferryv1.StageStatus
	eventually(t, "staging to await approval of "+v1, func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		if len(got.Status.Stages) < 2 {
			return false, "no stage status yet"
		}
		st = got.Status.Stages[1]
		ok := st.Phase == ferryv1.PhaseAwaitingApproval && st.PullRequest != nil && st.PullRequest.Digest == v1 && st.PullRequest.ReportedHash != ""
		return ok, got.Status.Summary + "; dev: " + got.Status.Stages[0].Message + "; staging: " + st.Message
	})
	if ev := st.Evidence; ev == nil || ev.Digest != v1 || len(ev.Signers) != 1 || ev.Signers[0].Key != "release" || len(ev.Attestations) != 2 ||
		ev.Policy == nil || ev.Policy.Threshold != 1 {
		t.Fatalf("staging evidence in status: %+v", st.Evidence)
	}
	dev := getPromotion(t, f.e.Client, f.ns, p.Name).Status.Stages[0]
	devCommit := dev.History[0].CommitSHA
	shown := []string{"signed by `key release (sha256:", "key `release`", "at least 1 distinct signer",
		"required attestations: `" + signature.PredicateSLSAProvenanceV1 + "`",
		"- `" + signature.PredicateSLSAProvenanceV1 + "` signed by `release`", "builder `https://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v1.0.0`",
		"source `git+https://github.com/acme/shop@refs/tags/v1.0.0` at commit `0123456789abcdef0123456789abcdef01234567`",
		"- `" + signature.PredicateSPDX + "`", "SBOM `SPDX-2.3` listing 2 packages",
		"Stage `dev` before this one", "- soaked ", "canary/analysis: `no canary or analysis configured`",
		fmt.Sprintf("[`%s`](%s/%s/commit/%s)", devCommit[:12], g.srv.URL, g.repo.FullName(), devCommit)}
	pr, comments := g.pull(t, st.PullRequest.Number)
	for _, want := range shown {
		if !strings.Contains(pr.Body, want) {
			t.Errorf("description lacks %q", want)
		}
		if len(comments) != 1 || !strings.Contains(comments[0], want) {
			t.Errorf("the one evidence comment lacks %q (%d comments)", want, len(comments))
		}
	}
	if t.Failed() {
		t.Fatalf("description:\n%s\ncomments:\n%s", pr.Body, strings.Join(comments, "\n---\n"))
	}
	if !strings.Contains(comments[0], "**Ferry: success** — verified: 1 signer(s), attestations slsa.dev/provenance/v1, spdx.dev/Document") {
		t.Errorf("comment verdict:\n%s", comments[0])
	}
	if s := g.status(t, st.PullRequest.HeadSHA); s.State != gitea.StatusSuccess || len(s.Statuses) != 1 ||
		s.Statuses[0].Context != "ferry/staging" || s.Statuses[0].TargetURL != st.PullRequest.URL {
		t.Fatalf("status of the head %s: %+v", st.PullRequest.HeadSHA, s)
	}

	// A newer release supersedes it: closed, its status failure, its one comment saying so.
	old := *st.PullRequest
	v2 := pushAttestedRelease(t, f, "2.0.0").DigestStr()
	pokes := 0
	eventually(t, "staging to await approval of "+v2, func() (bool, string) {
		// Poke now and then rather than wait for the 30 s approval poll: the source is asked again only once
		// spec.interval (1 s) has passed since the last discovery.
		if pokes++; pokes%10 == 1 {
			annotate(t, f.e.Client, f.ns, p.Name, "test.ferry.dev/poke", fmt.Sprint(pokes))
		}
		got := getPromotion(t, f.e.Client, f.ns, p.Name)
		st = got.Status.Stages[1]
		return st.PullRequest != nil && st.PullRequest.Digest == v2 && st.PullRequest.ReportedHash != "",
			got.Status.Summary + "; dev: " + got.Status.Stages[0].Message + "; staging: " + st.Message
	})
	pr, comments = g.pull(t, old.Number)
	if pr.State != gitea.StateClosed || len(comments) != 1 || !strings.Contains(comments[0], "**Ferry: failure** — superseded by "+v2) {
		t.Fatalf("superseded pull request: state %s, evidence comments %q", pr.State, comments)
	}
	if s := g.status(t, old.HeadSHA); s.State != gitea.StatusFailure || !strings.Contains(s.Statuses[0].Description, "superseded by") {
		t.Fatalf("status of the superseded head: %+v", s)
	}
	if s := g.status(t, st.PullRequest.HeadSHA); s.State != gitea.StatusSuccess {
		t.Fatalf("status of the new head: %+v", s)
	}
}
