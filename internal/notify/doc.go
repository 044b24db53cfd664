// Package notify tells people's tools that a Promotion changed: it builds the payloads (Ferry's signed JSON
// webhook, Slack's incoming-webhook text), posts them with bounded retries, timeouts and response reads, and runs
// the in-process dispatcher that does so off the reconciler's path. It decides nothing about Promotions and writes
// no status: callers say what to send and read back what became of it. It never logs or returns a receiver's URL
// (a credential for Slack) or its signing key.
package notify
