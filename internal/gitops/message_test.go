package gitops

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/tmpl"
)

var messageData = MessageData{Promotion: "team-a/app", Stage: "prod", Image: "ghcr.io/acme/app",
	Digest: "sha256:" + strings.Repeat("a", 64), Source: "ghcr.io/acme/app:v2"}

func TestMessageRendersTemplateAndTrailers(t *testing.T) {
	tp, err := parseTemplate("")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := message(tp, messageData, map[string]string{"Change-Id": "I123"})
	if err != nil {
		t.Fatal(err)
	}
	want := "Promote ghcr.io/acme/app to " + messageData.Digest + " in prod\n\n" +
		"Ferry-Promotion: team-a/app\nFerry-Stage: prod\nFerry-Digest: " + messageData.Digest +
		"\nFerry-Source: ghcr.io/acme/app:v2\nChange-Id: I123\n"
	if msg != want {
		t.Fatalf("message:\n%s\nwant:\n%s", msg, want)
	}
}

// The template bombs stop at parsing, before anything is fetched, edited or committed.
func TestMessageTemplateBombsAreRefused(t *testing.T) {
	for name, text := range map[string]string{
		"range":           `{{range 100000000000}}x{{end}}`,
		"define":          `{{define "m"}}{{template "m"}}{{end}}{{template "m"}}`,
		"printf width":    `{{printf "%0999999d" (printf "%0999999d" 0)}}`,
		"doubling":        `{{$a := .Image}}` + strings.Repeat(`{{$a = printf "%s%s" $a $a}}`, 40) + `{{$a}}`,
		"too long a text": strings.Repeat("x", tmpl.DefaultMaxText+1),
	} {
		if _, err := parseTemplate(text); err == nil || !strings.HasPrefix(err.Error(), "parsing message template: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A message template that follows the rules but writes a lot stops at maxMessage, with no message.
func TestMessageIsCapped(t *testing.T) {
	long := messageData
	long.Source = strings.Repeat("s", 20<<10)
	for name, c := range map[string]struct {
		text string
		d    MessageData
	}{
		"printf of a long field": {`{{printf "%s" .Source}}`, long},
		"a long field":           {`{{.Source}}`, long},
		"padding":                {strings.Repeat(`{{printf "%64s" .Stage}}`, maxMessage/64+1), messageData},
		"text":                   {strings.Repeat("x", maxMessage+1), messageData},
	} {
		tp, err := parseTemplate(c.text)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		msg, err := message(tp, c.d, nil)
		var le *tmpl.LimitError
		if msg != "" || !errors.As(err, &le) || err.Error() != "rendering message template: rendered commit message is longer than 8 KiB" {
			t.Errorf("%s: message = %d bytes, %v", name, len(msg), err)
		}
	}
	tp, err := parseTemplate(strings.Repeat("x", maxMessage))
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := message(tp, messageData, nil); err != nil || !strings.HasPrefix(msg, strings.Repeat("x", maxMessage)+"\n\n") {
		t.Fatalf("a message of exactly %d bytes: %d bytes, %v", maxMessage, len(msg), err)
	}
}

// Pin with a bomb or an overlong message pushes nothing.
func TestPinWithABoundedTemplateChangesNothing(t *testing.T) {
	for text, want := range map[string]string{
		`{{range 100000000000}}x{{end}}`:                "parsing message template: range is not allowed",
		strings.Repeat(`{{printf "%64s" .Image}}`, 200): "rendering message template: rendered commit message is longer than 8 KiB",
	} {
		s, url := seed(t)
		tip := s.Head("fleet", "main")
		req := request(url, "prod", digestA)
		req.MessageTemplate = text
		if _, err := newEngine(t).Pin(context.Background(), req); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Pin: %v, want %q", err, want)
		}
		assertUntouched(t, s, tip)
	}
}
