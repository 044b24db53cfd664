package analysis

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkMeasureCost is what one reading of one metric costs the controller: the HTTP requests it makes to
// Prometheus (the value, then the freshness of each selector) and its CPU time and allocations, against a
// loopback server that answers at once, so the figure is Ferry's own cost. A canary step reads every metric on
// each track once per interval.
func BenchmarkMeasureCost(b *testing.B) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		now := time.Now().Unix()
		value := "0.004"
		if strings.Contains(r.FormValue("query"), "timestamp(") { // a freshness query: the newest sample is current
			value = strconv.FormatInt(now, 10)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[%d,%q]}]}}`, now, value)
	}))
	defer srv.Close()
	p, err := NewPrometheus(Config{Address: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	max := 0.01
	check := Check{Metric: "error-rate", MaxAge: time.Minute, Threshold: Threshold{Max: &max},
		Query: `sum(rate(http_requests_total{namespace="shop",track="canary",code=~"5.."}[1m])) / sum(rate(http_requests_total{namespace="shop",track="canary"}[1m]))`}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		m, err := Measure(ctx, p, check, time.Now())
		if err != nil || m.Verdict != Pass {
			b.Fatalf("measurement %+v: %v", m, err)
		}
	}
	b.ReportMetric(float64(requests.Load())/float64(b.N), "queries/reading")
}
