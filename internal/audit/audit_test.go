package audit

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

const (
	rollback = ferryv1.RollbackAnnotation
	byRb     = ferryv1.RequestedByPrefix + "rollback"
	byAbort  = ferryv1.RequestedByPrefix + "abort"
)

func TestCompanionNames(t *testing.T) {
	for request, want := range map[string]string{
		ferryv1.RollbackAnnotation:  "requested-by.ferry.dev/rollback",
		ferryv1.ClearHoldAnnotation: "requested-by.ferry.dev/clear-hold",
		ferryv1.ApproveAnnotation:   "requested-by.ferry.dev/approve",
		ferryv1.AbortAnnotation:     "requested-by.ferry.dev/abort",
	} {
		if got := Companion(request); got != want {
			t.Errorf("Companion(%s) = %s, want %s", request, got, want)
		}
	}
}

func TestAudited(t *testing.T) {
	for _, tc := range []struct {
		name          string
		old, cur, out map[string]string
	}{
		{"added", nil, map[string]string{rollback: "prod"}, map[string]string{rollback: "prod", byRb: "alice"}},
		{"added with a claim of its own", map[string]string{"team": "a"}, map[string]string{"team": "a", rollback: "prod", byRb: "release-manager"},
			map[string]string{"team": "a", rollback: "prod", byRb: "alice"}},
		{"changed", map[string]string{rollback: "prod", byRb: "bob"}, map[string]string{rollback: "staging", byRb: "bob"},
			map[string]string{rollback: "staging", byRb: "alice"}},
		{"unchanged keeps who asked", map[string]string{rollback: "prod", byRb: "bob"}, map[string]string{rollback: "prod", byRb: "alice"},
			map[string]string{rollback: "prod", byRb: "bob"}},
		{"unchanged, companion removed: restored", map[string]string{rollback: "prod", byRb: "bob"}, map[string]string{rollback: "prod"},
			map[string]string{rollback: "prod", byRb: "bob"}},
		{"unchanged, never recorded: none", map[string]string{rollback: "prod"}, map[string]string{rollback: "prod", byRb: "alice"},
			map[string]string{rollback: "prod"}},
		{"request removed", map[string]string{rollback: "prod", byRb: "bob"}, map[string]string{byRb: "bob"}, map[string]string{}},
		{"companion without a request", nil, map[string]string{byAbort: "x", ferryv1.RequestedByPrefix + "deploy": "y"}, map[string]string{}},
		{"several at once", map[string]string{rollback: "prod", byRb: "bob"},
			map[string]string{rollback: "prod", byRb: "bob", ferryv1.AbortAnnotation: "dev"},
			map[string]string{rollback: "prod", byRb: "bob", ferryv1.AbortAnnotation: "dev", byAbort: "alice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := maps.Clone(tc.cur)
			if got := Audited(tc.old, tc.cur, "alice"); !maps.Equal(got, tc.out) {
				t.Errorf("Audited = %v, want %v", got, tc.out)
			}
			if !maps.Equal(before, tc.cur) {
				t.Error("Audited changed its input")
			}
		})
	}
}

func TestNamesAreOneBoundedLine(t *testing.T) {
	got := Audited(nil, map[string]string{rollback: "prod"}, "eve\nFerry-Digest: sha256:0\n"+strings.Repeat("x", 1000))[byRb]
	if strings.ContainsAny(got, "\r\n") || len(got) > maxRequester || !strings.HasPrefix(got, "eve Ferry-Digest") {
		t.Errorf("recorded %q", got)
	}
	if _, ok := Audited(nil, map[string]string{rollback: "prod"}, " ")[byRb]; ok {
		t.Error("a blank user was recorded")
	}
	if who, ok := Requester(map[string]string{byRb: "  "}, rollback); ok {
		t.Errorf("blank companion read as %q", who)
	}
}

// TestPatchTouchesOnlyAnnotations: the response is a JSON patch of the annotations, and applying it gives what
// Audited says; the rest of the object, numbers included, is left alone.
func TestPatchTouchesOnlyAnnotations(t *testing.T) {
	old := object(t, map[string]string{rollback: "prod", byRb: "bob"})
	cur := object(t, map[string]string{rollback: "staging", byRb: "bob", "team": "a"})
	resp := Patch(old, cur, "alice")
	if !resp.Allowed || len(resp.Patches) == 0 {
		t.Fatalf("response = %+v", resp)
	}
	got, err := applyAnnotationPatch(cur, resp)
	if err != nil {
		t.Fatal(err)
	}
	if want := (map[string]string{rollback: "staging", byRb: "alice", "team": "a"}); !maps.Equal(got, want) {
		t.Errorf("annotations after the patch = %v, want %v", got, want)
	}
	if resp := Patch(cur, cur, "alice"); !resp.Allowed || len(resp.Patches) != 0 {
		t.Errorf("nothing to change, response = %+v", resp)
	}
	if resp := Patch(nil, []byte(`{"metadata": 3}`), "alice"); resp.Allowed {
		t.Error("an unreadable object was let through")
	}
}

// object is a Promotion-like object with annotations (none when nil) and a spec the patch must not touch.
func object(t testing.TB, annotations map[string]string) []byte {
	t.Helper()
	meta := map[string]any{"name": "shop", "namespace": "team", "resourceVersion": "12"}
	if annotations != nil {
		meta["annotations"] = annotations
	}
	b, err := json.Marshal(map[string]any{"apiVersion": "ferry.dev/v1alpha1", "kind": "Promotion", "metadata": meta,
		"spec": map[string]any{"historyLimit": 12345678901234567, "stages": []any{map[string]any{"name": "prod"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
