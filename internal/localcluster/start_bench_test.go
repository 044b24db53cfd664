package localcluster

import (
	"context"
	"os"
	"testing"
	"time"
)

// BenchmarkStartStop measures a whole cluster's startup (until every Node is Ready and schedulable) and shutdown.
// Target: start under 5 s on a two-core machine, so that e2e tests can afford a cluster each. Needs
// KUBEBUILDER_ASSETS and FERRY_KWOK.
func BenchmarkStartStop(b *testing.B) {
	opts, err := OptionsFromEnv("", 1)
	if err != nil {
		if os.Getenv("FERRY_REQUIRE_TOOLS") == "1" {
			b.Fatal(err)
		}
		b.Skip(err)
	}
	var start, stop time.Duration
	for b.Loop() {
		began := time.Now()
		c, err := Start(context.Background(), opts)
		if err != nil {
			b.Fatal(err)
		}
		started := time.Now()
		if err := c.Stop(); err != nil {
			b.Fatal(err)
		}
		start += started.Sub(began)
		stop += time.Since(started)
	}
	b.ReportMetric(start.Seconds()/float64(b.N), "s/start")
	b.ReportMetric(stop.Seconds()/float64(b.N), "s/stop")
	b.ReportMetric(5/(start.Seconds()/float64(b.N)), "x-under-5s-target")
}
