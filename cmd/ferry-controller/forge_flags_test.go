package main

import (
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/controllers"
)

func TestForgeWebhookSecret(t *testing.T) {
	noCredentialsInEnv(t)
	t.Setenv(envForgeSecret, "")
	secret := writeFile(t, "forge", "forge-secret-0123456789abcdef\n")

	// A forge secret alone serves forge events only.
	c, err := loadWebhookCredentials(parseOptions(t, "--forge-webhook-secret-file="+secret))
	if err != nil || string(c.forgeSecret) != "forge-secret-0123456789abcdef" || c.token != nil || c.hmacSecret != nil {
		t.Fatalf("forge secret alone: %+v, %v", c, err)
	}
	// Beside a registry token, both are kept.
	t.Setenv(envWebhookToken, testToken)
	if c, err := loadWebhookCredentials(parseOptions(t, "--forge-webhook-secret-file="+secret)); err != nil ||
		c.forgeSecret == nil || string(c.token) != testToken {
		t.Fatalf("forge secret and token: %+v, %v", c, err)
	}
	// From the environment, which is emptied once read.
	noCredentialsInEnv(t)
	t.Setenv(envForgeSecret, "forge-secret-from-the-environment")
	if c, err := loadWebhookCredentials(parseOptions(t)); err != nil || string(c.forgeSecret) != "forge-secret-from-the-environment" {
		t.Fatalf("forge secret from $%s: %+v, %v", envForgeSecret, c, err)
	}
	// Too short, and never shown.
	short := writeFile(t, "short", "hunter2\n")
	_, err = loadWebhookCredentials(parseOptions(t, "--forge-webhook-secret-file="+short))
	if err == nil || !strings.Contains(err.Error(), "at least 16") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("short forge secret: %v", err)
	}
}

func TestApprovalPollInterval(t *testing.T) {
	if o := parseOptions(t); o.approvalPollInterval != controllers.DefaultApprovalPollInterval {
		t.Fatalf("default %s", o.approvalPollInterval)
	}
	if o := parseOptions(t, "--approval-poll-interval=1h"); o.approvalPollInterval != time.Hour {
		t.Fatalf("--approval-poll-interval=1h: %s", o.approvalPollInterval)
	}
	noCredentialsInEnv(t)
	err := run(t.Context(), parseOptions(t, "--webhook-bind-address=0", "--approval-poll-interval=0s"))
	if err == nil || !strings.Contains(err.Error(), "--approval-poll-interval") {
		t.Fatalf("a zero approval poll: %v", err)
	}
}
