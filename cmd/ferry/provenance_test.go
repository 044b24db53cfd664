package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrycd/ferry/internal/promotionctl"
	"github.com/ferrycd/ferry/internal/testenv"
)

func TestProvenanceFindsEveryStageThatRanTheDigest(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createShop(t, e, ns)

	// A 12-character prefix, without the algorithm, as a person copies it from a table.
	out, err := runFerry(t, "provenance", strings.Repeat("b", 12), "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry provenance: %v\n%s", err, out)
	}
	if first := strings.SplitN(out, "\n", 2)[0]; first != "Digest "+digestB {
		t.Errorf("first line %q, want the full digest", first)
	}
	table := out[strings.Index(out, "PROMOTION"):]
	want := [][]string{
		{"shop", "dev", "history", "Promoted", "2026-03-01T14:00:00Z", strings.Repeat("b0", 6), "automatic", "release-team", "-", "-"},
		{"shop", "staging", "running", "Soaking", "2026-03-01T19:00:00Z", strings.Repeat("5", 12), "automatic", "release-team", "-", "-"},
		{"shop", "staging", "history", "Promoted", "2026-03-01T15:00:00Z", strings.Repeat("5", 12), "automatic", "release-team", "-", "-"},
		{"shop", "prod", "running", "Promoted", "2026-03-01T19:00:00Z", strings.Repeat("3", 12), "alice", "release-team",
			"http://127.0.0.1:3000/acme/shop-deploy/pulls/7", "-"},
		{"shop", "prod", "history", "Promoted", "2026-03-01T17:00:00Z", strings.Repeat("3", 12), "alice", "release-team",
			"http://127.0.0.1:3000/acme/shop-deploy/pulls/7", "-"},
	}
	rows := tableRows(table)
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), out)
	}
	for i := range want {
		if strings.Join(rows[i], " ") != strings.Join(want[i], " ") {
			t.Errorf("row %d:\n got %q\nwant %q", i, rows[i], want[i])
		}
	}

	// In flight: staging is soaking B with C on its way in; the rejection reason of X is kept.
	out, err = runFerry(t, "provenance", digestC, "--kubeconfig", kubeconfig)
	if err != nil || !regexp.MustCompile(`(?m)^shop\s+staging\s+in-flight\s+Soaking\s+2026-03-01T19:30:00Z\s`).MatchString(out) {
		t.Errorf("in-flight digest: %v\n%s", err, out)
	}
	out, err = runFerry(t, "provenance", digestX, "--kubeconfig", kubeconfig)
	if err != nil || !strings.Contains(out, "Rejected") || !strings.Contains(out, "pull request closed without merge") {
		t.Errorf("rejected digest: %v\n%s", err, out)
	}
}

func TestProvenanceAcrossNamespaces(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns1, ns2 := e.Namespace(t), e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns1)
	createShop(t, e, ns1)
	createShop(t, e, ns2)

	out, err := runFerry(t, "provenance", digestA[:len("sha256:")+13], "-o", "json", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry provenance -o json: %v\n%s", err, out)
	}
	var got provenanceOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got.Digest != digestA || len(got.Records) != 2 {
		t.Fatalf("one namespace: %+v", got)
	}
	for _, r := range got.Records {
		if r.Namespace != ns1 || r.Where != promotionctl.WhereHistory || r.CommitSHA == "" || len(r.Signers) != 1 || r.Time == nil {
			t.Errorf("record %+v", r)
		}
	}

	out, err = runFerry(t, "provenance", digestA, "-A", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("ferry provenance -A: %v\n%s", err, out)
	}
	if !strings.Contains(out, "NAMESPACE") || strings.Count(out, ns1+" ") != 2 || strings.Count(out, ns2+" ") != 2 {
		t.Errorf("-A does not show both namespaces:\n%s", out)
	}
}

func TestProvenanceNamesWhatIsWrong(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	kubeconfig := e.Kubeconfig(t, ns)
	createShop(t, e, ns)
	for _, tc := range []struct {
		arg  string
		want string
	}{
		{"sha256:aaaaaaaaaaaa", "DIGEST sha256:aaaaaaaaaaaa: prefix matches 2 digests (" + digestA + ", " + digestA2 + ")"},
		{absent, "DIGEST " + absent + `: digest not found in the status of any Promotion in namespace "` + ns + `" (use -A`},
		{"sha256:abc", `DIGEST "sha256:abc": not a digest`},
		{"sha256:" + strings.Repeat("g", 64), `DIGEST "sha256:gggg`},
		{"sha512:" + strings.Repeat("a", 64), "only sha256 digests are supported"},
		{digestA + "0", "not a digest"},
	} {
		out, err := runFerry(t, "provenance", tc.arg, "--kubeconfig", kubeconfig)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q\n%s", tc.arg, err, tc.want, out)
		}
	}
	_, err := runFerry(t, "provenance", absent, "-A", "--kubeconfig", kubeconfig)
	if err == nil || !strings.Contains(err.Error(), "in any namespace") {
		t.Errorf("-A: err = %v", err)
	}
}

// countingReader passes reads through to the real API server and counts them.
type countingReader struct {
	client.Reader
	gets, lists int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets++
	return c.Reader.Get(ctx, key, obj, opts...)
}

func (c *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	c.lists++
	return c.Reader.List(ctx, list, opts...)
}

func TestProvenanceReadsStatusWithOneList(t *testing.T) {
	e := testenv.Need(t, kubeEnv)
	ns := e.Namespace(t)
	createShop(t, e, ns)
	createPromotion(t, e, ns, "fresh", nil)
	c := &countingReader{Reader: e.Client}
	d, err := promotionctl.ParseDigestArg("DIGEST", digestB)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runProvenance(context.Background(), &out, c, ns, d, "table"); err != nil {
		t.Fatal(err)
	}
	if c.lists != 1 || c.gets != 0 {
		t.Errorf("%d List and %d Get calls, want one List", c.lists, c.gets)
	}
	if strings.Count(out.String(), "\nshop ") != 5 {
		t.Errorf("output:\n%s", out.String())
	}
}
