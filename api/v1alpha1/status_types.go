package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a Promotion, following kstatus: Ready summarises, Reconciling says work is under way,
// Stalled says Ferry cannot go on without a change to the spec or to a referenced object.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
	// ConditionDrifted says that a stage's workloads do not run the digest Git declares for it.
	ConditionDrifted = "Drifted"
)

// StagePhase is where a stage stands with the digest in flight. One digest is in flight per stage.
// +kubebuilder:validation:Enum=Idle;Verifying;Copying;Writing;AwaitingApproval;Syncing;Progressing;Canary;Analysing;Soaking;Promoted;Failed;RollingBack;RolledBack
type StagePhase string

// Stage phases, in pipeline order, then the side phases.
const (
	PhaseIdle             StagePhase = "Idle"
	PhaseVerifying        StagePhase = "Verifying"
	PhaseCopying          StagePhase = "Copying"
	PhaseWriting          StagePhase = "Writing"
	PhaseAwaitingApproval StagePhase = "AwaitingApproval"
	PhaseSyncing          StagePhase = "Syncing"
	PhaseProgressing      StagePhase = "Progressing"
	// PhaseCanary runs the canary steps: the stable workload keeps the previous digest while a copy runs the new one.
	PhaseCanary      StagePhase = "Canary"
	PhaseAnalysing   StagePhase = "Analysing"
	PhaseSoaking     StagePhase = "Soaking"
	PhasePromoted    StagePhase = "Promoted"
	PhaseFailed      StagePhase = "Failed"
	PhaseRollingBack StagePhase = "RollingBack"
	PhaseRolledBack  StagePhase = "RolledBack"
)

// PromotionStatus is what Ferry observed and did.
type PromotionStatus struct {
	// ObservedGeneration is the generation of the spec that the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Reconciling and Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// Candidate is the newest digest discovered at the source, and whether it passed verification.
	// +optional
	Candidate *CandidateStatus `json:"candidate,omitempty"`

	// Summary lists each stage's phase in order, for example "dev=Promoted staging=Soaking prod=Idle".
	// +optional
	Summary string `json:"summary,omitempty"`

	// Stages holds the state of each stage, in spec order.
	// +optional
	// +listType=map
	// +listMapKey=name
	Stages []StageStatus `json:"stages,omitempty"`

	// Notifications are the messages owed to receivers of spec.notifications and not yet delivered, oldest first
	// (see docs/notifications.md).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Notifications []PendingNotification `json:"notifications,omitempty"`
}

// CandidateStatus is the newest digest discovered at the source.
type CandidateStatus struct {
	// Digest of the candidate.
	// +optional
	Digest string `json:"digest,omitempty"`

	// Tag the digest was discovered through, if any.
	// +optional
	Tag string `json:"tag,omitempty"`

	// DiscoveredAt is when Ferry first saw the digest.
	// +optional
	DiscoveredAt *metav1.Time `json:"discoveredAt,omitempty"`

	// Verified says whether the candidate satisfied the verification policy.
	// +optional
	Verified bool `json:"verified,omitempty"`

	// Signers that matched the policy (key names or certificate identities).
	// +optional
	// +listType=atomic
	Signers []string `json:"signers,omitempty"`

	// Message explains a failed verification.
	// +optional
	Message string `json:"message,omitempty"`

	// SignatureDeadline is set while the candidate carries no signature yet: it is waited for until then
	// (spec.verification.signatureGracePeriod after discoveredAt), and rejected after.
	// +optional
	SignatureDeadline *metav1.Time `json:"signatureDeadline,omitempty"`
}

// StageStatus is the state of one stage.
type StageStatus struct {
	// Name of the stage.
	// +required
	Name string `json:"name"`

	// Phase of the digest in flight, or of the current digest when nothing is in flight.
	// +optional
	Phase StagePhase `json:"phase,omitempty"`

	// Since is when the stage entered its phase.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`

	// Message says what the stage is doing or waiting for, in a sentence a person can act on.
	// +optional
	Message string `json:"message,omitempty"`

	// Digest running in the stage, as last declared in Git and found healthy.
	// +optional
	Digest string `json:"digest,omitempty"`

	// InFlightDigest is the digest being promoted (or rolled back) into the stage, if any.
	// +optional
	InFlightDigest string `json:"inFlightDigest,omitempty"`

	// InFlightSince is when the in-flight digest entered the stage.
	// +optional
	InFlightSince *metav1.Time `json:"inFlightSince,omitempty"`

	// InFlightSource is where the in-flight digest is copied from: the previous stage's registry, or the source.
	// +optional
	InFlightSource string `json:"inFlightSource,omitempty"`

	// HealthySince is when the current digest was last found healthy after a sync; soak time counts from it.
	// +optional
	HealthySince *metav1.Time `json:"healthySince,omitempty"`

	// LastCommit is the SHA of Ferry's last commit for this stage.
	// +optional
	LastCommit string `json:"lastCommit,omitempty"`

	// PullRequest is the open pull request awaiting approval, if any.
	// +optional
	PullRequest *PullRequestStatus `json:"pullRequest,omitempty"`

	// Evidence is what Ferry verified, in this stage's registry, of the digest it last copied here (the in-flight
	// digest, then the one running): signers, the policy that accepted them, attestations. Its digest says which
	// digest it is about.
	// +optional
	Evidence *DigestEvidence `json:"evidence,omitempty"`

	// Hold keeps the stage on a rolled-back digest until a newer digest arrives or the hold is cleared.
	// +optional
	Hold *HoldStatus `json:"hold,omitempty"`

	// Analysis is the canary and analysis run of the in-flight digest (or of the soak), with its measurements.
	// +optional
	Analysis *AnalysisStatus `json:"analysis,omitempty"`

	// History lists the digests the stage ran, newest first, bounded by spec.historyLimit. A rollback returns
	// to a digest from this list.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=50
	History []StageHistoryEntry `json:"history,omitempty"`
}

// PullRequestStatus is a pull request that approves a stage.
type PullRequestStatus struct {
	// Number of the pull request.
	// +optional
	Number int64 `json:"number,omitempty"`

	// URL of the pull request for people.
	// +optional
	URL string `json:"url,omitempty"`

	// Branch the pull request merges from.
	// +optional
	Branch string `json:"branch,omitempty"`

	// Digest the pull request pins.
	// +optional
	Digest string `json:"digest,omitempty"`

	// HeadSHA is the commit Ferry pushed to the branch. A merge whose head is another commit — someone pushed to
	// the branch after Ferry — is not synced.
	// +optional
	HeadSHA string `json:"headSHA,omitempty"`

	// OpenedAt is when Ferry opened the pull request.
	// +optional
	OpenedAt *metav1.Time `json:"openedAt,omitempty"`

	// Approver is who merged the pull request, once merged.
	// +optional
	Approver string `json:"approver,omitempty"`

	// ReportedHash is a hash of what Ferry last showed on the pull request (its evidence comment and the commit
	// status of its head), so that an unchanged report is not sent again.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ReportedHash string `json:"reportedHash,omitempty"`
}

// HoldStatus keeps a stage on a digest after a rollback.
type HoldStatus struct {
	// Digest the stage is held on.
	// +optional
	Digest string `json:"digest,omitempty"`

	// Reason for the hold, for example "RollbackRequested" or "AnalysisFailed".
	// +optional
	Reason string `json:"reason,omitempty"`

	// RequestedBy is who asked for the rollback: the authenticated user the audit webhook recorded, else the
	// annotation's field manager marked "(unauthenticated field manager)", or "ferry" when automatic.
	// +optional
	RequestedBy string `json:"requestedBy,omitempty"`

	// Since is when the hold began.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
}

// Outcome is how one digest's time in a stage ended.
// +kubebuilder:validation:Enum=Promoted;Failed;RolledBack;Superseded;Rejected
type Outcome string

// Outcomes in stage history.
const (
	OutcomePromoted   Outcome = "Promoted"
	OutcomeFailed     Outcome = "Failed"
	OutcomeRolledBack Outcome = "RolledBack"
	OutcomeSuperseded Outcome = "Superseded"
	OutcomeRejected   Outcome = "Rejected"
)

// StageHistoryEntry records one digest's passage through a stage: provenance for people and the list a rollback
// chooses from.
type StageHistoryEntry struct {
	// Digest that ran.
	// +required
	// +kubebuilder:validation:Pattern=`^sha256:[a-f0-9]{64}$`
	Digest string `json:"digest"`

	// CommitSHA is Ferry's commit that pinned the digest.
	// +optional
	CommitSHA string `json:"commitSHA,omitempty"`

	// Time the outcome was reached.
	// +required
	Time metav1.Time `json:"time"`

	// Approver is who approved the stage: the person who merged the pull request, or "automatic".
	// +optional
	Approver string `json:"approver,omitempty"`

	// Signers whose signatures were verified for the digest.
	// +optional
	// +listType=atomic
	Signers []string `json:"signers,omitempty"`

	// Source is where the digest came from (the previous stage's registry, or the source repository).
	// +optional
	Source string `json:"source,omitempty"`

	// PullRequestURL is the pull request that approved it, if any.
	// +optional
	PullRequestURL string `json:"pullRequestURL,omitempty"`

	// Outcome of the digest's time in the stage.
	// +required
	Outcome Outcome `json:"outcome"`

	// Reason explains a failure, rejection or rollback.
	// +optional
	Reason string `json:"reason,omitempty"`
}

// AnalysisPhase is where an analysis run stands.
// +kubebuilder:validation:Enum=Running;Passed;Failed;Held
type AnalysisPhase string

// Analysis phases.
const (
	// AnalysisRunning measures; inconclusive measurements wait for data without a verdict.
	AnalysisRunning AnalysisPhase = "Running"
	// AnalysisPassed: every metric passed in every step.
	AnalysisPassed AnalysisPhase = "Passed"
	// AnalysisFailed: measured evidence failed a metric.
	AnalysisFailed AnalysisPhase = "Failed"
	// AnalysisHeld waits for a person (ferry approve / ferry abort): the missing-data budget or the outage deadline
	// ran out, a comparison was Marginal, or the analysis failed and the policy does not roll back.
	AnalysisHeld AnalysisPhase = "Held"
)

// AnalysisStatus is one digest's canary and analysis in a stage. It is written after every measurement, so a
// restarted controller resumes at the same step with the same measurements.
type AnalysisStatus struct {
	// Digest being analysed.
	// +optional
	Digest string `json:"digest,omitempty"`

	// Phase of the run.
	// +optional
	Phase AnalysisPhase `json:"phase,omitempty"`

	// Message says what the run waits for, or why it ended, in a sentence a person can act on.
	// +optional
	Message string `json:"message,omitempty"`

	// Run is what is being analysed: the canary steps, or the soak after the digest took the whole stage.
	// +optional
	Run AnalysisRun `json:"run,omitempty"`

	// Step is the index of the canary step under way; absent during the soak.
	// +optional
	Step *int32 `json:"step,omitempty"`

	// Weight of the step under way, in percent.
	// +optional
	Weight int32 `json:"weight,omitempty"`

	// StepRequestedAt is when the step's copies were asked for; they must be ready within sync.healthTimeout.
	// +optional
	StepRequestedAt *metav1.Time `json:"stepRequestedAt,omitempty"`

	// StepStartedAt is when the step's pods were all ready and its measuring began (the soak's start, in a soak).
	// +optional
	StepStartedAt *metav1.Time `json:"stepStartedAt,omitempty"`

	// LastMeasuredAt is when metrics were last measured.
	// +optional
	LastMeasuredAt *metav1.Time `json:"lastMeasuredAt,omitempty"`

	// Missing counts the inconclusive measurements of the run under way, against Budget ("4 of 12 missing").
	// +optional
	Missing int32 `json:"missing,omitempty"`

	// Taken counts the measurements of the run under way.
	// +optional
	Taken int32 `json:"taken,omitempty"`

	// Budget is how many inconclusive measurements the run tolerates before it waits for a person.
	// +optional
	Budget int32 `json:"budget,omitempty"`

	// HeldSince is when the run began to wait for a person.
	// +optional
	HeldSince *metav1.Time `json:"heldSince,omitempty"`

	// OutageSince is when the current stretch of missing data began.
	// +optional
	OutageSince *metav1.Time `json:"outageSince,omitempty"`

	// Approvals counts ferry approve requests taken for this digest; each resets the missing-data budget, and
	// an approval of a Marginal comparison accepts it.
	// +optional
	Approvals int32 `json:"approvals,omitempty"`

	// ApprovedBy is who last approved the held run.
	// +optional
	ApprovedBy string `json:"approvedBy,omitempty"`

	// ApprovedAt is when the run was last approved: the step's evidence is counted from then on.
	// +optional
	ApprovedAt *metav1.Time `json:"approvedAt,omitempty"`

	// AbortedBy is who aborted the run with ferry abort; an aborted run is rolled back whatever the policy says.
	// +optional
	AbortedBy string `json:"abortedBy,omitempty"`

	// Tallies count each metric's verdicts in the step (or soak) under way, on the canary (or stable) track.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	Tallies []MetricTally `json:"tallies,omitempty"`

	// Queries are the metric queries after templating, per metric and track.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Queries []AnalysisQuery `json:"queries,omitempty"`

	// Measurements of the run, oldest first, bounded (the oldest are dropped first).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=120
	Measurements []Measurement `json:"measurements,omitempty"`

	// Comparisons are the baseline judge's latest verdicts, one per metric compared.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	Comparisons []Comparison `json:"comparisons,omitempty"`
}

// AnalysisRun says what an analysis measures.
// +kubebuilder:validation:Enum=Canary;Soak
type AnalysisRun string

// Analysis runs.
const (
	RunCanary AnalysisRun = "Canary"
	RunSoak   AnalysisRun = "Soak"
)

// MetricTally counts one metric's verdicts.
type MetricTally struct {
	Metric string `json:"metric"`
	// +optional
	Passed int32 `json:"passed,omitempty"`
	// +optional
	Failed int32 `json:"failed,omitempty"`
	// +optional
	Inconclusive int32 `json:"inconclusive,omitempty"`
}

// AnalysisQuery is a metric query as sent to Prometheus.
type AnalysisQuery struct {
	Metric string `json:"metric"`
	Track  string `json:"track"`
	Query  string `json:"query"`
}

// Measurement is one reading of one metric on one track.
type Measurement struct {
	// Metric name, or "traffic" for the traffic query.
	Metric string `json:"metric"`
	// Track is canary, baseline or stable.
	Track string `json:"track"`
	// Step is the canary step it was taken in; absent during the soak.
	// +optional
	Step *int32 `json:"step,omitempty"`
	// Time it was taken.
	Time metav1.Time `json:"time"`
	// Value read, as a decimal; absent when there was no number.
	// +optional
	Value string `json:"value,omitempty"`
	// Verdict: Pass, Fail or Inconclusive.
	Verdict string `json:"verdict"`
	// Reason of a Fail or Inconclusive verdict, for example AboveMax, NoData, StaleSample, PrometheusUnavailable.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message explains it.
	// +optional
	Message string `json:"message,omitempty"`
}

// Comparison is the baseline judge's verdict on one metric.
type Comparison struct {
	Metric string `json:"metric"`
	// Verdict: Pass, Marginal, Fail or Inconclusive.
	Verdict string `json:"verdict"`
	// PValue of the one-sided Mann-Whitney U test, as a decimal.
	// +optional
	PValue string `json:"pValue,omitempty"`
	// CanaryMedian and BaselineMedian, as decimals.
	// +optional
	CanaryMedian string `json:"canaryMedian,omitempty"`
	// +optional
	BaselineMedian string `json:"baselineMedian,omitempty"`
	// Samples on each side.
	// +optional
	CanarySamples int32 `json:"canarySamples,omitempty"`
	// +optional
	BaselineSamples int32 `json:"baselineSamples,omitempty"`
	// Reason is the judge's reasoning in a sentence.
	// +optional
	Reason string `json:"reason,omitempty"`
}
