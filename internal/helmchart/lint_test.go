package helmchart

import (
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// lintChart lints charts/ferry as `helm lint --strict charts/ferry -n ferry-system --set …` does and returns what
// strict mode fails on: every message above INFO.
func lintChart(t *testing.T, sets ...string) []support.Message {
	t.Helper()
	linter := lint.AllWithKubeVersionAndSchemaValidation(chartDir, setValues(t, sets...), namespace, nil, false)
	var problems []support.Message
	for _, m := range linter.Messages {
		if m.Severity > support.InfoSev {
			problems = append(problems, m)
		}
	}
	return problems
}

// TestChartLintsStrictly: `helm lint --strict` finds nothing to warn about, with the default values and with
// every optional part on. (Helm's lint logs a template's `fail` instead of failing, so a missing digest is
// caught by rendering: TestRenderingRefusesWhatIsNotADigest.)
func TestChartLintsStrictly(t *testing.T) {
	for name, sets := range map[string][]string{
		"defaults": withDigest(),
		"everything on": withDigest("monitoring.serviceMonitor.enabled=true", "monitoring.prometheusRule.enabled=true",
			"monitoring.dashboard.enabled=true", "monitoring.metricsReaders[0].name=prometheus-k8s",
			"monitoring.metricsReaders[0].namespace=monitoring", "watchNamespaces={shop,shop-prod}",
			"syncNamespaces={shop-dev,shop-prod}", "registryWebhook.hmacSecret=true", "tenancy.noCrossNamespaceSync=true"),
		"everything off": withDigest("auditWebhook.enabled=false", "registryWebhook.enabled=false",
			"tenancy.defaultServiceAccount=", "leaderElection.enabled=false", "replicas=1"),
		"cert-manager": withDigest("auditWebhook.certificate.source=cert-manager"),
	} {
		t.Run(name, func(t *testing.T) {
			for _, m := range lintChart(t, sets...) {
				t.Errorf("helm lint --strict: %s", m)
			}
		})
	}
}
