package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ChartPoint is one measurement on a chart. A measurement without a number (no data, Prometheus unreachable)
// has Missing set and is drawn as a tick on the time axis, never as a value.
type ChartPoint struct {
	Time    time.Time
	Value   float64
	Missing bool
	Step    string // "1", "2", … or "soak": where the canary was when it was taken
	Verdict string // Pass, Fail, Inconclusive
}

// ChartSeries is one line: one metric on one track (canary, baseline, stable).
type ChartSeries struct {
	Track  string
	Points []ChartPoint
}

// Chart is one metric over time, with the thresholds the analysis judges it by.
type Chart struct {
	ID       string // unique in the page, for the SVG's title and description
	Metric   string
	Series   []ChartSeries
	Min, Max *float64
}

// Chart geometry, in SVG user units; the SVG scales to its container.
const (
	chartWidth, chartHeight                              = 640.0, 220.0
	chartLeft, chartRight, chartTop, chartBottom float64 = 64, 16, 14, 34
	chartYTicks                                          = 4
)

// trackStyles tell tracks apart by dash pattern as well as colour, so the chart reads without colour too.
var trackStyles = map[string]struct{ colour, dash string }{
	"canary":   {"#1f6feb", ""},
	"baseline": {"#8250df", "6 3"},
	"stable":   {"#1a7f37", "2 3"},
}

var otherTrackStyle = struct{ colour, dash string }{"#57606a", "8 2 2 2"}

// RenderChart draws a chart as inline SVG: one polyline per track, a marker per measurement (filled red when
// it failed), the min and max thresholds as dashed lines, canary step boundaries, and ticks for measurements
// without a number. It is a pure function of the chart: the same chart always gives the same markup, and all
// text is escaped.
func RenderChart(c Chart) template.HTML {
	var buf bytes.Buffer
	if err := chartTemplate.Execute(&buf, layoutChart(c)); err != nil {
		// The template is fixed and its data plain values: an error here is a bug, shown rather than hidden.
		return template.HTML(template.HTMLEscapeString("chart error: " + err.Error()))
	}
	return template.HTML(buf.String()) //nolint:gosec // produced by html/template, which escaped every value
}

type chartLayout struct {
	ID, Metric, Description string
	Width, Height           string
	PlotLeft, PlotRight     string
	PlotTop, PlotBottom     string
	PlotWidth, PlotHeight   string
	MissingTop              string
	Empty                   bool
	Lines                   []chartLine
	Thresholds              []chartThreshold
	YTicks                  []chartTick
	XTicks                  []chartTick
	Steps                   []chartTick
	MissingTicks            []chartTick
}

type chartLine struct {
	Track, Colour, Dash, Points string
	Markers                     []chartMarker
}

type chartMarker struct {
	X, Y, Label string
	Failed      bool
}

type chartThreshold struct{ Label, Y, LabelY string }

type chartTick struct{ Pos, Label, Anchor string }

// layoutChart computes every coordinate of a chart.
func layoutChart(c Chart) chartLayout {
	l := chartLayout{ID: c.ID, Metric: c.Metric, Width: num(chartWidth), Height: num(chartHeight),
		PlotLeft: num(chartLeft), PlotRight: num(chartWidth - chartRight),
		PlotTop: num(chartTop), PlotBottom: num(chartHeight - chartBottom),
		PlotWidth: num(chartWidth - chartLeft - chartRight), PlotHeight: num(chartHeight - chartTop - chartBottom),
		MissingTop: num(chartHeight - chartBottom - 8)}
	t0, t1, v0, v1, ok := chartBounds(c)
	l.Description = describeChart(c)
	if !ok {
		l.Empty, l.Height, l.PlotTop, l.PlotHeight, l.PlotBottom = true, num(48), num(4), num(40), num(44)
		return l
	}
	x := func(t time.Time) float64 {
		return chartLeft + (chartWidth-chartLeft-chartRight)*float64(t.Sub(t0))/float64(t1.Sub(t0))
	}
	y := func(v float64) float64 {
		return chartHeight - chartBottom - (chartHeight-chartTop-chartBottom)*(v-v0)/(v1-v0)
	}
	for _, s := range c.Series {
		style, ok := trackStyles[s.Track]
		if !ok {
			style = otherTrackStyle
		}
		line := chartLine{Track: s.Track, Colour: style.colour, Dash: style.dash}
		var pts []string
		for _, p := range s.Points {
			if p.Missing {
				l.MissingTicks = append(l.MissingTicks, chartTick{Pos: num(x(p.Time)),
					Label: fmt.Sprintf("%s %s: no value (%s)", s.Track, clock(p.Time), p.Verdict)})
				continue
			}
			px, py := num(x(p.Time)), num(y(p.Value))
			pts = append(pts, px+","+py)
			line.Markers = append(line.Markers, chartMarker{X: px, Y: py, Failed: p.Verdict == "Fail",
				Label: fmt.Sprintf("%s %s: %s (%s)", s.Track, clock(p.Time), value(p.Value), p.Verdict)})
		}
		line.Points = strings.Join(pts, " ")
		l.Lines = append(l.Lines, line)
	}
	for _, th := range []struct {
		name string
		v    *float64
	}{{"max", c.Max}, {"min", c.Min}} {
		if th.v != nil {
			ty := y(*th.v)
			l.Thresholds = append(l.Thresholds, chartThreshold{Label: th.name + " " + value(*th.v), Y: num(ty), LabelY: num(ty - 4)})
		}
	}
	for _, v := range niceTicks(v0, v1, chartYTicks) {
		l.YTicks = append(l.YTicks, chartTick{Pos: num(y(v)), Label: value(v)})
	}
	l.XTicks = []chartTick{{Pos: num(x(t0)), Label: clock(t0), Anchor: "start"}, {Pos: num(x(t1)), Label: clock(t1), Anchor: "end"}}
	for _, b := range stepBoundaries(c) {
		l.Steps = append(l.Steps, chartTick{Pos: num(x(b.Time)), Label: stepLabel(b.Step)})
	}
	return l
}

// chartBounds spans every measurement and threshold, with a margin so that no line sits on the frame.
func chartBounds(c Chart) (t0, t1 time.Time, v0, v1 float64, ok bool) {
	v0, v1 = math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for _, p := range s.Points {
			if t0.IsZero() || p.Time.Before(t0) {
				t0 = p.Time
			}
			if p.Time.After(t1) {
				t1 = p.Time
			}
			if !p.Missing {
				v0, v1 = math.Min(v0, p.Value), math.Max(v1, p.Value)
			}
		}
	}
	if t0.IsZero() {
		return t0, t1, 0, 0, false
	}
	for _, th := range []*float64{c.Min, c.Max} {
		if th != nil {
			v0, v1 = math.Min(v0, *th), math.Max(v1, *th)
		}
	}
	if math.IsInf(v0, 1) { // no value at all: an empty value axis around zero
		v0, v1 = 0, 1
	}
	if pad := (v1 - v0) * 0.08; pad > 0 {
		v0, v1 = v0-pad, v1+pad
	} else {
		pad = math.Max(math.Abs(v0)*0.1, 1)
		v0, v1 = v0-pad, v1+pad
	}
	if !t1.After(t0) {
		t0, t1 = t0.Add(-30*time.Second), t1.Add(30*time.Second)
	}
	return t0, t1, v0, v1, true
}

// stepBoundaries are the first measurements of each canary step after the first one seen, in time order.
func stepBoundaries(c Chart) []ChartPoint {
	var all []ChartPoint
	for _, s := range c.Series {
		all = append(all, s.Points...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	var out []ChartPoint
	for i := 1; i < len(all); i++ {
		if all[i].Step != all[i-1].Step {
			out = append(out, all[i])
		}
	}
	return out
}

// describeChart says in words what the chart shows, for screen readers and for text-only readers.
func describeChart(c Chart) string {
	var parts []string
	for _, s := range c.Series {
		n, last, failed := 0, "", 0
		for _, p := range s.Points {
			if p.Missing {
				continue
			}
			n++
			last = value(p.Value)
			if p.Verdict == "Fail" {
				failed++
			}
		}
		part := fmt.Sprintf("%s: %d values", s.Track, n)
		if n > 0 {
			part += ", last " + last
		}
		if failed > 0 {
			part += fmt.Sprintf(", %d failed", failed)
		}
		if missing := len(s.Points) - n; missing > 0 {
			part += fmt.Sprintf(", %d without a value", missing)
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		parts = append(parts, "no measurements yet")
	}
	if c.Max != nil {
		parts = append(parts, "threshold max "+value(*c.Max))
	}
	if c.Min != nil {
		parts = append(parts, "threshold min "+value(*c.Min))
	}
	return c.Metric + " over time. " + strings.Join(parts, "; ") + "."
}

// niceTicks are about n round values (1, 2 or 5 times a power of ten apart) within [v0, v1], for the value axis.
func niceTicks(v0, v1 float64, n int) []float64 {
	raw := (v1 - v0) / float64(n)
	magnitude := math.Pow(10, math.Floor(math.Log10(raw)))
	step := magnitude
	for _, m := range []float64{1, 2, 5, 10} {
		if m*magnitude >= raw {
			step = m * magnitude
			break
		}
	}
	var ticks []float64
	for v := math.Ceil(v0/step) * step; v <= v1 && len(ticks) <= 2*n; v += step {
		tick := math.Round(v/step) * step // no 0.30000000000000004
		if tick == 0 {
			tick = 0 // no -0
		}
		ticks = append(ticks, tick)
	}
	return ticks
}

func stepLabel(step string) string {
	if step == "soak" {
		return "soak"
	}
	return "step " + step
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

func value(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }

func clock(t time.Time) string { return t.UTC().Format("15:04:05") }

var chartTemplate = template.Must(template.New("chart").Parse(`<svg class="chart" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-labelledby="{{.ID}}-title {{.ID}}-desc" xmlns="http://www.w3.org/2000/svg">
<title id="{{.ID}}-title">{{.Metric}}</title>
<desc id="{{.ID}}-desc">{{.Description}}</desc>
<rect x="{{.PlotLeft}}" y="{{.PlotTop}}" width="{{.PlotWidth}}" height="{{.PlotHeight}}" fill="#ffffff" stroke="#d0d7de"/>
{{- if .Empty}}
<text x="{{.PlotLeft}}" y="{{.PlotBottom}}" dx="8" dy="-8" fill="#57606a" font-size="13">No measurements yet</text>
{{- else}}
{{- range .YTicks}}
<line class="grid" x1="{{$.PlotLeft}}" x2="{{$.PlotRight}}" y1="{{.Pos}}" y2="{{.Pos}}" stroke="#eaeef2"/>
<text x="{{$.PlotLeft}}" y="{{.Pos}}" dx="-6" dy="4" text-anchor="end" fill="#57606a" font-size="11">{{.Label}}</text>
{{- end}}
{{- range .XTicks}}
<text x="{{.Pos}}" y="{{$.PlotBottom}}" dy="16" text-anchor="{{.Anchor}}" fill="#57606a" font-size="11">{{.Label}}</text>
{{- end}}
{{- range .Steps}}
<line class="step" x1="{{.Pos}}" x2="{{.Pos}}" y1="{{$.PlotTop}}" y2="{{$.PlotBottom}}" stroke="#afb8c1" stroke-dasharray="3 3"/>
<text x="{{.Pos}}" y="{{$.PlotTop}}" dx="3" dy="11" fill="#57606a" font-size="10">{{.Label}}</text>
{{- end}}
{{- range .Thresholds}}
<line class="threshold" x1="{{$.PlotLeft}}" x2="{{$.PlotRight}}" y1="{{.Y}}" y2="{{.Y}}" stroke="#cf222e" stroke-dasharray="6 4"/>
<text class="threshold-label" x="{{$.PlotRight}}" y="{{.LabelY}}" text-anchor="end" fill="#cf222e" font-size="11">{{.Label}}</text>
{{- end}}
{{- range .MissingTicks}}
<line class="missing" x1="{{.Pos}}" x2="{{.Pos}}" y1="{{$.MissingTop}}" y2="{{$.PlotBottom}}" stroke="#9a6700" stroke-width="2"><title>{{.Label}}</title></line>
{{- end}}
{{- range .Lines}}
<g class="series" data-track="{{.Track}}">
<polyline fill="none" stroke="{{.Colour}}" stroke-width="2"{{if .Dash}} stroke-dasharray="{{.Dash}}"{{end}} points="{{.Points}}"/>
{{- $colour := .Colour}}
{{- range .Markers}}
<circle class="{{if .Failed}}failed{{else}}point{{end}}" cx="{{.X}}" cy="{{.Y}}" r="{{if .Failed}}4.5{{else}}2.5{{end}}" fill="{{if .Failed}}#cf222e{{else}}{{$colour}}{{end}}"><title>{{.Label}}</title></circle>
{{- end}}
</g>
{{- end}}
{{- end}}
</svg>`))
