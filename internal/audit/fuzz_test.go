package audit

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// FuzzPatch feeds Patch arbitrary annotation maps (old and new, encoded as JSON objects) and users. It must never
// panic; it must let every readable object through; its patch must touch the annotations only; and afterwards
// the only companions are those of request annotations present, naming the user when the request is new or
// changed, otherwise what they were.
func FuzzPatch(f *testing.F) {
	f.Add([]byte(`{}`), []byte(`{"ferry.dev/rollback":"prod"}`), "alice")
	f.Add([]byte(`{"ferry.dev/rollback":"prod","requested-by.ferry.dev/rollback":"bob"}`),
		[]byte(`{"ferry.dev/rollback":"prod","requested-by.ferry.dev/rollback":"release-manager"}`), "eve")
	f.Add([]byte(`null`), []byte(`{"requested-by.ferry.dev/abort":"x","ferry.dev/approve":"dev","a/b~c":"d"}`), "")
	f.Add([]byte(`{"ferry.dev/abort":"dev","requested-by.ferry.dev/abort":"bob"}`), []byte(`{"requested-by.ferry.dev/abort":"bob"}`), "a\nb")
	f.Fuzz(func(t *testing.T, oldJSON, curJSON []byte, user string) {
		var old, cur map[string]string
		if json.Unmarshal(oldJSON, &old) != nil || json.Unmarshal(curJSON, &cur) != nil {
			return
		}
		var oldObj []byte
		if old != nil {
			oldObj = object(t, old)
		}
		curObj := object(t, cur)
		resp := Patch(oldObj, curObj, user)
		if !resp.Allowed {
			t.Fatalf("refused a readable object: %+v", resp.Result)
		}
		got, err := applyAnnotationPatch(curObj, resp)
		if err != nil {
			t.Fatal(err)
		}
		checkCompanions(t, old, cur, got, user)
	})
}

// checkCompanions checks the annotations got that Patch left for a request by user turning old into cur.
func checkCompanions(t *testing.T, old, cur, got map[string]string, user string) {
	t.Helper()
	for k, v := range got {
		if !strings.HasPrefix(k, ferryv1.RequestedByPrefix) {
			if cur[k] != v {
				t.Fatalf("%s changed from %q to %q", k, cur[k], v)
			}
			continue
		}
		request := ferryv1.RequestedByPrefix // no request has this companion
		for _, r := range Requests {
			if Companion(r) == k {
				request = r
			}
		}
		value, asked := got[request]
		if !asked {
			t.Fatalf("companion %s=%q without its request", k, v)
		}
		was, had := old[request]
		if want := old[k]; had && was == value && v != want {
			t.Fatalf("%s = %q for an unchanged request, want %q as before", k, v, want)
		}
		if (!had || was != value) && v != Name(user) {
			t.Fatalf("%s = %q for a new or changed request, want %q", k, v, Name(user))
		}
	}
	for k := range cur {
		if _, kept := got[k]; !kept && !strings.HasPrefix(k, ferryv1.RequestedByPrefix) {
			t.Fatalf("%s was removed", k)
		}
	}
	for _, r := range Requests {
		value, asked := got[r]
		if was, had := old[r]; asked && (!had || was != value) && Name(user) != "" && got[Companion(r)] != Name(user) {
			t.Fatalf("%s was set by %q but its companion says %q", r, user, got[Companion(r)])
		}
	}
}

// applyAnnotationPatch applies resp's JSON patch to the annotations of obj, and fails on an operation outside
// them, so that tests see both what the patch does and that it does nothing else.
func applyAnnotationPatch(obj []byte, resp admission.Response) (map[string]string, error) {
	out, err := annotationsOf(obj)
	if err != nil {
		return nil, err
	}
	out = maps.Clone(out)
	const base = "/metadata/annotations"
	for _, op := range resp.Patches {
		switch {
		case op.Path == base && op.Operation == "remove":
			out = nil
		case op.Path == base && (op.Operation == "add" || op.Operation == "replace"):
			out = map[string]string{}
			m, _ := op.Value.(map[string]any)
			for k, v := range m {
				out[k], _ = v.(string)
			}
		case strings.HasPrefix(op.Path, base+"/") && !strings.Contains(op.Path[len(base)+1:], "/"):
			key := strings.NewReplacer("~1", "/", "~0", "~").Replace(op.Path[len(base)+1:])
			if op.Operation == "remove" {
				delete(out, key)
				continue
			}
			s, ok := op.Value.(string)
			if !ok || (op.Operation != "add" && op.Operation != "replace") {
				return nil, fmt.Errorf("unexpected operation %+v", op)
			}
			if out == nil {
				return nil, fmt.Errorf("%s on an object without annotations", op.Path)
			}
			out[key] = s
		default:
			return nil, fmt.Errorf("the patch goes beyond the annotations: %+v", op)
		}
	}
	return out, nil
}
