package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of every message. The signature and timestamp are sent to Webhook receivers.
const (
	// DeliveryHeader carries the delivery id, the same on every retry and after a controller restart: a receiver
	// that remembers the ids it accepted drops the rare duplicate.
	DeliveryHeader = "X-Ferry-Delivery"
	// EventHeader carries the event, for routing without reading the body.
	EventHeader = "X-Ferry-Event"
	// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the exact body under the receiver's key>".
	SignatureHeader = "X-Ferry-Signature"
	// TimestampHeader carries the attempt's time in Unix seconds, also in the signed body as sentAt.
	TimestampHeader = "X-Ferry-Timestamp"
)

// Type is the payload a receiver understands.
type Type string

// Receiver types, as spec.notifications[].type names them.
const (
	Webhook Type = "Webhook"
	Slack   Type = "Slack"
)

// MinKeyBytes is the shortest HMAC key accepted: anything shorter can be guessed.
const MinKeyBytes = 16

// Receiver is where a message goes. URL and Key are credentials: they are never logged nor put in errors.
type Receiver struct {
	// Name labels the receiver in outcomes, metrics and errors.
	Name string
	Type Type
	URL  string
	// Key signs Webhook payloads.
	Key []byte
}

// Message is what happened, with the facts a person or a tool needs.
type Message struct {
	// DeliveryID is stable across retries and restarts.
	DeliveryID     string    `json:"deliveryId"`
	Event          string    `json:"event"`
	Namespace      string    `json:"namespace"`
	Promotion      string    `json:"promotion"`
	Stage          string    `json:"stage,omitempty"`
	Digest         string    `json:"digest,omitempty"`
	PreviousDigest string    `json:"previousDigest,omitempty"`
	Commit         string    `json:"commit,omitempty"`
	PullRequestURL string    `json:"pullRequestURL,omitempty"`
	Approver       string    `json:"approver,omitempty"`
	RequestedBy    string    `json:"requestedBy,omitempty"`
	Message        string    `json:"message,omitempty"`
	Time           time.Time `json:"time"`
	// SentAt is the time of the attempt, so that a receiver can refuse a replayed old body; it is signed.
	SentAt time.Time `json:"sentAt"`
}

// Body is the payload of m for a receiver of type t, sent at sentAt.
func Body(t Type, m Message, sentAt time.Time) ([]byte, error) {
	m.SentAt = sentAt.UTC().Truncate(time.Second)
	m.Time = m.Time.UTC()
	switch t {
	case Webhook:
		return json.Marshal(m)
	case Slack:
		return json.Marshal(struct {
			Text string `json:"text"`
		}{SlackText(m)})
	}
	return nil, fmt.Errorf("receiver type %q is not supported", t)
}

// Sign returns the signature header's value for body under key.
func Sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether header ("sha256=<hex>") is body's signature under key, in constant time. Receivers
// written in Go can use it; docs/notifications.md shows the same check in a shell.
func Verify(key, body []byte, header string) bool {
	hexSum, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok || len(hexSum) != hex.EncodedLen(sha256.Size) {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// headers are the request headers of one attempt of m carrying body.
func headers(r Receiver, m Message, body []byte, sentAt time.Time) map[string]string {
	h := map[string]string{
		"Content-Type": "application/json",
		DeliveryHeader: m.DeliveryID,
		EventHeader:    m.Event,
	}
	if r.Type == Webhook {
		h[TimestampHeader] = strconv.FormatInt(sentAt.Unix(), 10)
		h[SignatureHeader] = Sign(r.Key, body)
	}
	return h
}
