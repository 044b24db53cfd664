package gitops

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/ferrycd/ferry/internal/text"
	"github.com/ferrycd/ferry/internal/tmpl"
)

// DefaultMessageTemplate is used when a Request has none.
const DefaultMessageTemplate = `{{if .Rollback}}Roll back{{else}}Promote{{end}} {{.Image}} to {{.Digest}}` +
	`{{if .Stage}} in {{.Stage}}{{end}}`

// Trailer keys Ferry writes into every commit; together with the file content they make a pin recognisable.
const (
	TrailerPromotion      = "Ferry-Promotion"
	TrailerStage          = "Ferry-Stage"
	TrailerDigest         = "Ferry-Digest"
	TrailerPreviousDigest = "Ferry-Previous-Digest"
	TrailerSource         = "Ferry-Source"
	// TrailerRollback marks a rollback and names who asked for it ("ferry" when Ferry rolled back on its own);
	// commits made before it named anyone say "true". Any non-empty value marks a rollback.
	TrailerRollback = "Ferry-Rollback"
	// TrailerRollbackReason says why Ferry rolled back on its own, for example the failing metric and its values.
	TrailerRollbackReason = "Ferry-Rollback-Reason"
)

// MessageData is what a commit message template sees.
type MessageData struct {
	Promotion, Stage, Image, Digest, PreviousDigest, Source string
	Rollback                                                bool
	// RollbackBy names who asked for a rollback: a person, or Ferry on its own ("ferry").
	RollbackBy string
	// RollbackReason says why a rollback was made, when Ferry made it on its own.
	RollbackReason string
}

// rollbackBy is the value of the Ferry-Rollback trailer: who asked for the rollback, folded onto one line (a
// name with a line break would otherwise make every commit of the rollback fail), or "unknown".
func rollbackBy(who string) string {
	if who = text.OneLine(who, maxRequesterTrailer); who == "" {
		return "unknown"
	}
	return who
}

// maxRequesterTrailer bounds the name in the Ferry-Rollback trailer.
const maxRequesterTrailer = 256

var trailerKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)

// maxMessage bounds the rendered commit message template, before the trailers: a subject and a body of a few
// paragraphs. Templates are written by tenants and rendered by the shared controller.
const maxMessage = 8 << 10

// messageTemplate bounds commit message templates (see package tmpl): text of at most tmpl.DefaultMaxText, no
// range, template, define or block, and a rendered message of at most maxMessage bytes.
var messageTemplate = tmpl.Options{What: "commit message", MaxOutput: maxMessage}

func parseTemplate(text string) (*template.Template, error) {
	if text == "" {
		text = DefaultMessageTemplate
	}
	t, err := tmpl.Parse("message", text, messageTemplate)
	if err != nil {
		return nil, fmt.Errorf("parsing message template: %w", err)
	}
	return t, nil
}

// message renders the template and appends the trailers. A template that fails to render, renders more than
// maxMessage bytes or nothing, or a trailer that would span lines is an error: nothing gets committed.
func message(t *template.Template, d MessageData, extra map[string]string) (string, error) {
	out, err := tmpl.Execute(t, d, messageTemplate)
	if err != nil {
		return "", fmt.Errorf("rendering message template: %w", err)
	}
	body := strings.TrimSpace(out)
	if body == "" {
		return "", errors.New("rendering message template: the message is empty")
	}
	trailers, err := trailerLines(d, extra)
	if err != nil {
		return "", err
	}
	return body + "\n\n" + strings.Join(trailers, "\n") + "\n", nil
}

func trailerLines(d MessageData, extra map[string]string) ([]string, error) {
	type kv struct{ k, v string }
	list := []kv{{TrailerPromotion, d.Promotion}, {TrailerStage, d.Stage}, {TrailerDigest, d.Digest},
		{TrailerPreviousDigest, d.PreviousDigest}, {TrailerSource, d.Source}}
	if d.Rollback {
		list = append(list, kv{TrailerRollback, rollbackBy(d.RollbackBy)}, kv{TrailerRollbackReason, d.RollbackReason})
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !trailerKey.MatchString(k) || strings.HasPrefix(strings.ToLower(k), "ferry-") {
			return nil, fmt.Errorf("trailer key %q must be letters, digits and dashes, and not start with Ferry-", k)
		}
		list = append(list, kv{k, extra[k]})
	}
	var lines []string
	for _, t := range list {
		if strings.ContainsAny(t.v, "\r\n") {
			return nil, fmt.Errorf("trailer %s must be a single line", t.k)
		}
		if t.v = strings.TrimSpace(t.v); t.v != "" {
			lines = append(lines, t.k+": "+t.v)
		}
	}
	return lines, nil
}

// trailers reads the trailer block (the last paragraph made only of "Key: value" lines) of a commit message.
func trailers(msg string) map[string]string {
	paras := strings.Split(strings.TrimSpace(strings.ReplaceAll(msg, "\r\n", "\n")), "\n\n")
	out := map[string]string{}
	if len(paras) < 2 {
		return out
	}
	for _, line := range strings.Split(paras[len(paras)-1], "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok || !trailerKey.MatchString(k) {
			return map[string]string{}
		}
		out[k] = strings.TrimSpace(v)
	}
	return out
}
