// Package text bounds free text that Ferry writes where size is limited — status fields, events, Git trailers —
// so that a long error from a peer (a registry, a forge, a tenant's template) can never make a write fail.
package text

import (
	"strings"
	"unicode/utf8"
)

// Cut returns s if it is at most n bytes long, else its first bytes, cut at a rune boundary, followed by "…",
// n bytes in all at most.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	end := max(n-len("…"), 0)
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + "…"
}

// OneLine folds s onto one line (runs of white space become one space) and cuts it to n bytes.
func OneLine(s string, n int) string {
	return Cut(strings.Join(strings.Fields(s), " "), n)
}
