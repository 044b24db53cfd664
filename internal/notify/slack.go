package notify

import (
	"fmt"
	"strings"
)

// SlackText is the short line a person reads in Slack: what happened where, and the facts behind it. Every value
// that came from outside Ferry (messages, names, URLs) is escaped, so that it cannot ping a channel or forge a
// link.
func SlackText(m Message) string {
	var b strings.Builder
	where := m.Namespace + "/" + m.Promotion
	if m.Stage != "" {
		fmt.Fprintf(&b, "*%s* stage *%s*: %s", slackEscape(where), slackEscape(m.Stage), slackEscape(m.Event))
	} else {
		fmt.Fprintf(&b, "*%s*: %s", slackEscape(where), slackEscape(m.Event))
	}
	if m.Digest != "" {
		fmt.Fprintf(&b, " `%s`", slackEscape(shortDigest(m.Digest)))
	}
	if m.PreviousDigest != "" {
		fmt.Fprintf(&b, " (was `%s`)", slackEscape(shortDigest(m.PreviousDigest)))
	}
	if m.Message != "" {
		fmt.Fprintf(&b, "\n%s", slackEscape(m.Message))
	}
	var facts []string
	if m.Approver != "" {
		facts = append(facts, "approved by "+slackEscape(m.Approver))
	}
	if m.RequestedBy != "" {
		facts = append(facts, "requested by "+slackEscape(m.RequestedBy))
	}
	if m.Commit != "" {
		facts = append(facts, "commit `"+slackEscape(shortCommit(m.Commit))+"`")
	}
	if m.PullRequestURL != "" {
		facts = append(facts, "pull request "+slackEscape(m.PullRequestURL))
	}
	if len(facts) > 0 {
		fmt.Fprintf(&b, "\n%s", strings.Join(facts, " · "))
	}
	return b.String()
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to (<@here>, <url|text>, &amp;).
func slackEscape(s string) string { return slackEscaper.Replace(s) }

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// shortDigest keeps "sha256:" and 12 hex digits: enough to tell digests apart in a chat line.
func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
