package analysis

import (
	"fmt"
	"slices"
	"strings"
)

// Policy is how much an analysis run (one canary step, or one soak) tolerates.
type Policy struct {
	FailureLimit  int // Fail measurements tolerated per metric; one more fails the run
	MissingBudget int // Inconclusive measurements tolerated in the run before it holds for a person
	MinSamples    int // Pass measurements needed per metric before the run can pass; below 1 counts as 1
}

// Tally counts one metric's measurements in a run.
type Tally struct {
	Passed, Failed, Inconclusive int
}

// Decision is what a run does next.
type Decision string

const (
	Continue Decision = "Continue" // keep measuring
	Passed   Decision = "Passed"   // the run passed: move on
	Failed   Decision = "Failed"   // measured evidence failed the run: roll back
	Held     Decision = "Held"     // too much is unknown: wait for a person, neither roll back nor move on
)

// Decide judges a run from its tallies, in this order:
//   - Failed when any metric failed more than FailureLimit times: measured evidence outranks missing data;
//   - Held when the run's Inconclusive measurements exceed MissingBudget, so an outage never silently stretches
//     or passes an analysis;
//   - Passed when elapsedDone and every metric passed at least MinSamples times (at least once: a run passes on
//     evidence, never on its absence, and a run with no metric at all is Held);
//   - Continue otherwise.
//
// The reason is a sentence for status and events, e.g. "4 of 12 measurements missing (budget 3)".
func Decide(perMetric map[string]Tally, p Policy, elapsedDone bool) (Decision, string) {
	p = normalize(p)
	names := make([]string, 0, len(perMetric))
	for name := range perMetric {
		names = append(names, name)
	}
	slices.Sort(names)
	sum := total(perMetric)
	if failed := overLimit(perMetric, names, p.FailureLimit); len(failed) > 0 {
		return Failed, strings.Join(failed, "; ")
	}
	if sum.Inconclusive > p.MissingBudget {
		return Held, fmt.Sprintf("%d of %d measurements missing (budget %d)", sum.Inconclusive, count(sum), p.MissingBudget)
	}
	if !elapsedDone {
		return Continue, fmt.Sprintf("%s so far", summary(sum, p))
	}
	if len(names) == 0 {
		return Held, "the analysis ended without any metric measured"
	}
	for _, name := range names {
		if t := perMetric[name]; t.Passed < p.MinSamples {
			return Continue, fmt.Sprintf("waiting for %s: %d of %d passing measurements needed", name, t.Passed, p.MinSamples)
		}
	}
	return Passed, fmt.Sprintf("%s; every metric passed at least %d", summary(sum, p), p.MinSamples)
}

func normalize(p Policy) Policy {
	p.FailureLimit = max(p.FailureLimit, 0)
	p.MissingBudget = max(p.MissingBudget, 0)
	p.MinSamples = max(p.MinSamples, 1)
	return p
}

// overLimit describes each metric, in name order, that failed more often than limit.
func overLimit(perMetric map[string]Tally, names []string, limit int) []string {
	var out []string
	for _, name := range names {
		if t := perMetric[name]; t.Failed > limit {
			out = append(out, fmt.Sprintf("%s failed %d of %d measurements (limit %d)", name, t.Failed, count(t), limit))
		}
	}
	return out
}

func total(perMetric map[string]Tally) Tally {
	var sum Tally
	for _, t := range perMetric {
		sum.Passed += t.Passed
		sum.Failed += t.Failed
		sum.Inconclusive += t.Inconclusive
	}
	return sum
}

func count(t Tally) int { return t.Passed + t.Failed + t.Inconclusive }

func summary(sum Tally, p Policy) string {
	noun := "measurements"
	if count(sum) == 1 {
		noun = "measurement"
	}
	return fmt.Sprintf("%d %s: %d passed, %d failed, %d missing (budget %d)",
		count(sum), noun, sum.Passed, sum.Failed, sum.Inconclusive, p.MissingBudget)
}
