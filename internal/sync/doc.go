// Package sync applies a stage's rendered manifests to one namespace of a cluster with gitops-engine and observes
// the result: Render turns a checkout (kustomize, plain YAML or a Helm chart rendered offline) into objects, Target.Apply syncs them with prune
// limited to objects labelled for the stage, Target.Health and WaitHealthy aggregate gitops-engine's health
// assessments, and Target.Drift compares running images with a declared digest. It takes plain inputs (a folder,
// a rest.Config, a namespace, an owner string) and knows nothing of Promotions; it never fetches remote bases and
// never touches objects that are not labelled for the stage unless told to adopt them.
package sync
