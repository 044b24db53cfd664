package main

import (
	"strings"
	"testing"
)

func TestDashboardRefusesANonLoopbackAddress(t *testing.T) {
	for _, address := range []string{"0.0.0.0:8087", ":8087", "192.168.1.10:8087"} {
		_, err := runFerry(t, "dashboard", "--address", address)
		if err == nil || !strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), "--address") {
			t.Errorf("ferry dashboard --address %s: %v, want a refusal naming --address", address, err)
		}
	}
}
