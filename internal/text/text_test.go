package text

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCut(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789abc", 10, "0123456…"},
		{"ééééé", 6, "é…"}, // "é" is 2 bytes, "…" 3: never half a rune
		{"abc", 0, "…"},
	} {
		if got := Cut(tc.in, tc.n); got != tc.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	if got := OneLine("a\nb\t\tc  d\r\n", 100); got != "a b c d" {
		t.Errorf("OneLine = %q", got)
	}
}

func FuzzCut(f *testing.F) {
	f.Add("ééé€€€abc", 5)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 4 || n > 1<<16 {
			return
		}
		got := Cut(s, n)
		if len(got) > n {
			t.Fatalf("Cut(%q, %d) is %d bytes", s, n, len(got))
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Cut(%q, %d) = %q is not valid UTF-8", s, n, got)
		}
		if len(s) <= n && got != s || len(s) > n && !strings.HasPrefix(s, strings.TrimSuffix(got, "…")) {
			t.Fatalf("Cut(%q, %d) = %q", s, n, got)
		}
	})
}
