package promserver

import (
	"os"
	"strings"
	"sync"
	"testing"
)

// BinariesFromEnv returns the Prometheus and Pushgateway binaries from FERRY_PROMETHEUS and FERRY_PUSHGATEWAY, for
// tests, or skips the test without them — fails it when FERRY_REQUIRE_TOOLS=1, the convention of
// internal/testenv.RequireTools (read here directly, so that tests using it need not link a control plane).
func BinariesFromEnv(t testing.TB) (prometheus, pushgateway string) {
	t.Helper()
	prometheus, pushgateway = os.Getenv("FERRY_PROMETHEUS"), os.Getenv("FERRY_PUSHGATEWAY")
	if prometheus != "" && pushgateway != "" {
		return prometheus, pushgateway
	}
	msg := "FERRY_PROMETHEUS and FERRY_PUSHGATEWAY are not set: " +
		"{ read -r FERRY_PROMETHEUS; read -r FERRY_PUSHGATEWAY; } < <(hack/prometheus.sh), as `make test` does"
	if os.Getenv("FERRY_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return "", ""
}

// LogBuffer collects the processes' output (Options.Log) for a test to show when it fails; the processes write
// from their own goroutines.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
