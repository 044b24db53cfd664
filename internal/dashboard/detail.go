package dashboard

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
)

// promotionView is the Promotion page.
type promotionView struct {
	promotionRow
	Conditions []conditionView
	Candidate  *candidateView
	Details    []stageDetail
	HasForge   bool
}

type candidateView struct {
	Digest   digestView
	Tag      string
	Verified bool
	Signers  []string
	Message  string
}

// stageDetail is one stage's section: its state, the actions that fit it, its history and its analysis.
type stageDetail struct {
	stageCell
	Actions  []actionLink
	History  []historyRow
	Analysis *analysisView
}

type historyRow struct {
	Time              timeView
	Digest            digestView
	Outcome           string
	Commit, CommitURL string
	Approver, Source  string
	Signers           []string
	PullRequestURL    string
	Reason            string
}

// analysisView is a stage's canary and analysis: its verdict and a chart per metric.
type analysisView struct {
	Digest                 digestView
	Phase, Message, Run    string
	Step                   string
	Weight                 int32
	Missing, Taken, Budget int32
	ApprovedBy, AbortedBy  string
	Charts                 []chartView
	Comparisons            []ferryv1.Comparison
	Tallies                []ferryv1.MetricTally
}

type chartView struct {
	Metric     string
	Thresholds string
	Tracks     []string
	SVG        any // template.HTML from RenderChart
}

func newPromotionView(p *ferryv1.Promotion, now time.Time) promotionView {
	v := promotionView{promotionRow: newPromotionRow(p, now)}
	for _, c := range p.Status.Conditions {
		v.Conditions = append(v.Conditions, condition(c))
	}
	if c := p.Status.Candidate; c != nil {
		v.Candidate = &candidateView{Digest: digest(c.Digest), Tag: c.Tag, Verified: c.Verified, Signers: c.Signers, Message: c.Message}
	}
	link := commitLinker(p)
	v.HasForge = link != nil
	for i, s := range promotionctl.StageRows(p) {
		d := stageDetail{stageCell: v.Stages[i], Actions: actionsFor(p, s)}
		for _, h := range promotionctl.NewestFirst(s.History) {
			row := historyRow{Time: timeOf(&h.Time, now), Digest: digest(h.Digest), Outcome: string(h.Outcome),
				Commit: shortCommit(h.CommitSHA), Approver: h.Approver, Source: h.Source, Signers: h.Signers,
				PullRequestURL: h.PullRequestURL, Reason: h.Reason}
			if link != nil {
				row.CommitURL = link(h.CommitSHA)
			}
			d.History = append(d.History, row)
		}
		if s.Analysis != nil {
			d.Analysis = newAnalysisView(p, s, i)
		}
		v.Details = append(v.Details, d)
	}
	return v
}

func shortCommit(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func newAnalysisView(p *ferryv1.Promotion, s ferryv1.StageStatus, index int) *analysisView {
	a := s.Analysis
	v := &analysisView{Digest: digest(a.Digest), Phase: string(a.Phase), Message: a.Message, Run: string(a.Run),
		Weight: a.Weight, Missing: a.Missing, Taken: a.Taken, Budget: a.Budget, ApprovedBy: a.ApprovedBy,
		AbortedBy: a.AbortedBy, Comparisons: a.Comparisons, Tallies: a.Tallies}
	if a.Step != nil {
		v.Step = promotionctl.StepOf(p, s.Name, a)
	}
	var spec *ferryv1.AnalysisSpec
	if st := promotionctl.StageSpec(p, s.Name); st != nil {
		spec = st.Analysis
	}
	for j, c := range AnalysisCharts(a, spec) {
		c.ID = fmt.Sprintf("chart-%d-%d", index, j)
		cv := chartView{Metric: c.Metric, Thresholds: thresholdText(c), SVG: RenderChart(c)}
		for _, s := range c.Series {
			cv.Tracks = append(cv.Tracks, s.Track)
		}
		v.Charts = append(v.Charts, cv)
	}
	return v
}

func thresholdText(c Chart) string {
	var parts []string
	if c.Min != nil {
		parts = append(parts, "min "+value(*c.Min))
	}
	if c.Max != nil {
		parts = append(parts, "max "+value(*c.Max))
	}
	if len(parts) == 0 {
		return "no min or max threshold"
	}
	return strings.Join(parts, ", ")
}

// trackOrder puts the tracks people compare next to each other.
var trackOrder = map[string]int{"canary": 0, "baseline": 1, "stable": 2}

// AnalysisCharts turns an analysis' measurements into one chart per metric, in the order the spec declares
// them (metrics the spec no longer declares, and the traffic query, follow), each with one series per track
// and the spec's min and max thresholds.
func AnalysisCharts(a *ferryv1.AnalysisStatus, spec *ferryv1.AnalysisSpec) []Chart {
	var order []string
	thresholds := map[string][2]*float64{}
	if spec != nil {
		for _, m := range spec.Metrics {
			order = append(order, m.Name)
			thresholds[m.Name] = [2]*float64{decimal(m.Min), decimal(m.Max)}
		}
	}
	series := map[string]map[string]*ChartSeries{}
	var tracks = map[string][]string{}
	for _, m := range promotionctl.OldestFirst(a.Measurements) {
		if series[m.Metric] == nil {
			series[m.Metric] = map[string]*ChartSeries{}
			if _, declared := thresholds[m.Metric]; !declared {
				order = append(order, m.Metric)
			}
		}
		s := series[m.Metric][m.Track]
		if s == nil {
			s = &ChartSeries{Track: m.Track}
			series[m.Metric][m.Track] = s
			tracks[m.Metric] = append(tracks[m.Metric], m.Track)
		}
		p := ChartPoint{Time: m.Time.Time, Verdict: m.Verdict, Step: "soak"}
		if m.Step != nil {
			p.Step = strconv.Itoa(int(*m.Step) + 1)
		}
		if f, err := strconv.ParseFloat(m.Value, 64); err == nil && !isNaNOrInf(f) {
			p.Value = f
		} else {
			p.Missing = true
		}
		s.Points = append(s.Points, p)
	}
	var charts []Chart
	for _, metric := range order {
		c := Chart{Metric: metric, Min: thresholds[metric][0], Max: thresholds[metric][1]}
		names := tracks[metric]
		sortTracks(names)
		for _, t := range names {
			c.Series = append(c.Series, *series[metric][t])
		}
		charts = append(charts, c)
	}
	return charts
}

func sortTracks(names []string) {
	rank := func(t string) int {
		if r, ok := trackOrder[t]; ok {
			return r
		}
		return len(trackOrder)
	}
	sort.SliceStable(names, func(i, j int) bool {
		if ri, rj := rank(names[i]), rank(names[j]); ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
}

func decimal(s *string) *float64 {
	if s == nil {
		return nil
	}
	f, err := strconv.ParseFloat(*s, 64)
	if err != nil || isNaNOrInf(f) {
		return nil
	}
	return &f
}

func isNaNOrInf(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }
