package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StageSpec is one environment of the pipeline: where the digest is copied, where Git declares it, how it is
// approved, synced, analysed and gated before the next stage may take it.
type StageSpec struct {
	// Name of the stage, a DNS label unique within the Promotion, for example "staging".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Registry is the stage's own image repository. The digest, with every signature, attestation and SBOM
	// attached to it, is copied there and verified again before Git is changed.
	// +required
	Registry StageRegistry `json:"registry"`

	// Path is the folder of the stage in the Git repository, relative to its root, for example "envs/prod".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.split('/').exists(p, p == '..')",message="path must be relative to the repository root and must not contain '..'"
	Path string `json:"path"`

	// Manifest says how the digest is written into the files under Path.
	// +optional
	// +kubebuilder:default={format: Kustomize}
	Manifest ManifestSpec `json:"manifest,omitempty"`

	// Approval decides whether Ferry commits directly or opens a pull request that a release manager merges.
	// +optional
	// +kubebuilder:default={mode: Automatic}
	Approval ApprovalSpec `json:"approval,omitempty"`

	// Sync is where and how the stage's Git path is applied to a cluster.
	// +required
	Sync SyncSpec `json:"sync"`

	// Canary rolls the new digest out in weighted steps before it takes all replicas.
	// +optional
	Canary *CanarySpec `json:"canary,omitempty"`

	// Analysis gates the rollout on Prometheus metrics.
	// +optional
	Analysis *AnalysisSpec `json:"analysis,omitempty"`

	// Gates must pass before the next stage may take this stage's digest.
	// +optional
	// +kubebuilder:default={}
	Gates GatesSpec `json:"gates,omitempty"`

	// Rollback says when Ferry rolls the stage back on its own, by committing the previous digest to Git.
	// +optional
	// +kubebuilder:default={}
	Rollback RollbackPolicy `json:"rollback,omitempty"`
}

// StageRegistry is a stage's image repository and how to reach it.
type StageRegistry struct {
	// Repository is the destination repository without tag or digest, for example
	// "registry.prod.example.com/shop".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.contains('@') && !self.matches(':[^/]*$')",message="registry.repository: must be a repository without tag or digest"
	Repository string `json:"repository"`

	RegistryAccess `json:",inline"`
}

// ManifestFormat is how a digest is written into a stage's files.
// +kubebuilder:validation:Enum=Kustomize;Plain;HelmValues
type ManifestFormat string

// Manifest formats.
const (
	// ManifestKustomize sets the digest in the images: list of kustomization.yaml.
	ManifestKustomize ManifestFormat = "Kustomize"
	// ManifestPlain sets the image of every matching container in plain Kubernetes manifests.
	ManifestPlain ManifestFormat = "Plain"
	// ManifestHelmValues sets the image at a key path of a Helm values file (see manifest.helm), and the stage path
	// holds a Helm chart — or an umbrella chart with its dependencies vendored under charts/ — that Ferry renders
	// offline with the Helm SDK and applies like any other format. Hooks other than tests, lookup and
	// dependencies that are not vendored are refused; see docs/helm.md.
	ManifestHelmValues ManifestFormat = "HelmValues"
)

// ManifestSpec says how the digest is written into the files of a stage.
// +kubebuilder:validation:XValidation:rule="(self.format == 'HelmValues') == has(self.helm)",message="manifest.helm: required when format is HelmValues, and only then",fieldPath=".helm",reason="FieldValueInvalid"
type ManifestSpec struct {
	// Format of the stage's files.
	// +optional
	// +kubebuilder:default=Kustomize
	Format ManifestFormat `json:"format,omitempty"`

	// Image is the image name as written in the manifests, when it differs from the stage registry repository
	// (for example the source image, rewritten by kustomize). Defaults to the stage registry repository.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// Helm locates the image in a Helm values file, and the chart rendered with it.
	// +optional
	Helm *HelmValuesSpec `json:"helm,omitempty"`
}

// HelmValuesSpec locates an image in a Helm values file, and the chart the stage renders with it. The chart comes
// from the stage's Git path only: there is no chart repository, OCI reference or credential to declare, because
// Ferry fetches no chart.
type HelmValuesSpec struct {
	// File is the values file, relative to the stage path. Ferry pins the digest in it, and renders the chart with
	// it over the chart's own values.yaml.
	// +optional
	// +kubebuilder:default="values.yaml"
	// +kubebuilder:validation:MaxLength=1024
	File string `json:"file,omitempty"`

	// KeyPath is the dotted path of the image value, for example "image" or "app.image": a "repository:tag" string,
	// or a map with repository, tag and digest (the digest is set, the tag kept). The chart must run the digest
	// pinned there, or the stage stalls naming this field.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`
	KeyPath string `json:"keyPath"`

	// Chart is the folder holding the chart's Chart.yaml, relative to the stage path: the stage path itself by
	// default. Its dependencies must be vendored in its charts/ folder.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.split('/').exists(p, p == '..')",message="manifest.helm.chart: must be relative to the stage path and must not contain '..'"
	Chart string `json:"chart,omitempty"`

	// ReleaseName is the Helm release name the chart is rendered with (.Release.Name): "<promotion>-<stage>" by
	// default. The release namespace is sync.namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=53
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ReleaseName string `json:"releaseName,omitempty"`
}

// ApprovalMode is how a stage's Git change is approved.
// +kubebuilder:validation:Enum=Automatic;PullRequest
type ApprovalMode string

// Approval modes.
const (
	// ApprovalAutomatic commits straight to the branch.
	ApprovalAutomatic ApprovalMode = "Automatic"
	// ApprovalPullRequest opens a pull request; merging it approves the stage, closing it rejects the digest.
	ApprovalPullRequest ApprovalMode = "PullRequest"
)

// ApprovalSpec decides how a stage's Git change is approved.
// +kubebuilder:validation:XValidation:rule="self.mode != 'PullRequest' || has(self.pullRequest)",message="approval.pullRequest: required when mode is PullRequest (provider and tokenSecretRef)",fieldPath=".pullRequest",reason="FieldValueRequired"
type ApprovalSpec struct {
	// Mode of approval.
	// +optional
	// +kubebuilder:default=Automatic
	Mode ApprovalMode `json:"mode,omitempty"`

	// PullRequest configures the pull request that approves the stage.
	// +optional
	PullRequest *PullRequestApproval `json:"pullRequest,omitempty"`
}

// SCMProvider is a Git forge that hosts pull requests.
// +kubebuilder:validation:Enum=Gitea;GitHub;GitLab
type SCMProvider string

// Supported forges.
const (
	ProviderGitea  SCMProvider = "Gitea"
	ProviderGitHub SCMProvider = "GitHub"
	ProviderGitLab SCMProvider = "GitLab"
)

// PullRequestApproval configures the pull request a release manager merges to approve a stage.
// +kubebuilder:validation:XValidation:rule="self.provider != 'Gitea' || has(self.apiURL)",message="approval.pullRequest.apiURL: required for provider Gitea",fieldPath=".apiURL",reason="FieldValueRequired"
type PullRequestApproval struct {
	// Provider is the forge's API flavour.
	// +required
	Provider SCMProvider `json:"provider"`

	// APIURL is the forge's API base URL; defaults to the public service of the provider (required for Gitea).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://\S+$`
	APIURL string `json:"apiURL,omitempty"`

	// TokenSecretRef names the Secret key holding the API token; the key defaults to "token".
	// +required
	TokenSecretRef SecretKeyReference `json:"tokenSecretRef"`

	// Reviewers are asked to review the pull request (user names).
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	Reviewers []string `json:"reviewers,omitempty"`

	// Labels are put on the pull request.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	Labels []string `json:"labels,omitempty"`

	// TitleTemplate is a Go text/template for the title; same fields as the commit message template.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	TitleTemplate string `json:"titleTemplate,omitempty"`
}

// SyncMode is who applies a stage's commit to its cluster.
// +kubebuilder:validation:Enum=Ferry;ArgoCD;Flux
type SyncMode string

// Sync modes.
const (
	// SyncFerry: Ferry renders the stage path and applies it itself (gitops-engine).
	SyncFerry SyncMode = "Ferry"
	// SyncArgoCD: an Argo CD Application syncs the stage path; Ferry asks it to sync Ferry's commit and reads its
	// sync and health status.
	SyncArgoCD SyncMode = "ArgoCD"
	// SyncFlux: a Flux Kustomization or HelmRelease syncs the stage path; Ferry asks it to reconcile and reads its
	// applied revision and Ready condition.
	SyncFlux SyncMode = "Flux"
)

// SyncSpec is where and how a stage's Git path is applied.
// +kubebuilder:validation:XValidation:rule="(has(self.mode) && self.mode == 'ArgoCD') == has(self.argoCD)",message="sync.argoCD: required when mode is ArgoCD, and only then",fieldPath=".argoCD",reason="FieldValueInvalid"
// +kubebuilder:validation:XValidation:rule="(has(self.mode) && self.mode == 'Flux') == has(self.flux)",message="sync.flux: required when mode is Flux, and only then",fieldPath=".flux",reason="FieldValueInvalid"
type SyncSpec struct {
	// Mode is who applies the stage's commit: Ferry itself (the default), or the Argo CD Application or Flux object
	// that already syncs the stage's path. In the external modes Ferry still verifies, copies and pins the digest
	// in Git, and rolls back through Git; it then asks that controller to sync its commit and waits until the
	// controller reports that commit applied and healthy.
	// +optional
	// +kubebuilder:default=Ferry
	Mode SyncMode `json:"mode,omitempty"`

	// ArgoCD names the Application that syncs the stage (mode ArgoCD).
	// +optional
	ArgoCD *ArgoCDSyncSpec `json:"argoCD,omitempty"`

	// Flux names the Flux object that syncs the stage (mode Flux).
	// +optional
	Flux *FluxSyncSpec `json:"flux,omitempty"`

	// Namespace the stage's resources are applied to.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`

	// KubeconfigSecretRef names a Secret key holding a kubeconfig for a remote cluster; the key defaults to
	// "value". Without it the stage is applied to the cluster Ferry runs in.
	// +optional
	KubeconfigSecretRef *SecretKeyReference `json:"kubeconfigSecretRef,omitempty"`

	// Prune deletes resources that were applied by Ferry for this stage and are no longer in Git.
	// +optional
	Prune bool `json:"prune,omitempty"`

	// HealthTimeout is how long the stage may take to become healthy after a sync before it counts as failed.
	// +optional
	// +kubebuilder:default="10m"
	HealthTimeout *metav1.Duration `json:"healthTimeout,omitempty"`
}

// ArgoCDSyncSpec names an Argo CD Application (argoproj.io/v1alpha1).
type ArgoCDSyncSpec struct {
	// Name of the Application.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`

	// Namespace of the Application.
	// +optional
	// +kubebuilder:default=argocd
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`
}

// FluxKind is the kind of Flux object that syncs a stage.
// +kubebuilder:validation:Enum=Kustomization;HelmRelease
type FluxKind string

// Flux kinds.
const (
	// FluxKustomization is a kustomize.toolkit.fluxcd.io Kustomization.
	FluxKustomization FluxKind = "Kustomization"
	// FluxHelmRelease is a helm.toolkit.fluxcd.io HelmRelease.
	FluxHelmRelease FluxKind = "HelmRelease"
)

// FluxSyncSpec names a Flux Kustomization or HelmRelease.
type FluxSyncSpec struct {
	// Kind of the object.
	// +optional
	// +kubebuilder:default=Kustomization
	Kind FluxKind `json:"kind,omitempty"`

	// Name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`

	// Namespace of the object; the Promotion's namespace when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`
}

// CanarySpec rolls a new digest out in steps before it takes the stage's workload. Git already declares the new
// digest; the stage's workload keeps running the previous one, at full size, while Ferry runs a canary copy of it
// on the new digest beside it (the same pod labels, so the Service sends it a share of the traffic, plus
// ferry.dev/track=canary), sized by each step's weight. Each step holds for its pause while the analysis measures
// it. When the last step passes, the stage's commit is applied and the copies are removed; when it fails, the
// previous digest is committed back to Git. A stage that runs nothing yet is deployed without a canary.
type CanarySpec struct {
	// Replicas is the total number of replicas the weights are shares of: a step of weight w runs
	// ceil(w × replicas / 100) canary pods beside the stable workload.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Replicas int32 `json:"replicas,omitempty"`

	// Steps in order; weights must be strictly increasing, each in 1..100.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	// +kubebuilder:validation:XValidation:rule="self.map(s, s.weight).isSorted() && self.all(s, self.filter(x, x.weight == s.weight).size() == 1)",message="canary.steps: weights must be strictly increasing",reason="FieldValueInvalid"
	Steps []CanaryStep `json:"steps"`

	// TrafficRouting sends each step's weight of the traffic to the canary through a Gateway API HTTPRoute, on
	// top of the replica share the stage's Service gives it.
	// +optional
	TrafficRouting *TrafficRoutingSpec `json:"trafficRouting,omitempty"`
}

// TrafficRoutingSpec is how a canary's traffic weight is set.
type TrafficRoutingSpec struct {
	// HTTPRoute is a Gateway API HTTPRoute in the stage namespace that routes to the stable Service.
	// +required
	HTTPRoute HTTPRouteRouting `json:"httpRoute"`
}

// HTTPRouteRouting names an HTTPRoute and the stable Service it routes to. During a canary step of weight w,
// Ferry creates the Service <service>-canary (selecting only the canary pods) and, in every rule whose only
// backend is the stable Service, sends it w% and the stable Service the rest; the route's own weights are
// restored when the canary ends. The stable Service still spreads its share over every pod it selects, canary
// pods included, so the canary's effective share is w% plus its replica share of the rest.
type HTTPRouteRouting struct {
	// Name of the HTTPRoute.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Service is the stable Service the route sends traffic to.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Service string `json:"service"`
}

// CanaryStep is one step of a canary: a weight, held for a pause.
type CanaryStep struct {
	// Weight is the percentage of canary.replicas run on the new digest.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Weight int32 `json:"weight"`

	// Pause is how long the step is held and measured, counted from when its canary pods are ready. Without an
	// analysis a step needs a pause; with one, the step also needs analysis.minSamples measurements of every metric.
	// +optional
	Pause *metav1.Duration `json:"pause,omitempty"`
}

// AnalysisSpec gates a stage on Prometheus metrics measured at an interval: during each canary step, and during
// the soak (the watch window after the digest took the whole stage). Missing data is never a verdict: an
// unreachable Prometheus, no series, NaN, a stale sample or too little traffic is inconclusive, holds the stage
// and counts against inconclusiveLimit; only measured evidence fails it.
// +kubebuilder:validation:XValidation:rule="has(self.baseline) || self.metrics.all(m, !has(m.maxBaselineDeviationPercent))",message="analysis.baseline: required when a metric sets maxBaselineDeviationPercent",fieldPath=".baseline",reason="FieldValueRequired"
// +kubebuilder:validation:XValidation:rule="self.metrics.all(m, has(m.min) || has(m.max) || has(m.maxBaselineDeviationPercent))",message="analysis.metrics: set min, max or maxBaselineDeviationPercent",reason="FieldValueRequired"
type AnalysisSpec struct {
	// Prometheus is the server queried.
	// +required
	Prometheus PrometheusSpec `json:"prometheus"`

	// Interval between measurements. A sample older than the interval is stale: Prometheus keeps serving a series
	// for minutes after its source died, and a dead canary must not look healthy.
	// +optional
	// +kubebuilder:default="1m"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// FailureLimit is how many failed measurements of a metric are tolerated in one run (a canary step or the
	// soak); one more fails the analysis.
	// +optional
	// +kubebuilder:validation:Minimum=0
	FailureLimit int32 `json:"failureLimit,omitempty"`

	// InconclusiveLimit is how many inconclusive measurements (missing data) are tolerated in one run; one more
	// holds the stage for a person (ferry approve / ferry abort). It never fails or passes the analysis.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=0
	InconclusiveLimit *int32 `json:"inconclusiveLimit,omitempty"`

	// OutageDeadline is how long data may be missing without a break before the stage waits for a person
	// instead of resuming on its own when data returns.
	// +optional
	// +kubebuilder:default="10m"
	OutageDeadline *metav1.Duration `json:"outageDeadline,omitempty"`

	// HeldTimeout aborts a run that has waited this long for a person (Held: missing-data budget or outage deadline
	// spent, a Marginal comparison, or a failure the policy does not roll back): the previous digest is committed
	// back to Git. Without it a held run waits for a person indefinitely; it never promotes on its own.
	// +optional
	HeldTimeout *metav1.Duration `json:"heldTimeout,omitempty"`

	// MinSamples is how many measurements of each metric a run needs before it can pass.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MinSamples int32 `json:"minSamples,omitempty"`

	// Traffic is the request count a measurement needs to mean anything: below it, measurements are
	// inconclusive, not failures.
	// +optional
	Traffic *TrafficSpec `json:"traffic,omitempty"`

	// Metrics that are measured; every one must pass.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +listType=map
	// +listMapKey=name
	Metrics []MetricSpec `json:"metrics"`

	// Baseline starts a copy of the previous digest next to the canary, of the same size and age, so that
	// metrics with maxBaselineDeviationPercent are compared with a fresh baseline rather than the warm fleet.
	// +optional
	Baseline *BaselineSpec `json:"baseline,omitempty"`
}

// TrafficSpec is the minimum traffic below which measurements are inconclusive.
type TrafficSpec struct {
	// Query is a PromQL Go text/template returning the number of requests the measurement covers, with the same
	// fields as a metric query, for example
	// sum(increase(http_requests_total{namespace="{{.Namespace}}",track="{{.Track}}"}[{{.Interval}}])).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query"`

	// MinRequests is the least traffic a measurement needs, a decimal number.
	// +required
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	MinRequests string `json:"minRequests"`
}

// PrometheusSpec is a Prometheus server to query.
type PrometheusSpec struct {
	// Address is the server's base URL, for example "http://prometheus.monitoring:9090". Credentials are only
	// sent over https or to a loopback address.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://\S+$`
	Address string `json:"address"`

	// SecretRef names a Secret with a bearer "token", or "username" and "password", for the server.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
}

// MetricDirection says which way a metric is better, for comparisons with the baseline.
// +kubebuilder:validation:Enum=LowerIsBetter;HigherIsBetter
type MetricDirection string

// Metric directions.
const (
	LowerIsBetter  MetricDirection = "LowerIsBetter"
	HigherIsBetter MetricDirection = "HigherIsBetter"
)

// MetricSpec is one measured metric with its acceptable range.
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || double(self.min) <= double(self.max)",message="analysis.metrics: min must not exceed max",reason="FieldValueInvalid"
type MetricSpec struct {
	// Name of the metric, shown in status and events.
	// +required
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// Query is a PromQL Go text/template returning one number. Fields: .Namespace, .Stage, .Promotion,
	// .Digest, .Track ("canary" or "baseline" during a canary step, "stable" during the soak), .Interval.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query"`

	// Min is the lowest acceptable value, a decimal number.
	// +optional
	// +kubebuilder:validation:Pattern=`^-?[0-9]+(\.[0-9]+)?$`
	Min *string `json:"min,omitempty"`

	// Max is the highest acceptable value, a decimal number.
	// +optional
	// +kubebuilder:validation:Pattern=`^-?[0-9]+(\.[0-9]+)?$`
	Max *string `json:"max,omitempty"`

	// MaxBaselineDeviationPercent fails the canary when it is statistically worse than the baseline (a one-sided
	// Mann-Whitney U test at analysis.baseline.confidencePercent) by more than this percentage of the baseline's
	// median. Worse by more than this without significance is Marginal: the stage waits for a person. Needs
	// analysis.baseline.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	MaxBaselineDeviationPercent *int32 `json:"maxBaselineDeviationPercent,omitempty"`

	// Direction says which way the metric is better, for the baseline comparison.
	// +optional
	// +kubebuilder:default=LowerIsBetter
	Direction MetricDirection `json:"direction,omitempty"`

	// Critical fails the analysis at the first failed measurement or comparison of this metric, whatever
	// failureLimit says, and compares with the baseline at every measurement rather than at the end of a step.
	// +optional
	Critical bool `json:"critical,omitempty"`
}

// BaselineSpec starts pods of the previous digest, as many as the canary runs, for comparison.
type BaselineSpec struct {
	// ConfidencePercent is the confidence the baseline comparison needs before it fails a canary (1 − α of the
	// Mann-Whitney U test).
	// +optional
	// +kubebuilder:default=95
	// +kubebuilder:validation:Minimum=50
	// +kubebuilder:validation:Maximum=99
	ConfidencePercent int32 `json:"confidencePercent,omitempty"`
}

// GatesSpec must pass before the next stage may take a stage's digest.
type GatesSpec struct {
	// Soak is how long the digest must have run in this stage, healthy, before the next stage may take it.
	// +optional
	Soak *metav1.Duration `json:"soak,omitempty"`

	// RequireHealthy holds the next stage while this stage is not healthy.
	// +optional
	// +kubebuilder:default=true
	RequireHealthy *bool `json:"requireHealthy,omitempty"`
}

// RollbackPolicy says when a stage is rolled back automatically, by committing its previous digest to Git.
type RollbackPolicy struct {
	// OnAnalysisFailure rolls back when the analysis fails (a canary step or the soak). When false, the stage
	// is held for a person: ferry abort rolls it back, ferry approve goes on.
	// +optional
	// +kubebuilder:default=true
	OnAnalysisFailure *bool `json:"onAnalysisFailure,omitempty"`

	// OnHealthFailure rolls back when the stage does not become healthy within sync.healthTimeout.
	// +optional
	// +kubebuilder:default=true
	OnHealthFailure *bool `json:"onHealthFailure,omitempty"`
}
