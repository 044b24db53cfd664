package dashboard

import (
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// svgElements parses rendered SVG and returns its elements by name, failing the test when it is not
// well-formed XML.
func svgElements(t *testing.T, svg string) map[string][]map[string]string {
	t.Helper()
	els := map[string][]map[string]string{}
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return els
		}
		if err != nil {
			t.Fatalf("the chart is not well-formed: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			attrs := map[string]string{}
			for _, a := range se.Attr {
				attrs[a.Name.Local] = a.Value
			}
			els[se.Name.Local] = append(els[se.Name.Local], attrs)
		}
	}
}

func f64(f float64) *float64 { return &f }

var chartT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func point(minute int, v float64, verdict, step string) ChartPoint {
	return ChartPoint{Time: chartT0.Add(time.Duration(minute) * time.Minute), Value: v, Verdict: verdict, Step: step}
}

func TestRenderChartDrawsALinePerTrackWithThresholds(t *testing.T) {
	c := Chart{ID: "c1", Metric: "error-rate", Max: f64(0.05), Series: []ChartSeries{
		{Track: "canary", Points: []ChartPoint{point(0, 0.01, "Pass", "1"), point(1, 0.02, "Pass", "1"),
			{Time: chartT0.Add(2 * time.Minute), Missing: true, Verdict: "Inconclusive", Step: "2"}, point(3, 0.09, "Fail", "2")}},
		{Track: "baseline", Points: []ChartPoint{point(0, 0.01, "Pass", "1"), point(3, 0.01, "Pass", "2")}},
	}}
	svg := string(RenderChart(c))
	els := svgElements(t, svg)

	if n := len(els["polyline"]); n != 2 {
		t.Fatalf("%d lines, want one per track", n)
	}
	// Three values on the canary line (the missing one is not a value), two on the baseline's.
	if got := len(strings.Fields(els["polyline"][0]["points"])); got != 3 {
		t.Errorf("canary line has %d points, want 3", got)
	}
	if els["polyline"][1]["stroke-dasharray"] == "" {
		t.Error("the baseline line is told apart by colour alone")
	}
	failed := 0
	for _, circle := range els["circle"] {
		if circle["class"] == "failed" {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("%d failed markers, want 1", failed)
	}
	var threshold, missing, steps int
	for _, line := range els["line"] {
		switch line["class"] {
		case "threshold":
			threshold++
			// The value axis spans the data and the threshold with an 8% margin: [0.01, 0.09] ± 0.0064.
			v0, v1 := 0.01-0.0064, 0.09+0.0064
			want := chartHeight - chartBottom - (chartHeight-chartTop-chartBottom)*(0.05-v0)/(v1-v0)
			if y, _ := strconv.ParseFloat(line["y1"], 64); y < want-0.1 || y > want+0.1 {
				t.Errorf("the max threshold is drawn at y=%s, want %.1f", line["y1"], want)
			}
		case "missing":
			missing++
		case "step":
			steps++
		}
	}
	if threshold != 1 || missing != 1 || steps != 1 {
		t.Errorf("%d threshold, %d missing ticks, %d step boundaries; want 1 each", threshold, missing, steps)
	}
	for _, want := range []string{"threshold max 0.05", "canary: 3 values, last 0.09, 1 failed, 1 without a value", "step 2", "max 0.05"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the chart lacks %q", want)
		}
	}
	if again := string(RenderChart(c)); again != svg {
		t.Error("the same chart rendered twice differs")
	}
}

func TestRenderChartEscapesText(t *testing.T) {
	svg := string(RenderChart(Chart{ID: `x" onload="alert(1)`, Metric: `<script>alert(1)</script>`,
		Series: []ChartSeries{{Track: `"><img src=x>`, Points: []ChartPoint{point(0, 1, `<b>`, "1")}}}}))
	svgElements(t, svg)
	for _, bad := range []string{"<script", "<img", `" onload="`, "<b>"} {
		if strings.Contains(svg, bad) {
			t.Errorf("the chart contains %q unescaped:\n%s", bad, svg)
		}
	}
}

func TestRenderChartWithoutMeasurements(t *testing.T) {
	svg := string(RenderChart(Chart{ID: "c", Metric: "latency", Max: f64(0.5)}))
	els := svgElements(t, svg)
	if len(els["polyline"]) != 0 || !strings.Contains(svg, "No measurements yet") {
		t.Errorf("an empty chart:\n%s", svg)
	}
	// One value, or values all equal, still give a value axis with room around them.
	svg = string(RenderChart(Chart{ID: "c", Metric: "m", Series: []ChartSeries{{Track: "stable", Points: []ChartPoint{point(0, 3, "Pass", "soak")}}}}))
	for _, c := range svgElements(t, svg)["circle"] {
		if y, _ := strconv.ParseFloat(c["cy"], 64); y <= chartTop || y >= chartHeight-chartBottom {
			t.Errorf("a lone value sits on the frame: cy=%s", c["cy"])
		}
	}
}

func TestAnalysisChartsFollowTheSpec(t *testing.T) {
	min, max := "0.9", "bad"
	spec := &ferryv1.AnalysisSpec{Metrics: []ferryv1.MetricSpec{{Name: "success-rate", Min: &min, Max: &max}, {Name: "latency"}}}
	m := func(metric, track, value string, minute int) ferryv1.Measurement {
		s := int32(1)
		return ferryv1.Measurement{Metric: metric, Track: track, Step: &s, Value: value, Verdict: "Pass", Time: at(minute)}
	}
	a := &ferryv1.AnalysisStatus{Measurements: []ferryv1.Measurement{
		m("traffic", "canary", "120", 0), m("success-rate", "baseline", "0.99", 0), m("success-rate", "canary", "NaN", 1),
		m("success-rate", "canary", "0.98", 0),
	}}
	charts := AnalysisCharts(a, spec)
	var names []string
	for _, c := range charts {
		names = append(names, c.Metric)
	}
	if strings.Join(names, " ") != "success-rate latency traffic" {
		t.Fatalf("charts %v: want the spec's metrics in order, then the traffic query", names)
	}
	sr := charts[0]
	if sr.Min == nil || *sr.Min != 0.9 || sr.Max != nil {
		t.Errorf("thresholds min=%v max=%v: want min 0.9 and no max (its value does not parse)", sr.Min, sr.Max)
	}
	if len(sr.Series) != 2 || sr.Series[0].Track != "canary" || sr.Series[1].Track != "baseline" {
		t.Fatalf("series %+v: want canary then baseline", sr.Series)
	}
	canary := sr.Series[0].Points
	if len(canary) != 2 || canary[0].Value != 0.98 || canary[0].Step != "2" || !canary[1].Missing {
		t.Errorf("canary points %+v: want 0.98 at step 2 (oldest first), then NaN as missing", canary)
	}
}

func FuzzRenderChart(f *testing.F) {
	for _, seed := range [][3]string{{"error-rate", "canary", "0.01"}, {"<x>", `"`, "NaN"}, {"m", "stable", "1e308"},
		{"", "", "-Inf"}, {"&amp;", "baseline", "1e-320"}} {
		f.Add(seed[0], seed[1], seed[2], "0.5")
	}
	f.Fuzz(func(t *testing.T, metric, track, value, threshold string) {
		a := &ferryv1.AnalysisStatus{Measurements: []ferryv1.Measurement{
			{Metric: metric, Track: track, Value: value, Verdict: "Pass", Time: at(0)},
			{Metric: metric, Track: track, Value: value, Verdict: "Fail", Time: at(1)},
		}}
		spec := &ferryv1.AnalysisSpec{Metrics: []ferryv1.MetricSpec{{Name: metric, Max: &threshold}}}
		for i, c := range AnalysisCharts(a, spec) {
			c.ID = "c" + strconv.Itoa(i)
			svg := string(RenderChart(c))
			if strings.Contains(svg, "NaN") && !strings.Contains(metric+track+value, "NaN") {
				t.Fatalf("a coordinate is NaN:\n%s", svg)
			}
			dec := xml.NewDecoder(strings.NewReader(svg))
			for {
				tok, err := dec.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("not well-formed: %v\n%s", err, svg)
				}
				if se, ok := tok.(xml.StartElement); ok && (se.Name.Local == "script" || se.Name.Local == "img") {
					t.Fatalf("an element %s came from the data:\n%s", se.Name.Local, svg)
				}
			}
		}
	})
}
