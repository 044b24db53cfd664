package webhook

import (
	"reflect"
	"strings"
	"testing"
)

// A notification as the distribution registry sends it (docs: "Notifications", envelope of events).
const distributionPush = `{"events":[
 {"id":"1","timestamp":"2026-11-26T00:00:00Z","action":"push",
  "target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","repository":"acme/shop","tag":"1.2.0"},
  "request":{"id":"r1","addr":"127.0.0.1:5000","host":"127.0.0.1:5001","method":"PUT"}},
 {"id":"2","action":"pull","target":{"repository":"acme/other"},"request":{"host":"127.0.0.1:5001"}},
 {"id":"3","action":"push","target":{"repository":"acme/shop"},"request":{"host":"127.0.0.1:5001"}}]}`

func TestParse(t *testing.T) {
	cases := []struct {
		name, body string
		want       []string
		wantErr    string
	}{
		{"distribution pushes, pulls ignored, repeats dropped", distributionPush, []string{"127.0.0.1:5001/acme/shop"}, ""},
		{"generic", `{"repository":"registry.example.com/team/app"}`, []string{"registry.example.com/team/app"}, ""},
		{"docker hub short name normalised", `{"repository":"nginx"}`, []string{"index.docker.io/library/nginx"}, ""},
		{"not JSON", `push!`, nil, "not JSON"},
		{"neither format", `{"hello":"world"}`, nil, `neither "events"`},
		{"bad repository", `{"repository":"UPPER/Case"}`, nil, `repository "UPPER/Case"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Parse = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(distributionPush))
	f.Add([]byte(`{"repository":"a/b"}`))
	f.Add([]byte(`{"events":[{"action":"push","target":{"repository":"x"},"request":{"host":"h:1"}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		repos, err := Parse(body)
		if err != nil {
			return
		}
		for _, r := range repos {
			again, err := Normalise(r)
			if err != nil || again != r {
				t.Fatalf("%q is not in canonical form (%q, %v)", r, again, err)
			}
		}
	})
}
