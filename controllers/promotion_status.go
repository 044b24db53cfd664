package controllers

import (
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
)

// Condition reasons when the input is good.
const (
	ReasonSpecValid = "SpecValid"
	ReasonRetrying  = "RetryingAfterError"
)

// specValidMessage is honest about what this version does once the spec is accepted.
const specValidMessage = "The spec and every referenced Secret and ConfigMap are valid. " +
	"This version of Ferry validates Promotions; it does not yet run promotion steps."

// setConditions computes every condition from the outcome of a reconcile: the single place conditions are
// decided, so they can never contradict each other.
func setConditions(p *ferryv1.Promotion, err error) {
	gen := p.Generation
	set := func(t string, status metav1.ConditionStatus, reason, msg string) {
		apimeta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{
			Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
		})
	}
	if stall, ok := asStalling(err); ok {
		set(ferryv1.ConditionStalled, metav1.ConditionTrue, stall.Reason, stall.Error())
		set(ferryv1.ConditionReady, metav1.ConditionFalse, stall.Reason, stall.Error())
		apimeta.RemoveStatusCondition(&p.Status.Conditions, ferryv1.ConditionReconciling)
		return
	}
	apimeta.RemoveStatusCondition(&p.Status.Conditions, ferryv1.ConditionStalled)
	if err != nil {
		set(ferryv1.ConditionReconciling, metav1.ConditionTrue, ReasonRetrying, err.Error())
		set(ferryv1.ConditionReady, metav1.ConditionFalse, ReasonRetrying, err.Error())
		return
	}
	apimeta.RemoveStatusCondition(&p.Status.Conditions, ferryv1.ConditionReconciling)
	set(ferryv1.ConditionReady, metav1.ConditionTrue, ReasonSpecValid, specValidMessage)
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
