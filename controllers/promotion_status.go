package controllers

import (
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/text"
)

// Condition reasons when the input is good.
const (
	ReasonSpecValid = "SpecValid"
	ReasonRetrying  = "RetryingAfterError"
	ReasonPromoting = "Promoting"
	ReasonUpToDate  = "UpToDate"
)

// specValidMessage is what a controller without engines (validation only) reports for a good spec.
const specValidMessage = "The spec and every referenced Secret and ConfigMap are valid. " +
	"This controller runs without engines: it validates Promotions and runs no promotion steps."

// setConditions computes every condition from the outcome of a reconcile: the single place conditions are
// decided, so they can never contradict each other. running says whether the pipeline ran (engines present).
func setConditions(p *ferryv1.Promotion, err error, running bool) {
	set := func(t string, status metav1.ConditionStatus, reason, msg string) {
		apimeta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{
			Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: p.Generation,
		})
	}
	if stall, ok := asStalling(err); ok {
		set(ferryv1.ConditionStalled, metav1.ConditionTrue, stall.Reason, stall.Error())
		set(ferryv1.ConditionReady, metav1.ConditionFalse, stall.Reason, stall.Error())
		apimeta.RemoveStatusCondition(&p.Status.Conditions, ferryv1.ConditionReconciling)
		return
	}
	apimeta.RemoveStatusCondition(&p.Status.Conditions, ferryv1.ConditionStalled)
	inFlight := firstInFlight(p)
	if c := p.Status.Candidate; inFlight != nil {
		set(ferryv1.ConditionReconciling, metav1.ConditionTrue, string(inFlight.Phase), inFlight.Name+": "+inFlight.Message)
	} else if awaitingSignature(c) { // nothing has failed: Ready is left to the stages
		set(ferryv1.ConditionReconciling, metav1.ConditionTrue, ReasonAwaitingSignature, "candidate "+c.Digest+": "+c.Message)
	} else {
		apimeta.RemoveStatusCondition(&p.Status.Conditions, ferryv1.ConditionReconciling)
	}
	wait, waiting := asWaiting(err)
	failed := firstFailed(p)
	switch {
	case waiting:
		set(ferryv1.ConditionReady, metav1.ConditionFalse, wait.Reason, wait.Error())
	case err != nil:
		set(ferryv1.ConditionReconciling, metav1.ConditionTrue, retryReason(err), err.Error())
		set(ferryv1.ConditionReady, metav1.ConditionFalse, retryReason(err), err.Error())
	case !running:
		set(ferryv1.ConditionReady, metav1.ConditionTrue, ReasonSpecValid, specValidMessage)
	case inFlight != nil:
		set(ferryv1.ConditionReady, metav1.ConditionFalse, ReasonPromoting, inFlight.Name+": "+inFlight.Message)
	case failed != nil:
		set(ferryv1.ConditionReady, metav1.ConditionFalse, ReasonStageFailed, failed.Name+": "+failed.Message)
	default:
		set(ferryv1.ConditionReady, metav1.ConditionTrue, ReasonUpToDate, "Every stage runs the newest digest it may take: "+summaryDigests(p))
	}
}

// ConditionDrifted says that a stage's workloads do not run the digest Git declares for it.
const (
	ConditionDrifted = ferryv1.ConditionDrifted
	ReasonImageDrift = "ImageDrift"
)

// setDriftCondition reports drift found by a reconcile that ran to the end (checked says so); an incomplete
// reconcile leaves the condition as it was.
func setDriftCondition(p *ferryv1.Promotion, drift []string, checked bool) {
	if !checked {
		return
	}
	if len(drift) == 0 {
		apimeta.RemoveStatusCondition(&p.Status.Conditions, ConditionDrifted)
		return
	}
	apimeta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: ConditionDrifted, Status: metav1.ConditionTrue,
		Reason: ReasonImageDrift, Message: strings.Join(drift, "; "), ObservedGeneration: p.Generation})
}

func firstInFlight(p *ferryv1.Promotion) *ferryv1.StageStatus {
	for i := range p.Status.Stages {
		if p.Status.Stages[i].InFlightDigest != "" {
			return &p.Status.Stages[i]
		}
	}
	return nil
}

func firstFailed(p *ferryv1.Promotion) *ferryv1.StageStatus {
	for i := range p.Status.Stages {
		if p.Status.Stages[i].Phase == ferryv1.PhaseFailed {
			return &p.Status.Stages[i]
		}
	}
	return nil
}

// summaryDigests lists each stage's digest, short, for the Ready message.
func summaryDigests(p *ferryv1.Promotion) string {
	parts := make([]string, len(p.Status.Stages))
	for i, s := range p.Status.Stages {
		d := s.Digest
		if len(d) > 19 {
			d = d[:19]
		}
		if d == "" {
			d = "none"
		}
		parts[i] = s.Name + "=" + d
	}
	return strings.Join(parts, " ")
}

// syncStageStatuses keeps one status entry per stage, in spec order, keeping what was recorded for stages that
// still exist and starting new stages Idle.
func syncStageStatuses(p *ferryv1.Promotion, now metav1.Time) {
	old := make(map[string]ferryv1.StageStatus, len(p.Status.Stages))
	for _, s := range p.Status.Stages {
		old[s.Name] = s
	}
	stages := make([]ferryv1.StageStatus, 0, len(p.Spec.Stages))
	for _, spec := range p.Spec.Stages {
		s, ok := old[spec.Name]
		if !ok {
			s = ferryv1.StageStatus{Name: spec.Name, Phase: ferryv1.PhaseIdle, Since: &now,
				Message: "No digest has reached this stage yet."}
		}
		stages = append(stages, s)
	}
	p.Status.Stages = stages
	p.Status.Summary = summary(stages)
}

// summary lists each stage's phase in order, for the printer column and `ferry get`.
func summary(stages []ferryv1.StageStatus) string {
	parts := make([]string, len(stages))
	for i, s := range stages {
		parts[i] = s.Name + "=" + string(s.Phase)
	}
	return strings.Join(parts, " ")
}

// Bounds of free text in status: ample for a person, small enough that a status with every message at its bound
// still fits, so a long error from a peer (a verification reason, a forge's answer) never makes the patch fail and
// freeze the status.
const (
	maxStatusMessage    = 1024
	maxConditionMessage = 4096
)

// boundText cuts every free-text field of status to its bound, with an ellipsis.
func boundText(st *ferryv1.PromotionStatus) {
	if c := st.Candidate; c != nil {
		c.Message = text.Cut(c.Message, maxStatusMessage)
	}
	for i := range st.Conditions {
		st.Conditions[i].Message = text.Cut(st.Conditions[i].Message, maxConditionMessage)
	}
	for i := range st.Stages {
		stage := &st.Stages[i]
		stage.Message = text.Cut(stage.Message, maxStatusMessage)
		for j := range stage.History {
			stage.History[j].Reason = text.Cut(stage.History[j].Reason, maxStatusMessage)
		}
		if a := stage.Analysis; a != nil {
			a.Message = text.Cut(a.Message, maxStatusMessage)
		}
	}
}
