package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// TestMergeThatPinsAnotherDigestIsNotSynced: the pull request's head is the commit Ferry pushed, but the merge
// resolved a conflict in favour of a digest someone pinned by hand on main meanwhile. The merge result is not
// what was approved: the stage fails naming the pull request, the file and the digest found, and the cluster
// keeps running the last good digest. A clean merge before it is synced as usual.
func TestMergeThatPinsAnotherDigestIsNotSynced(t *testing.T) {
	f, forge, p, v1 := startPullRequestApproval(t)

	pr := f.awaitPullRequest(t, p.Name, v1)
	clean := f.git.Merge("acme/deploy", "refs/heads/main", "main", pr.Branch, "Merge")
	forge.merge(pr.Branch, pr.HeadSHA, clean, "release-manager")
	annotate(t, f.e.Client, f.ns, p.Name, "test.ferry.dev/poke", "merged-1") // rather than wait for the 30 s approval poll
	if got := f.waitStages(t, p.Name, v1, ferryv1.PhasePromoted, "dev"); got.Status.Stages[0].LastCommit != clean {
		t.Fatalf("synced %s, want the merge %s", got.Status.Stages[0].LastCommit, clean)
	}

	v2 := f.pushRelease(t, "2.0.0", true).DigestStr()
	pr = f.awaitPullRequest(t, p.Name, v2)
	const file, other = "envs/dev/kustomization.yaml", "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
	kust, _ := f.git.File("acme/deploy", "main", file)
	f.git.Commit("acme/deploy", "main", map[string]string{file: strings.Replace(kust, v1, other, 1)}, "pin by hand")
	dir := f.git.RepoDir("acme/deploy")
	merge := f.git.Git(dir, "commit-tree", "refs/heads/main^{tree}", "-p", "refs/heads/main", "-p", "refs/heads/"+pr.Branch,
		"-m", "Merge, conflict resolved for main")
	f.git.Git(dir, "update-ref", "refs/heads/main", merge)
	forge.merge(pr.Branch, pr.HeadSHA, merge, "release-manager")
	annotate(t, f.e.Client, f.ns, p.Name, "test.ferry.dev/poke", "merged-2")

	names := []string{pr.URL, file, other, v2}
	eventually(t, "the merge to be refused", func() (bool, string) {
		st := getPromotion(t, f.e.Client, f.ns, p.Name).Status.Stages[0]
		return st.Phase == ferryv1.PhaseFailed && len(st.History) > 0 && st.History[0].Digest == v2 &&
			containsAll(st.History[0].Reason, names...), string(st.Phase) + ": " + st.Message
	})
	// Ready says why the stage failed (each change of Ready is an event). It follows the stage's phase by one
	// status write (a checkpoint records the phase mid-reconcile; conditions are computed at its end), so it is
	// waited for rather than read with the phase.
	eventually(t, "Ready False ("+ReasonStageFailed+")", func() (bool, string) {
		c := apimeta.FindStatusCondition(getPromotion(t, f.e.Client, f.ns, p.Name).Status.Conditions, ferryv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == ReasonStageFailed, fmt.Sprintf("%+v", c)
	})
	eventually(t, "a "+ReasonStageFailed+" event naming "+strings.Join(names, ", "), func() (bool, string) {
		note := eventNote(t, f.e.Client, f.ns, p.Name, ReasonStageFailed)
		return containsAll(note, names...), note
	})
	eventually(t, "a "+ReasonMergeNotPinned+" event naming "+strings.Join(names, ", "), func() (bool, string) {
		note := eventNote(t, f.e.Client, f.ns, p.Name, ReasonMergeNotPinned)
		return containsAll(note, names...), note
	})
	if st := getPromotion(t, f.e.Client, f.ns, p.Name).Status.Stages[0]; st.Digest != v1 || st.LastCommit != clean {
		t.Errorf("stage runs %s at %s, want %s at %s", st.Digest, st.LastCommit, v1, clean)
	}
	if img := f.deploymentImage(t, f.dev); !strings.HasSuffix(img, "@"+v1) {
		t.Errorf("dev runs %s, want it left at %s", img, v1)
	}
}

// awaitPullRequest waits for the first stage to await approval of digest and returns its pull request.
func (f *stagesFixture) awaitPullRequest(t *testing.T, name, digest string) ferryv1.PullRequestStatus {
	t.Helper()
	var pr ferryv1.PullRequestStatus
	eventually(t, "the approval pull request for "+digest, func() (bool, string) {
		got := getPromotion(t, f.e.Client, f.ns, name)
		if len(got.Status.Stages) == 0 {
			return false, "no status yet"
		}
		st := got.Status.Stages[0]
		if st.PullRequest == nil || st.Phase != ferryv1.PhaseAwaitingApproval || st.PullRequest.Digest != digest {
			return false, string(st.Phase) + ": " + st.Message
		}
		pr = *st.PullRequest
		return pr.HeadSHA != "", "no head recorded"
	})
	return pr
}

// eventNote joins the notes of the Promotion's events with reason.
func eventNote(t *testing.T, c client.Client, ns, name, reason string) string {
	t.Helper()
	var list eventsv1.EventList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, ev := range list.Items {
		if ev.Regarding.Name == name && ev.Reason == reason {
			notes = append(notes, ev.Note)
		}
	}
	return strings.Join(notes, "\n")
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
