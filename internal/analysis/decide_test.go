package analysis

import "testing"

func TestDecide(t *testing.T) {
	policy := Policy{FailureLimit: 1, MissingBudget: 3, MinSamples: 3}
	tests := []struct {
		name     string
		tallies  map[string]Tally
		policy   Policy
		done     bool
		decision Decision
		reason   string
	}{
		{"nothing yet", nil, policy, false, Continue, "0 measurements: 0 passed, 0 failed, 0 missing (budget 3) so far"},
		{"measuring", map[string]Tally{"errors": {Passed: 2, Inconclusive: 1}}, policy, false, Continue,
			"3 measurements: 2 passed, 0 failed, 1 missing (budget 3) so far"},
		{"failures within limit", map[string]Tally{"errors": {Passed: 4, Failed: 1}}, policy, true, Passed,
			"5 measurements: 4 passed, 1 failed, 0 missing (budget 3); every metric passed at least 3"},
		{"one failure too many", map[string]Tally{"errors": {Passed: 4, Failed: 2}}, policy, false, Failed,
			"errors failed 2 of 6 measurements (limit 1)"},
		{"limit is per metric", map[string]Tally{"errors": {Passed: 3, Failed: 1}, "latency": {Passed: 3, Failed: 1}}, policy, true, Passed,
			"8 measurements: 6 passed, 2 failed, 0 missing (budget 3); every metric passed at least 3"},
		{"every failing metric named", map[string]Tally{"latency": {Failed: 3}, "errors": {Failed: 2}, "ok": {Passed: 9}}, policy, false, Failed,
			"errors failed 2 of 2 measurements (limit 1); latency failed 3 of 3 measurements (limit 1)"},
		{"missing within budget", map[string]Tally{"errors": {Passed: 3, Inconclusive: 2}, "latency": {Passed: 3, Inconclusive: 1}}, policy, true, Passed,
			"9 measurements: 6 passed, 0 failed, 3 missing (budget 3); every metric passed at least 3"},
		{"missing over budget across metrics", map[string]Tally{"errors": {Passed: 4, Inconclusive: 2}, "latency": {Passed: 4, Inconclusive: 2}}, policy, false, Held,
			"4 of 12 measurements missing (budget 3)"},
		{"an outage never passes", map[string]Tally{"errors": {Passed: 3, Inconclusive: 4}}, policy, true, Held,
			"4 of 7 measurements missing (budget 3)"},
		{"evidence outranks missing data", map[string]Tally{"errors": {Failed: 2, Inconclusive: 9}}, policy, false, Failed,
			"errors failed 2 of 11 measurements (limit 1)"},
		{"not enough passes yet", map[string]Tally{"errors": {Passed: 3}, "latency": {Passed: 2, Inconclusive: 1}}, policy, true, Continue,
			"waiting for latency: 2 of 3 passing measurements needed"},
		{"zero min samples still needs one pass", map[string]Tally{"errors": {Inconclusive: 1}}, Policy{MissingBudget: 3}, true, Continue,
			"waiting for errors: 0 of 1 passing measurements needed"},
		{"negative limits count as zero", map[string]Tally{"errors": {Passed: 1, Failed: 1}}, Policy{FailureLimit: -1, MissingBudget: -5}, false, Failed,
			"errors failed 1 of 2 measurements (limit 0)"},
		{"no metric at the end", map[string]Tally{}, policy, true, Held, "the analysis ended without any metric measured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, reason := Decide(tt.tallies, tt.policy, tt.done)
			if d != tt.decision || reason != tt.reason {
				t.Errorf("Decide = %s %q, want %s %q", d, reason, tt.decision, tt.reason)
			}
		})
	}
}
