// Package canary runs a canary copy — and optionally a baseline copy — of a stage's Deployment beside the stable
// one, with no service mesh and no traffic router.
//
// # Traffic by replica share
//
// A copy keeps the stable pods' labels, so the stage's Service, which selects pods by those labels, sends it
// traffic in proportion to its pods: with N stable replicas and k canary replicas the canary takes about
// k/(N+k) of the requests (k/(N+2k) with a baseline of k beside it). Share turns a canary step's weight into k.
// The share is only as even as the Service's load balancing (kube-proxy picks endpoints at random per
// connection), which is what a mesh-less canary can promise.
//
// # The stable Deployment is never touched
//
// Git already declares the new digest when a canary starts; Ferry simply does not sync that commit yet. The stable
// Deployment keeps running the previous digest at full size, and this package only ever reads it. So a failed
// canary rolls back by deleting the copies — no pod is created, nothing waits for a rollout — and a passing one
// ends with the normal sync of the new commit, after which the copies are removed.
//
// # The copies
//
// Ensure applies (server-side apply, field manager "ferry-canary") "<name>-canary" built from the Deployment as Git
// declares it at the new commit, and "<name>-baseline" built from the Deployment as it runs now, both with the same
// number of replicas, created together so that they are the same age: metrics then compare the new digest with
// fresh pods of the previous one rather than with long-warmed stable pods. Each copy is labelled:
//
//   - TrackLabel ("canary" or "baseline") on its metadata, its selector and its pod template. The extra selector
//     label keeps the copy's pods apart from the stable Deployment's ReplicaSets and lets metrics tell the tracks
//     apart;
//   - CanaryOfLabel, the stage's owner, which is how Observe and Remove find the copies;
//   - not sync's OwnerLabel: the copies are not part of what Git declares for the stage, so the stage's prune
//     must never see them as its own.
//
// Each copy also has an ownerReference (not a controller reference) to the stable Deployment, so the garbage
// collector removes copies left behind if the stable Deployment is deleted.
//
// Workloads picks the Deployments of a stage that run the promoted image; StatefulSets, DaemonSets and other kinds
// that run it cannot be copied this way and are reported as an error rather than promoted without a canary.
package canary
