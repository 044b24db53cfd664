package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
)

func TestSelectTag(t *testing.T) {
	tags := []string{
		"1.0.0", "1.2.0", "v1.2.3", "1.3.0-rc.1", "1.10.0", "2.0.0-beta.1", "latest", "main-20240102", "main-20240315",
		"main-20231231", "sha256-" + strings.Repeat("a", 64) + ".sig", "sha256-" + strings.Repeat("b", 64),
		"sha256-zzz", "0.9.0", "1.2",
	}
	for _, tc := range []struct {
		name string
		p    TagPolicy
		want string
		err  string
	}{
		{"caret range excludes pre-releases", TagPolicy{Semver: "^1.0"}, "1.10.0", ""},
		{"tilde range", TagPolicy{Semver: "~1.2"}, "v1.2.3", ""},
		{"range asking for pre-releases gets them", TagPolicy{Semver: ">=1.3.0-0 <1.4.0"}, "1.3.0-rc.1", ""},
		{"pre-release of a major when asked", TagPolicy{Semver: ">=2.0.0-0"}, "2.0.0-beta.1", ""},
		{"stable major without pre-release", TagPolicy{Semver: ">=2.0.0"}, "", "no tag matches"},
		{"exact version", TagPolicy{Semver: "=1.2.0"}, "1.2.0", ""},
		{"regex with lexical order", TagPolicy{Regex: `^main-\d{8}$`}, "main-20240315", ""},
		{"regex with explicit lexical order", TagPolicy{Regex: `^main-`, Order: "lexical"}, "main-20240315", ""},
		{"regex with semver order skips pre-releases", TagPolicy{Regex: `^v?1\.`, Order: "semver"}, "1.10.0", ""},
		{"regex and range together", TagPolicy{Regex: `^v`, Semver: ">=1"}, "v1.2.3", ""},
		{"lexical order never picks attachment tags", TagPolicy{Regex: `.`, Order: "lexical"}, "v1.2.3", ""},
		{"nothing matches", TagPolicy{Regex: `^release-`}, "", "no tag matches"},
		{"empty policy", TagPolicy{}, "", "set semver, regex, or both"},
		{"bad range", TagPolicy{Semver: ">>1"}, "", "semver range"},
		{"bad regex", TagPolicy{Regex: "("}, "", "regex"},
		{"bad order", TagPolicy{Regex: ".", Order: "newest"}, "", `order "newest"`},
		{"lexical with a range contradicts", TagPolicy{Semver: "^1", Order: "lexical"}, "", "contradicts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SelectTag(tags, tc.p)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("SelectTag = %q, %v; want error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("SelectTag = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := SelectTag(nil, TagPolicy{Semver: "*"}); !errors.Is(err, ErrNoMatchingTag) {
		t.Errorf("no tags: %v", err)
	}
	// Equal versions spelled differently resolve deterministically whatever the listing order.
	a, _ := SelectTag([]string{"1.2", "1.2.0", "v1.2.0"}, TagPolicy{Semver: "1.2"})
	b, _ := SelectTag([]string{"v1.2.0", "1.2.0", "1.2"}, TagPolicy{Semver: "1.2"})
	if a != b {
		t.Errorf("tie broken differently: %q vs %q", a, b)
	}
}

func TestLatestResolvesTheChosenTag(t *testing.T) {
	repo := mustRepo(t, startRegistry(t, false)+"/app")
	d := pushImage(t, repo, 512, 1)
	for _, tag := range []string{"1.0.0", "1.1.0", "2.0.0-rc.1", legacyTag(d, "sig")} {
		pushArtifact(t, repo, nil, simpleSignType, []byte(tag), tag)
	}
	c := newTestClient(t, Options{})
	ctx := context.Background()
	want, err := c.Resolve(ctx, repo.Tag("1.1.0").String())
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Latest(ctx, repo.String(), TagPolicy{Semver: ">=1"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Tag != "1.1.0" || got.Digest != want {
		t.Errorf("Latest = %+v, want 1.1.0 at %s", got, want)
	}
	if _, err := c.Resolve(ctx, repo.Tag("missing").String()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve of a missing tag: %v", err)
	}
	if _, err := c.Latest(ctx, repo.String(), TagPolicy{Semver: ">=3"}); !errors.Is(err, ErrNoMatchingTag) {
		t.Errorf("Latest with no candidate: %v", err)
	}
	tags, err := c.ListTags(ctx, startRegistry(t, false)+"/empty")
	if err != nil || len(tags) != 0 {
		t.Errorf("tags of an unknown repository = %v, %v", tags, err)
	}
}

// TestListTagsFollowsLinkPagination serves the distribution spec's paginated tag listing (n, last, Link
// rel="next"), which neither test registry implements.
func TestListTagsFollowsLinkPagination(t *testing.T) {
	var all []string
	for i := 0; i < 25; i++ {
		all = append(all, fmt.Sprintf("t%02d", i))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/many/tags/list" {
			http.NotFound(w, r)
			return
		}
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		start := sort.SearchStrings(all, r.URL.Query().Get("last"))
		if last := r.URL.Query().Get("last"); last != "" {
			start++
		}
		end := min(start+n, len(all))
		if end < len(all) {
			w.Header().Set("Link", fmt.Sprintf(`</v2/many/tags/list?n=%d&last=%s>; rel="next"`, n, all[end-1]))
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"name": "many", "tags": all[start:end]})
	}))
	defer srv.Close()
	repo := mustRepo(t, strings.TrimPrefix(srv.URL, "http://")+"/many")
	o := newTestClient(t, Options{}).newOp()
	conn, err := o.conn(repo)
	if err != nil {
		t.Fatal(err)
	}
	got, err := listTagsFrom(context.Background(), conn, repo, "/v2/many/tags/list?n=10")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(all, ",") || o.requests.Load() != 3 {
		t.Fatalf("listed %v in %d requests, want all 25 tags in 3 pages", got, o.requests.Load())
	}
}
