// Package audit records who asked Ferry for something. People ask with request annotations on a Promotion
// (ferry.dev/rollback, clear-hold, approve, abort); the field manager of such an annotation is chosen by the
// client, so it proves nothing. This package's mutating admission webhook writes, next to each request annotation
// a request adds or changes, a companion annotation requested-by.ferry.dev/<name> holding the user the API server
// authenticated for that request. The webhook is the only writer the companion has: a value a client writes is
// replaced, a companion whose request is unchanged keeps its old value, and one whose request is gone is removed.
//
// The rules are in Audited, a pure function of the old and new annotations and the user; Handler applies them to
// admission requests.
package audit

import (
	"slices"
	"strings"
	"unicode"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/text"
)

// Requests are the annotations through which people ask Ferry to act; each has a companion.
var Requests = []string{
	ferryv1.RollbackAnnotation, ferryv1.ClearHoldAnnotation, ferryv1.ApproveAnnotation, ferryv1.AbortAnnotation,
}

// maxRequester bounds a recorded name. Usernames are short in practice; the bound keeps a strange one (from a
// certificate's subject, say) from making the status, events or a commit trailer too long to write.
const maxRequester = 256

// Companion names the annotation that records who set request: requested-by.ferry.dev/rollback for
// ferry.dev/rollback.
func Companion(request string) string {
	_, name, _ := strings.Cut(request, "/")
	return ferryv1.RequestedByPrefix + name
}

// IsRequest reports whether key is one of Requests.
func IsRequest(key string) bool {
	return slices.Contains(Requests, key)
}

// Requester returns who the webhook recorded as having set request, from a Promotion's annotations, when it did.
func Requester(annotations map[string]string, request string) (string, bool) {
	who := Name(annotations[Companion(request)])
	return who, who != ""
}

// Name makes a user name fit to record: valid UTF-8 without control characters, on one line (a commit trailer
// must be one), at most maxRequester bytes.
func Name(user string) string {
	printable := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, user)
	return text.OneLine(printable, maxRequester)
}

// Audited returns the annotations a Promotion must carry after a request by user that turns the annotations old
// (nil on create) into cur. Every annotation but the companions is kept as it is. Each request annotation present
// in cur gets a companion: user when the request added it or changed its value, else the companion it had
// (none if it had none). No other companion survives, whatever the client wrote. cur is not modified.
func Audited(old, cur map[string]string, user string) map[string]string {
	out := make(map[string]string, len(cur)+len(Requests))
	for k, v := range cur {
		if !strings.HasPrefix(k, ferryv1.RequestedByPrefix) {
			out[k] = v
		}
	}
	who := Name(user)
	for _, r := range Requests {
		value, asked := cur[r]
		if !asked {
			continue
		}
		c := Companion(r)
		if was, had := old[r]; !had || was != value {
			if who != "" {
				out[c] = who
			}
		} else if prev, ok := old[c]; ok {
			out[c] = prev
		}
	}
	return out
}
