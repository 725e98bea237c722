// Package v1alpha1 holds Roster's API: the Organization and the people in it (Invitation,
// Member), outside people using an application's portal (ExternalUser) and outside people
// working in the organization's modules (Collaboration).
//
// +kubebuilder:object:generate=true
// +groupName=org.roster.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every Roster kind.
	GroupVersion = schema.GroupVersion{Group: "org.roster.dev", Version: "v1alpha1"}

	// SchemeBuilder registers Roster's kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds Roster's kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
