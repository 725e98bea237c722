package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Collaborator is the outside person.
// +kubebuilder:validation:XValidation:rule="has(self.email) || has(self.phone)",message="a collaborator needs an email or a phone so they can be told about their modules"
type Collaborator struct {
	// DisplayName is the person's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName"`
	// Email is where the person is told about their modules.
	// +optional
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Format=email
	Email string `json:"email,omitempty"`
	// Phone is the person's phone number in E.164 form.
	// +optional
	// +kubebuilder:validation:Pattern=`^\+[1-9][0-9]{6,14}$`
	Phone string `json:"phone,omitempty"`
}

// ModuleKind is a kind of module an outside person can collaborate in.
// +kubebuilder:validation:Enum=Task;Project;File;Group
type ModuleKind string

// Module is one module the person collaborates in.
type Module struct {
	// Kind of the module: Task, Project, File or Group.
	Kind ModuleKind `json:"kind"`
	// Name identifies the module within its kind.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Role is what the person may do in the module, such as viewer or editor.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Role string `json:"role,omitempty"`
	// ExpiresAt ends the person's participation in the module; unset means it lasts until
	// an admin removes it.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// Approval says whether an admin let the person in. A module the person asked for on
	// the organization's link for it is Pending: they are not in it, and are not told
	// anything, until an admin sets Approved; removing the entry declines the request.
	// Modules admins add are Approved unless they say otherwise.
	// +optional
	// +kubebuilder:default=Approved
	Approval ModuleApproval `json:"approval,omitempty"`
}

// ModuleApproval is whether a person is let into a module yet.
// +kubebuilder:validation:Enum=Pending;Approved
type ModuleApproval string

const (
	// ModulePending: the person asked to join through a link and waits for an admin.
	ModulePending ModuleApproval = "Pending"
	// ModuleApproved: the person is in the module. An empty approval means the same.
	ModuleApproved ModuleApproval = "Approved"
)

// IsPending reports whether the module waits for an admin's approval; an unset approval, as
// on an object written before approvals existed, is Approved.
func (m Module) IsPending() bool { return m.Approval == ModulePending }

// CleanupPolicy says what happens to a Collaboration that is in no module any more.
// +kubebuilder:validation:Enum=Delete;Retain
type CleanupPolicy string

const (
	// CleanupDelete deletes the Collaboration once its person was told.
	CleanupDelete CleanupPolicy = "Delete"
	// CleanupRetain keeps it with phase Removed.
	CleanupRetain CleanupPolicy = "Retain"
)

// CollaborationSpec is one outside person's participation in the organization's modules.
type CollaborationSpec struct {
	// OrganizationRef names the Organization whose modules these are.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="organizationRef cannot change"
	OrganizationRef OrganizationReference `json:"organizationRef"`
	// Collaborator is the outside person.
	Collaborator Collaborator `json:"collaborator"`
	// Modules are the tasks, projects, files and groups the person is in. Remove an entry to
	// take them out of that module; they are told either way.
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	Modules []Module `json:"modules,omitempty"`
	// CleanupPolicy says what happens once the person is in no module any more.
	// +optional
	// +kubebuilder:default=Delete
	CleanupPolicy CleanupPolicy `json:"cleanupPolicy,omitempty"`
}

// CollaborationPhase is where a collaboration is in its life.
// +kubebuilder:validation:Enum=Invited;Active;Removed;PendingApproval
type CollaborationPhase string

const (
	// CollaborationInvited: the person was invited and has not joined yet.
	CollaborationInvited CollaborationPhase = "Invited"
	// CollaborationActive: the person works in at least one module.
	CollaborationActive CollaborationPhase = "Active"
	// CollaborationRemoved: the person is in no module any more (cleanupPolicy Retain).
	CollaborationRemoved CollaborationPhase = "Removed"
	// CollaborationPendingApproval: the person asked to join modules through their links and
	// is in none yet; an admin approves (spec.modules[].approval: Approved) or declines
	// (removes the entry).
	CollaborationPendingApproval CollaborationPhase = "PendingApproval"
)

// CollaborationStatus is what the controller observed of a collaboration.
type CollaborationStatus struct {
	// Phase is where the collaboration is.
	// +optional
	Phase CollaborationPhase `json:"phase,omitempty"`
	// ActiveModules counts the modules the person is in and that have not expired. Modules
	// awaiting approval are not counted: the person is not in them yet.
	// +optional
	ActiveModules int32 `json:"activeModules"`
	// PendingModules counts the modules the person asked to join that wait for an admin's
	// approval and have not expired.
	// +optional
	PendingModules int32 `json:"pendingModules"`
	// NotifiedModules are the modules, as kind/name, the person was told they were added to.
	// +optional
	// +listType=set
	NotifiedModules []string `json:"notifiedModules,omitempty"`
	// Deliveries are the messages handed to notification channels, newest last.
	// +optional
	// +listType=map
	// +listMapKey=key
	// +kubebuilder:validation:MaxItems=32
	Deliveries []Delivery `json:"deliveries,omitempty"`
	// ObservedGeneration is the spec generation the last successful pass acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions tell whether the collaboration is ready and, when not, why.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// Collaboration is one outside person invited into the organization's tasks, projects, files
// or groups, or who asked to join one on its link. One person is found server side with
// field selectors on their email or phone and the organization (kubectl get collab
// --field-selector spec.collaborator.email=frank@freelance.example), so that neither the
// portal nor an admin lists everyone to find them.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=collab,categories=roster
// +kubebuilder:selectablefield:JSONPath=`.spec.organizationRef.name`
// +kubebuilder:selectablefield:JSONPath=`.spec.collaborator.email`
// +kubebuilder:selectablefield:JSONPath=`.spec.collaborator.phone`
// +kubebuilder:printcolumn:name="Collaborator",type=string,JSONPath=`.spec.collaborator.displayName`
// +kubebuilder:printcolumn:name="Email",type=string,JSONPath=`.spec.collaborator.email`
// +kubebuilder:printcolumn:name="Modules",type=integer,JSONPath=`.status.activeModules`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.pendingModules`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Collaboration struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the person's participation in modules.
	Spec CollaborationSpec `json:"spec"`
	// Status is what the controller observed.
	// +optional
	Status CollaborationStatus `json:"status,omitzero"`
}

// CollaborationList is a list of Collaborations.
// +kubebuilder:object:root=true
type CollaborationList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the Collaborations.
	Items []Collaboration `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Collaboration{}, &CollaborationList{})
}
