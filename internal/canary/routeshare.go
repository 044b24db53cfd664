package canary

import "math"

// EffectiveShare is the share of a route's requests, 0..1, that reach canary pods when the route gives the canary
// Service weight percent and the stable Service's endpoints are stable stable pods, canary canary pods and baseline
// baseline pods: the canary Service's weight plus the canary pods' replica share of the stable backend's,
//
//	weight/100 + (1 - weight/100) * canary/(stable+canary+baseline)
//
// because the copies' pods carry the stable pods' labels and so are endpoints of the stable Service too (see the
// package documentation). It assumes that the gateway spreads a backend's requests evenly over its endpoints.
func EffectiveShare(weight, stable, canary, baseline int32) float64 {
	w := float64(min(max(weight, 0), 100)) / 100
	return w + (1-w)*replicaShare(stable, canary, baseline)
}

// RouteWeight is the canary Service's weight (percent, 0..100) that gives the canary pods target percent of a
// route's requests (EffectiveShare), rounded to the nearest percent. The canary's replica share of the stable
// Service is the least it can get: a target at or below it gives 0.
func RouteWeight(target, stable, canary, baseline int32) int32 {
	t := float64(min(max(target, 0), 100)) / 100
	r := replicaShare(stable, canary, baseline)
	if r >= 1 {
		return 100
	}
	if t <= r {
		return 0
	}
	return int32(min(max(math.Round(100*(t-r)/(1-r)), 0), 100))
}

// replicaShare is the canary pods' share of the stable Service's endpoints.
func replicaShare(stable, canary, baseline int32) float64 {
	stable, canary, baseline = max(stable, 0), max(canary, 0), max(baseline, 0)
	total := int64(stable) + int64(canary) + int64(baseline)
	if total == 0 {
		return 0
	}
	return float64(canary) / float64(total)
}
