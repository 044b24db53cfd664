package audit

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// Path is where the webhook is served; config/webhook/manifests.yaml points the API server at it.
const Path = "/audit-promotion"

// Register serves the webhook at Path on srv.
func Register(srv webhook.Server) {
	srv.Register(Path, &webhook.Admission{Handler: Handler{}})
}

// Handler is the mutating admission webhook on Promotions: it patches their companion annotations to what
// Audited says for the request's authenticated user. It reads nothing but the request and keeps no state, so
// every replica of the controller can answer, leader or not. The API server bounds what it sends (and
// controller-runtime reads at most 7 MiB); only the annotations are decoded into maps.
type Handler struct{}

// Handle answers one admission request. A request it cannot read is refused: letting it through unread could
// let a client's own companion stand.
func (Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	promotions := req.Resource.Group == ferryv1.GroupVersion.Group && req.Resource.Resource == "promotions"
	if !promotions || req.SubResource != "" {
		return admission.Allowed("not a Promotion")
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	resp := Patch(req.OldObject.Raw, req.Object.Raw, req.UserInfo.Username)
	if len(resp.Patches) > 0 {
		logf.FromContext(ctx).Info("recorded who asked", "promotion", req.Namespace+"/"+req.Name,
			"user", req.UserInfo.Username)
	}
	return resp
}

// Patch returns the response to a request by user that turns the object old (empty on create) into cur: allowed,
// with a JSON patch of cur's annotations when they must change.
func Patch(old, cur []byte, user string) admission.Response {
	now, err := annotationsOf(cur)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	var before map[string]string
	if len(old) > 0 {
		if before, err = annotationsOf(old); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
	}
	want := Audited(before, now, user)
	if maps.Equal(want, now) {
		return admission.Allowed("")
	}
	patched, err := withAnnotations(cur, want)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	return admission.PatchResponseFromRaw(cur, patched)
}

// annotationsOf decodes an object's annotations and nothing else.
func annotationsOf(raw []byte) (map[string]string, error) {
	var obj struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	return obj.Metadata.Annotations, nil
}

// withAnnotations returns raw with its annotations replaced. The rest of the object is carried over as raw JSON,
// so that the patch computed against raw touches the annotations only.
func withAnnotations(raw []byte, annotations map[string]string) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errors.New("the object is null")
	}
	var meta map[string]json.RawMessage
	if err := json.Unmarshal(obj["metadata"], &meta); err != nil && obj["metadata"] != nil {
		return nil, err
	}
	if meta == nil {
		meta = map[string]json.RawMessage{}
	}
	delete(meta, "annotations")
	if len(annotations) > 0 {
		b, err := json.Marshal(annotations)
		if err != nil {
			return nil, err
		}
		meta["annotations"] = b
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	obj["metadata"] = b
	return json.Marshal(obj)
}
