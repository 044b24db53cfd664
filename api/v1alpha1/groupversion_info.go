// Package v1alpha1 holds the Promotion API of Ferry (group ferry.dev, version v1alpha1).
//
// A Promotion declares where signed image digests come from, which signatures and attestations they must carry,
// the Git repository that declares what runs, and an ordered list of stages that every digest moves through
// unchanged. The types describe the whole product; the controller fills in behaviour behind them.
//
// +kubebuilder:object:generate=true
// +groupName=ferry.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "ferry.dev", Version: "v1alpha1"}

	// SchemeBuilder registers this package's types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this package's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
