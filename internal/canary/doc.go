// Package canary runs a canary copy — and optionally a baseline copy — of a stage's Deployment beside the stable
// one, with no service mesh: the canary gets traffic by its replica share of the stage's Service or, where a stage
// names a Gateway API HTTPRoute, by the route's backend weights.
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
//
// # Traffic weights through an HTTPRoute
//
// Where a stage names a Gateway API HTTPRoute and the stable Service it routes to (a backendRef of the route, in the
// route's namespace), SetRoute gives the canary real traffic weights, with no mesh:
//
//   - it applies a canary Service, CanaryServiceName ("<stable-service>-canary"): the stable Service's ports, its
//     selector plus TrackLabel=canary, type ClusterIP, labels CanaryOfLabel and TrackLabel only (not the stable
//     Service's, so that nothing selecting Services by label — a ServiceMonitor — counts the canary pods twice) and
//     an ownerReference to the stable Service;
//   - then, in every rule of the route with a backendRef to the stable Service, it sets that backend's weight to
//     100-w and adds (or updates) a backendRef to the canary Service with weight w: a copy of the stable one, so the
//     same port and backend filters. The weight the stable backend had is recorded per Service and per rule in the
//     route's StableWeightAnnotation ({"shop":{"0":1}}; null for an unset weight, the API's default of 1).
//
// RestoreRoute, on success or rollback, removes the canary backendRef, gives the stable backend its recorded weight
// back (unset again when it was unset), drops the record and deletes the canary Service. Both are idempotent and keep
// no state but the route and the Service, so a restarted controller carries on or restores exactly. The Service is
// made before the route points at it and deleted after the route stops pointing at it: a gateway answers the share
// of a backend that does not exist with errors. For the same reason SetRoute belongs after the canary copy is ready.
//
// Only rules whose traffic goes to the stable Service alone are changed: there w is exactly the canary's share of
// the rule. A rule with the stable backend beside other backends that get traffic is an error (Ferry would have to
// reweigh backends that are not its own); a rule where the stable backend has weight 0 is left alone; rules without
// it are untouched. A rule whose canary backendRef is gone when SetRoute or RestoreRoute comes back (the route was
// re-applied from Git meanwhile) is taken as it is now: SetRoute records its weight afresh and RestoreRoute leaves
// it alone, so Git's route wins over an old record.
//
// # What the stable Service still sends the canary pods
//
// The copies keep the stable pods' labels (see The copies above), so the stable Service selects the canary and
// baseline pods as well as the stable ones, route or no route, and Ferry leaves the stable Service as Git declares
// it. The canary pods therefore get the canary backend's weight and, on top, their replica share of the stable
// backend's: with N stable, k canary and b baseline pods,
//
//	share = w/100 + (1 - w/100) * k/(N+k+b)
//
// as evenly as the gateway spreads a backend over its endpoints. The replica share is the least a route can give
// the canary, so with a route the copies are best kept small (one replica each), where
// the weight, not the replica count, carries the traffic. The baseline gets traffic only this way, its replica
// share of the stable backend, which is what metrics compare the canary against.
//
// The alternatives are worse. Narrowing the stable Service to stable pods needs a label that only they carry, and
// a selector cannot say "without ferry.dev/track": the only such label is pod-template-hash, which any rollout or
// restart of the stable Deployment changes, leaving the Service with no endpoints — and Ferry would be rewriting a
// Service that Git declares. Leaving the stable Service's selector labels off the copies' pods would take the canary
// out of everything else that selects the application's pods by those labels (metrics queries, PodMonitors, network
// policies, disruption budgets) and give up the replica-share canary. A Ferry-made stable Service with its own
// EndpointSlices would reimplement the endpoint controller.
//
// # One client
//
// The engine reads and writes HTTPRoutes and Services as unstructured objects, so the client it is given needs no
// gateway-api types in its scheme, reads them live even when it is a manager's client (no cache, no watch of every
// HTTPRoute and Service in the cluster, no failure at start when the Gateway API is installed later), and a
// cluster without the Gateway API fails SetRoute with a clear error and is nothing to restore for RestoreRoute. It
// reads backendRefs through the typed gateway-api v1 structs (sigs.k8s.io/gateway-api/apis/v1), but edits the route
// in place and writes it back whole with its resourceVersion (read again and retried on a conflict), so fields that
// the types of this build do not know survive. Ferry needs get and update on httproutes, and get, create, patch and
// delete on services.
package canary
