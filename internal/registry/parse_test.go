package registry

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestParseNextLink(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:5000/v2/app/tags/list?n=10")
	for header, want := range map[string]string{
		"": "",
		`</v2/app/tags/list?n=10&last=b>; rel="next"`:                          "/v2/app/tags/list?n=10&last=b",
		`<http://127.0.0.1:5000/v2/app/tags/list?last=c>; rel="next"`:          "/v2/app/tags/list?last=c",
		`</v2/app/tags/list?last=a>; rel="prev", </v2/app/x?last=d>; rel=next`: "",
		`</v2/app/tags/list?last=a>; rel="prev"`:                               "",
	} {
		got, err := parseNextLink(header, base)
		if err != nil || got != want {
			t.Errorf("parseNextLink(%q) = %q, %v; want %q", header, got, err, want)
		}
	}
	for _, bad := range []string{
		`<http://10.1.2.3/v2/app/tags/list>; rel="next"`, // another host: never followed
		`</other/path>; rel="next"`,
		`/v2/no/brackets; rel="next"`,
	} {
		if got, err := parseNextLink(bad, base); err == nil {
			t.Errorf("parseNextLink(%q) = %q, want an error", bad, got)
		}
	}
}

func FuzzParseNextLink(f *testing.F) {
	for _, s := range []string{`</v2/a/tags/list?last=x>; rel="next"`, `<http://evil/v2/>; rel="next"`, "<", `<%zz>; rel="next"`} {
		f.Add(s)
	}
	base, _ := url.Parse("https://registry.example.com/v2/a/tags/list")
	f.Fuzz(func(t *testing.T, header string) {
		got, err := parseNextLink(header, base)
		if err == nil && got != "" && !strings.HasPrefix(got, "/v2/") {
			t.Fatalf("followed %q out of the registry API", got)
		}
	})
}

func FuzzParseReferences(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:5000/app@sha256:" + strings.Repeat("a", 64), "registry.example.com/team/app:v1", "app",
		"localhost/app@sha256:abc", "UPPER/case", "a/b:c@sha256:" + strings.Repeat("0", 64), "", " x", "[::1]:5000/a",
	} {
		f.Add(s)
	}
	o := Options{Insecure: []string{"registry.internal:5000"}}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := o.ParseDigest("source", s); err == nil {
			if !strings.HasPrefix(d.DigestStr(), "sha256:") || len(d.DigestStr()) != 71 {
				t.Fatalf("ParseDigest(%q) accepted digest %q", s, d.DigestStr())
			}
		} else if !strings.Contains(err.Error(), "source") {
			t.Fatalf("error %q does not name the field", err)
		}
		if r, err := o.ParseRepository("destination", s); err == nil {
			if strings.ContainsAny(r.String(), "@ ") {
				t.Fatalf("ParseRepository(%q) = %q", s, r)
			}
		} else if !strings.Contains(err.Error(), "destination") {
			t.Fatalf("error %q does not name the field", err)
		}
	})
}

func FuzzSelectTag(f *testing.F) {
	f.Add(">=1.0 <2", "", "", "1.0.0,1.5.0-rc.1,1.9.9,v2.0.0,latest")
	f.Add("", `^main-\d+$`, "lexical", "main-1,main-22,main-3")
	f.Add("^0.0.1-0", "^v", "semver", "v0.0.1-alpha,v0.0.1")
	f.Add("~", "(", "x", "")
	f.Fuzz(func(t *testing.T, semverRange, regex, order, list string) {
		tags := strings.Split(list, ",")
		p := TagPolicy{Semver: semverRange, Regex: regex, Order: order}
		got, err := SelectTag(tags, p)
		if err != nil {
			return
		}
		if IsAttachmentTag(got) {
			t.Fatalf("selected attachment tag %q", got)
		}
		found := false
		for _, tag := range tags {
			found = found || tag == got
		}
		if !found {
			t.Fatalf("selected %q, which is not among the tags", got)
		}
		// Selection does not depend on the order of the listing.
		rev := make([]string, len(tags))
		for i, tag := range tags {
			rev[len(tags)-1-i] = tag
		}
		if again, err := SelectTag(rev, p); err != nil || again != got {
			t.Fatalf("reversed listing chose %q (%v), forward chose %q", again, err, got)
		}
	})
}

func TestKeychainFromDockerConfigJSON(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cfg := `{"auths":{
		"https://index.docker.io/v1/": {"auth": "` + b64("hubuser:hubpass") + `"},
		"registry.example.com:5000": {"username": "u1", "password": "p1"},
		"https://ghcr.io/v2/": {"identitytoken": "tok"},
		"*.corp.example": {"auth": "` + b64("wild:card") + `"},
		"*.eu.corp.example": {"auth": "` + b64("eu:card") + `"}
	}}`
	kc, err := KeychainFromDockerConfigJSON([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for reg, want := range map[string]authn.AuthConfig{
		"index.docker.io":           {Username: "hubuser", Password: "hubpass"},
		"registry.example.com:5000": {Username: "u1", Password: "p1"},
		"ghcr.io":                   {IdentityToken: "tok"},
		"a.corp.example":            {Username: "wild", Password: "card"},
		"a.eu.corp.example":         {Username: "eu", Password: "card"},
		"a.b.corp.example":          {}, // a wildcard matches one label only
		"registry.example.com":      {}, // the port is part of the key
		"other.example":             {},
	} {
		r, err := name.NewRegistry(reg)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if *got != want {
			t.Errorf("%s: got %+v, want %+v", reg, *got, want)
		}
	}
}

func TestKeychainRejectsBadContentWithoutLeakingIt(t *testing.T) {
	const secret = "hunter2-very-secret"
	for content, want := range map[string]string{
		`not json ` + secret: "not valid JSON",
		`{"auths": {"r.example": {"auth": 12}}} ` + secret:                                                "not valid JSON",
		`{"r.example": {"auth": "x"}}`:                                                                    `missing "auths"`,
		`{"auths": {"r.example": {"auth": "` + secret + `"}}}`:                                            `"auth" is not valid base64`,
		`{"auths": {"r.example": {"auth": "` + base64.StdEncoding.EncodeToString([]byte(secret)) + `"}}}`: `does not decode to "username:password"`,
		`{"auths": {"r.example": {}}}`:                                                                    "no credentials",
		`{"auths": {"": {"username": "u", "password": "p"}}}`:                                             "empty registry",
		`{"auths": {"a.*.example": {"username": "u", "password": "p"}}}`:                                  "wildcard",
		`{"auths": {"*": {"username": "u", "password": "p"}}}`:                                            "wildcard",
	} {
		_, err := KeychainFromDockerConfigJSON([]byte(content))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("content %q: error %v, want %q", content, err, want)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "aHVudGVy") {
			t.Errorf("error leaks credential material: %v", err)
		}
	}
}

func FuzzKeychainFromDockerConfigJSON(f *testing.F) {
	f.Add([]byte(`{"auths":{"r.example":{"auth":"dTpw"}}}`), "r.example")
	f.Add([]byte(`{"auths":{"*.example":{"username":"u","password":"p"}}}`), "a.example")
	f.Add([]byte(`{"auths":{"https://x:1/v2/":{"registrytoken":"t"}}}`), "x:1")
	f.Add([]byte(`{"auths":null}`), "")
	f.Fuzz(func(t *testing.T, data []byte, host string) {
		kc, err := KeychainFromDockerConfigJSON(data)
		if err != nil {
			if len(data) > 8 && strings.Contains(err.Error(), string(data)) {
				t.Fatalf("error echoes the input: %v", err)
			}
			return
		}
		r, err := name.NewRegistry(host)
		if err != nil {
			return
		}
		if _, err := kc.Resolve(r); err != nil {
			t.Fatalf("Resolve(%q): %v", host, err)
		}
	})
}
