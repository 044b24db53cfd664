package scm

import (
	"context"
	"errors"
	"net/http"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

func (g *gitlabBackend) editBody(ctx context.Context, repo string, number int, body string) error {
	_, _, err := g.c.MergeRequests.UpdateMergeRequest(repo, number, &gitlab.UpdateMergeRequestOptions{
		Description: &body,
	}, gitlab.WithContext(ctx))
	return glErr(err)
}

// listComments reads the merge request's notes oldest first (GitLab's default is newest first) and leaves out
// system notes ("added 1 commit", …), which nobody wrote.
func (g *gitlabBackend) listComments(ctx context.Context, repo string, number, limit int) ([]Comment, error) {
	const pageSize = 100
	var out []Comment
	for page := 1; len(out) < limit; page++ {
		notes, resp, err := g.c.Notes.ListMergeRequestNotes(repo, number, &gitlab.ListMergeRequestNotesOptions{
			ListOptions: gitlab.ListOptions{Page: page, PerPage: pageSize},
			OrderBy:     gitlab.Ptr("created_at"), Sort: gitlab.Ptr("asc"),
		}, gitlab.WithContext(ctx))
		if err != nil {
			return nil, glErr(err)
		}
		for _, n := range notes {
			if n != nil && !n.System {
				out = append(out, Comment{ID: int64(n.ID), Author: n.Author.Username, Body: n.Body})
			}
		}
		if len(notes) < pageSize || resp == nil || resp.NextPage == 0 {
			break
		}
	}
	return out, nil
}

func (g *gitlabBackend) editComment(ctx context.Context, repo string, number int, id int64, body string) error {
	_, _, err := g.c.Notes.UpdateMergeRequestNote(repo, number, int(id), &gitlab.UpdateMergeRequestNoteOptions{
		Body: &body,
	}, gitlab.WithContext(ctx))
	return glErr(err)
}

// glStates maps Ferry's states to GitLab's pending|running|success|failed|canceled.
var glStates = map[CommitState]gitlab.BuildStateValue{
	CommitPending: gitlab.Pending, CommitSuccess: gitlab.Success, CommitFailure: gitlab.Failed, CommitError: gitlab.Failed,
}

// setStatus posts to /projects/:id/statuses/:sha with the context as the status name. GitLab keeps a status as
// a state machine and answers 400 "Cannot transition status via :enqueue from :pending" when asked for the state
// it is in: that is the state wanted, so it counts as set (only when the message names that state).
func (g *gitlabBackend) setStatus(ctx context.Context, repo, sha string, st CommitStatus) error {
	opts := &gitlab.SetCommitStatusOptions{State: glStates[st.State], Name: &st.Context, Description: &st.Description}
	if st.TargetURL != "" {
		opts.TargetURL = &st.TargetURL
	}
	_, resp, err := g.c.Commits.SetCommitStatus(repo, sha, opts, gitlab.WithContext(ctx))
	var er *gitlab.ErrorResponse
	if err != nil && resp != nil && resp.StatusCode == http.StatusBadRequest && errors.As(err, &er) &&
		strings.Contains(er.Message, "Cannot transition status") && strings.Contains(er.Message, "from :"+string(opts.State)) {
		return nil
	}
	return glErr(err)
}
