package analysis

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// promql parses queries only to find their selectors. It accepts everything a current Prometheus may have
// enabled except duration expressions, whose offsets cannot be read without evaluating them; a query this parser
// rejects gets an unknown freshness, never an error, since Prometheus is the judge of what it accepts.
var promql = parser.NewParser(parser.Options{
	EnableExperimentalFunctions:  true,
	EnableExtendedRangeSelectors: true,
	EnableBinopFillModifiers:     true,
})

// maxSelectors bounds the freshness queries one measurement may cost.
const maxSelectors = 20

// selector is one series selector of a query, as Prometheus needs to see it again to report its samples' times.
type selector struct {
	matchers string        // {a="b",...}: every matcher, the metric name included
	offset   time.Duration // its own offset plus those of the subqueries around it
}

// selectors returns the distinct selectors whose freshness stands for the query's; ok is false when a selector's
// time cannot be established.
func selectors(expr parser.Expr) (sels []selector, ok bool) {
	ok = true
	seen := map[selector]bool{}
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		vs, isSelector := node.(*parser.VectorSelector)
		if !isSelector || !ok {
			return nil
		}
		sel, use, known := selectorOf(vs, path)
		switch {
		case !known:
			ok = false
		case use && !seen[sel]:
			seen[sel] = true
			sels = append(sels, sel)
		}
		return nil
	})
	if !ok || len(sels) > maxSelectors {
		return nil, false
	}
	return sels, true
}

// selectorOf describes vs; use is false for a selector whose age is no staleness (pinned with @ to a time, or
// the label selector of info()); known is false when its offset is an expression.
func selectorOf(vs *parser.VectorSelector, path []parser.Node) (sel selector, use, known bool) {
	if vs.BypassEmptyMatcherCheck || vs.Timestamp != nil {
		return selector{}, false, true
	}
	if vs.OriginalOffsetExpr != nil {
		return selector{}, false, false
	}
	offset := vs.OriginalOffset
	for _, n := range path {
		sq, isSubquery := n.(*parser.SubqueryExpr)
		if !isSubquery {
			continue
		}
		if sq.Timestamp != nil {
			return selector{}, false, true
		}
		if sq.OriginalOffsetExpr != nil {
			return selector{}, false, false
		}
		offset += sq.OriginalOffset
	}
	ms := make([]string, len(vs.LabelMatchers))
	for i, m := range vs.LabelMatchers {
		ms[i] = m.String()
	}
	return selector{matchers: "{" + strings.Join(ms, ",") + "}", offset: offset}, true, true
}

// freshness is what Prometheus said about one selector's newest sample.
type freshness int

const (
	fresh   freshness = iota // a time was found
	absent                   // no current sample: the selector adds nothing to the value
	unknown                  // Prometheus would not say
)

// newest returns the oldest, across the query's selectors, of each selector's newest raw sample time; zero when
// unknown. Only an unavailable Prometheus is an error.
func (p *Prometheus) newest(ctx context.Context, expr parser.Expr, at time.Time) (time.Time, error) {
	sels, ok := selectors(expr)
	if !ok {
		return time.Time{}, nil
	}
	var oldest time.Time
	for _, sel := range sels {
		t, state, err := p.selectorNewest(ctx, sel, at)
		switch {
		case err != nil:
			return time.Time{}, err
		case state == unknown:
			return time.Time{}, nil
		case state == fresh && (oldest.IsZero() || t.Before(oldest)):
			oldest = t
		}
	}
	return oldest, nil
}

// selectorNewest asks for the time of sel's newest raw sample as seen at at. timestamp() applied directly to a
// selector returns the samples' own times, not the evaluation time.
func (p *Prometheus) selectorNewest(ctx context.Context, sel selector, at time.Time) (time.Time, freshness, error) {
	v, err := p.instant(ctx, "max(timestamp("+sel.matchers+"))", at.Add(-sel.offset))
	if errors.Is(err, ErrBadQuery) {
		return time.Time{}, unknown, nil
	}
	if err != nil {
		return time.Time{}, unknown, err
	}
	s, err := single(v)
	if errors.Is(err, ErrNoData) {
		return time.Time{}, absent, nil
	}
	if err != nil {
		return time.Time{}, unknown, nil
	}
	t, ok := unixTime(s.Value)
	if !ok {
		return time.Time{}, unknown, nil
	}
	return t.Add(sel.offset), fresh, nil
}
