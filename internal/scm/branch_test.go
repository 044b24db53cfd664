package scm

import (
	"errors"
	"strings"
	"testing"
)

const (
	digestA = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	digestB = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func TestBranchName(t *testing.T) {
	got, err := BranchName("shop-web", "prod.eu", digestA)
	if err != nil {
		t.Fatal(err)
	}
	if want := "ferry/shop-web/prod.eu/0123456789ab"; got != want {
		t.Fatalf("BranchName = %q, want %q", got, want)
	}
	parts, err := ParseBranchName(got)
	if err != nil {
		t.Fatal(err)
	}
	if parts != (BranchParts{Promotion: "shop-web", Stage: "prod.eu", ShortDigest: "0123456789ab"}) {
		t.Fatalf("ParseBranchName = %+v", parts)
	}
	sha512 := "sha512:" + strings.Repeat("ab", 64)
	if got, err := BranchName("p", "s", sha512); err != nil || got != "ferry/p/s/abababababab" {
		t.Fatalf("sha512: %q, %v", got, err)
	}
}

func TestBranchNameRejects(t *testing.T) {
	long := strings.Repeat("a", 64)
	cases := []struct{ name, promotion, stage, digest, field string }{
		{"empty promotion", "", "prod", digestA, "promotion"},
		{"promotion too long", long, "prod", digestA, "promotion"},
		{"stage too long", "web", long, digestA, "stage"},
		{"uppercase", "Web", "prod", digestA, "promotion"},
		{"slash", "web/x", "prod", digestA, "promotion"},
		{"space", "web", "pr od", digestA, "stage"},
		{"leading dash", "-web", "prod", digestA, "promotion"},
		{"trailing dot", "web", "prod.", digestA, "stage"},
		{"double dot", "web", "a..b", digestA, "stage"},
		{"no algorithm", "web", "prod", strings.TrimPrefix(digestA, "sha256:"), "digest"},
		{"md5", "web", "prod", "md5:0123456789abcdef0123456789abcdef", "digest"},
		{"short hex", "web", "prod", "sha256:0123", "digest"},
		{"uppercase hex", "web", "prod", strings.ToUpper(digestA[:7]) + strings.ToUpper(digestA[7:]), "digest"},
		{"not hex", "web", "prod", "sha256:" + strings.Repeat("g", 64), "digest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := BranchName(c.promotion, c.stage, c.digest)
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != c.field {
				t.Fatalf("BranchName(%q, %q, %q) error = %v, want an InputError on %q", c.promotion, c.stage, c.digest, err, c.field)
			}
		})
	}
}

func TestValidateBranch(t *testing.T) {
	for _, ok := range []string{"main", "release/1.2", "ferry/a/b/0123456789ab", "feature_x-1"} {
		if err := ValidateBranch("branch", ok); err != nil {
			t.Errorf("ValidateBranch(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a..b", "a b", "a~b", "a^b", "a:b", "a?b", "a*b", "a[b", `a\b`, "a//b",
		"/a", "a/", "-a", "a.", ".a", "a/.b", "a.lock", "a/b.lock/c", "@", "a@{b", "a\x00b", "a\x7fb",
		"\xff", strings.Repeat("x", MaxBranchLength+1)} {
		if err := ValidateBranch("branch", bad); err == nil {
			t.Errorf("ValidateBranch(%q) accepted a bad name", bad)
		}
	}
}

func TestParseBranchNameRejects(t *testing.T) {
	for _, bad := range []string{"main", "ferry/", "ferry/a/b", "ferry/a/b/c/0123456789ab", "ferry/a/b/0123456789AB",
		"ferry/a/b/0123456789a", "ferry/A/b/0123456789ab", "xferry/a/b/0123456789ab"} {
		if _, err := ParseBranchName(bad); err == nil {
			t.Errorf("ParseBranchName(%q) accepted it", bad)
		}
	}
}

// FuzzBranchName checks that every name BranchName makes is a valid git branch that parses back to
// its inputs, and that ParseBranchName only accepts what BranchName could have made.
func FuzzBranchName(f *testing.F) {
	f.Add("shop-web", "prod", digestA)
	f.Add("a.b", "c-d", "sha512:"+strings.Repeat("0", 128))
	f.Add("", "prod", digestB)
	f.Add("web", "prod", "sha256:"+strings.Repeat("Z", 64))
	f.Add("ferry", "x/y", digestA)
	f.Fuzz(func(t *testing.T, promotion, stage, digest string) {
		name, err := BranchName(promotion, stage, digest)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an InputError", err)
			}
			return
		}
		if err := ValidateBranch("branch", name); err != nil {
			t.Fatalf("BranchName made invalid branch %q: %v", name, err)
		}
		parts, err := ParseBranchName(name)
		if err != nil {
			t.Fatalf("ParseBranchName(%q): %v", name, err)
		}
		short, _ := ShortDigest(digest)
		if parts.Promotion != promotion || parts.Stage != stage || parts.ShortDigest != short {
			t.Fatalf("round trip of %q gave %+v", name, parts)
		}
	})
}

// FuzzParseBranchName feeds arbitrary branch names (they come back from forges) to the parser: it
// must never panic, and anything it accepts must rebuild to the same name.
func FuzzParseBranchName(f *testing.F) {
	f.Add("ferry/web/prod/0123456789ab")
	f.Add("ferry/web/prod/0123456789a")
	f.Add("ferry//prod/0123456789ab")
	f.Add("main")
	f.Fuzz(func(t *testing.T, name string) {
		parts, err := ParseBranchName(name)
		if err != nil {
			return
		}
		rebuilt := BranchPrefix + parts.Promotion + "/" + parts.Stage + "/" + parts.ShortDigest
		if rebuilt != name {
			t.Fatalf("ParseBranchName(%q) = %+v, which rebuilds to %q", name, parts, rebuilt)
		}
		if err := ValidateBranch("branch", name); err != nil {
			t.Fatalf("ParseBranchName accepted %q, an invalid branch: %v", name, err)
		}
	})
}

func FuzzValidateRepo(f *testing.F) {
	for _, s := range []string{"owner/name", "group/sub/name", "/name", "a//b", "a/b?c", "a/../b", "a/b c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, repo string) {
		parts, err := validateRepo(repo, true)
		if err != nil {
			return
		}
		if strings.Join(parts, "/") != repo || len(parts) < 2 {
			t.Fatalf("validateRepo(%q) = %q", repo, parts)
		}
		for _, p := range parts {
			if p == "" || p == ".." || strings.ContainsAny(p, "?#% \t\n") {
				t.Fatalf("validateRepo(%q) accepted segment %q", repo, p)
			}
		}
	})
}
