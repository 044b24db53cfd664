package promotionctl

import (
	"regexp"
	"strings"
	"testing"
)

var (
	digestA = "sha256:" + strings.Repeat("a", 64)
	digestB = "sha256:" + strings.Repeat("b", 64)
)

func TestParseDigestArg(t *testing.T) {
	for in, want := range map[string]string{
		digestB:                    digestB,
		strings.ToUpper(digestB):   digestB,
		" " + digestB[7:] + "\n":   digestB,
		"sha256:0123456789ab":      "sha256:0123456789ab",
		"0123456789AB":             "sha256:0123456789ab",
		"SHA256:0123456789abcdef0": "sha256:0123456789abcdef0",
	} {
		got, err := ParseDigestArg("--to", in)
		if err != nil || got.prefix != want || got.what != "--to" {
			t.Errorf("parseDigestArg(%q) = %+v, %v, want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "sha256:", "0123456789a", "sha256:0123456789a", "md5:0123456789ab",
		"sha256:0123456789ab:", "sha256:0123456789-b", digestB + "b", "image@" + digestB} {
		if got, err := ParseDigestArg("--to", in); err == nil || !strings.HasPrefix(err.Error(), "--to ") {
			t.Errorf("parseDigestArg(%q) = %+v, %v: want an error naming --to", in, got, err)
		}
	}
}

func FuzzParseDigestArg(f *testing.F) {
	for _, seed := range []string{digestA, digestB[7:19], "sha256:", "SHA256:ABCDEF012345", "sha512:00", ":", "\x00",
		"sha256:" + strings.Repeat("0", 65), "ß" + strings.Repeat("a", 12)} {
		f.Add(seed)
	}
	hex := regexp.MustCompile(`^sha256:[0-9a-f]{12,64}$`)
	f.Fuzz(func(t *testing.T, in string) {
		d, err := ParseDigestArg("DIGEST", in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "DIGEST ") {
				t.Fatalf("error does not name the argument: %v", err)
			}
			return
		}
		if !hex.MatchString(d.prefix) {
			t.Fatalf("parseDigestArg(%q) accepted %q", in, d.prefix)
		}
		// A parsed digest always finds itself, and only digests it prefixes.
		full := d.prefix + strings.Repeat("0", len("sha256:")+64-len(d.prefix))
		if got, err := d.Resolve([]string{full, "", "sha256:zz"}); err != nil || got != full {
			t.Fatalf("resolve(%q) = %q, %v", full, got, err)
		}
	})
}
