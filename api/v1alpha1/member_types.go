package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Access says whether a member is in or removed.
// +kubebuilder:validation:Enum=Active;Terminated
type Access string

const (
	// AccessActive keeps the member in (and restores a terminated one).
	AccessActive Access = "Active"
	// AccessTerminated removes the member and keeps their record so they can be restored.
	AccessTerminated Access = "Terminated"
)

// MemberSpec is one person's membership.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.username) || (has(self.username) && self.username == oldSelf.username)",message="username cannot change once set"
type MemberSpec struct {
	// OrganizationRef names the Organization the person belongs to.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="organizationRef cannot change"
	OrganizationRef OrganizationReference `json:"organizationRef"`

	// Username is the person's account, set when they sign up.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.@_]*[a-z0-9])?$`
	Username string `json:"username,omitempty"`

	// DisplayName is the person's name. Once they signed up only they may change it.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`
	// Email is the person's email address. Once they signed up only they may change it.
	// +optional
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Format=email
	Email string `json:"email,omitempty"`
	// Phone is the person's phone number in E.164 form. Once they signed up only they may
	// change it.
	// +optional
	// +kubebuilder:validation:Pattern=`^\+[1-9][0-9]{6,14}$`
	Phone string `json:"phone,omitempty"`

	// WorkDetails are the department, position, work number and location, which admins edit.
	WorkDetails `json:",inline"`

	// Role is the person's role in the organization.
	// +optional
	// +kubebuilder:default=Member
	Role Role `json:"role,omitempty"`

	// Approval is an admin's decision on a member who waits for approval: Approved lets
	// them in, Rejected keeps them out. Only admins may set it.
	// +optional
	Approval Approval `json:"approval,omitempty"`

	// Access is Active, or Terminated to remove the member while keeping the record.
	// Setting Active again restores them (F14). Only admins may change it.
	// +optional
	// +kubebuilder:default=Active
	Access Access `json:"access,omitempty"`

	// Provenance records how the member came to the organization and who decided on them.
	// Roster's admission webhook writes it from the requests themselves; whatever a client
	// sends is replaced, so nothing in it can be forged to skip an approval.
	// +optional
	Provenance MemberProvenance `json:"provenance,omitzero"`
}

// MemberProvenance is what Roster's admission webhook recorded about who made a Member and
// who decided on it. The Member controller trusts these fields, and only these, to decide
// whether the person needs an admin's approval.
// +kubebuilder:validation:XValidation:rule="has(self.joinMethod) == has(oldSelf.joinMethod) && has(self.invitedBy) == has(oldSelf.invitedBy) && has(self.inviterRole) == has(oldSelf.inviterRole)",message="provenance records how the member came and cannot change"
type MemberProvenance struct {
	// JoinMethod is how the member came: through an invitation, the public link, the door
	// number, from contacts or an import. Empty when an admin added the member directly.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="provenance records how the member came and cannot change"
	JoinMethod JoinMethod `json:"joinMethod,omitempty"`
	// InvitedBy is the Kubernetes user who invited the member, or the admin who added them.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="provenance records how the member came and cannot change"
	InvitedBy string `json:"invitedBy,omitempty"`
	// InviterRole is that user's role in the organization at the time.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="provenance records how the member came and cannot change"
	InviterRole Role `json:"inviterRole,omitempty"`
	// ApprovalBy is the Kubernetes user who last changed spec.approval.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ApprovalBy string `json:"approvalBy,omitempty"`
}

// MemberPhase is where a member is in their life.
// +kubebuilder:validation:Enum=Inactivated;Pending;Active;Rejected;Terminated
type MemberPhase string

const (
	// MemberInactivated was invited and has not signed up yet.
	MemberInactivated MemberPhase = "Inactivated"
	// MemberPending signed up and waits for an admin's approval.
	MemberPending MemberPhase = "Pending"
	// MemberActive is in.
	MemberActive MemberPhase = "Active"
	// MemberRejected was refused by an admin.
	MemberRejected MemberPhase = "Rejected"
	// MemberTerminated was removed; the record is kept so they can be restored.
	MemberTerminated MemberPhase = "Terminated"
)

// JoinMethod is how a member came to the organization.
// +kubebuilder:validation:Enum=Invitation;PublicLink;DoorNumber;Contact;Import
type JoinMethod string

const (
	// JoinMethodInvitation came through an email, phone or link invitation.
	JoinMethodInvitation JoinMethod = "Invitation"
	// JoinMethodPublicLink came through the organization's public link.
	JoinMethodPublicLink JoinMethod = "PublicLink"
	// JoinMethodDoorNumber came by typing the organization's door number.
	JoinMethodDoorNumber JoinMethod = "DoorNumber"
	// JoinMethodContact was invited from contacts with an existing account.
	JoinMethodContact JoinMethod = "Contact"
	// JoinMethodImport came through a bulk import.
	JoinMethodImport JoinMethod = "Import"
)

// MemberStatus is what the controller observed of a member.
type MemberStatus struct {
	// Phase is where the member is: Inactivated, Pending, Active, Rejected or Terminated.
	// +optional
	Phase MemberPhase `json:"phase,omitempty"`
	// JoinMethod is how the member came to the organization.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	JoinMethod JoinMethod `json:"joinMethod,omitempty"`
	// InvitedBy is the user who invited the member, when they were invited.
	// +optional
	InvitedBy string `json:"invitedBy,omitempty"`
	// RequiresApproval tells whether the member needs an admin's approval to become Active.
	// +optional
	RequiresApproval bool `json:"requiresApproval,omitempty"`
	// SignedUpAt is when the person signed up.
	// +optional
	SignedUpAt *metav1.Time `json:"signedUpAt,omitempty"`
	// ApprovedBy is the user who last set spec.approval.
	// +optional
	ApprovedBy string `json:"approvedBy,omitempty"`
	// ApprovedAt is when spec.approval was last set.
	// +optional
	ApprovedAt *metav1.Time `json:"approvedAt,omitempty"`
	// TerminatedAt is when the member was removed; cleared when restored.
	// +optional
	TerminatedAt *metav1.Time `json:"terminatedAt,omitempty"`
	// LastLoginAt is when the person last signed in.
	// +optional
	LastLoginAt *metav1.Time `json:"lastLoginAt,omitempty"`
	// UsernameClaimed is true once the Claim named after spec.username is this member's: of
	// two Members with one username in an organization, only the one holding the claim has
	// the username's role.
	// +optional
	UsernameClaimed bool `json:"usernameClaimed,omitempty"`
	// Deliveries are the messages about this membership handed to notification channels.
	// +optional
	// +listType=map
	// +listMapKey=key
	// +kubebuilder:validation:MaxItems=32
	Deliveries []Delivery `json:"deliveries,omitempty"`
	// ObservedGeneration is the spec generation the last successful pass acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions tell whether the member is ready and, when not, what an admin should do.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// Member is one person's membership in an organization: who they are, their job details,
// an admin's approval and whether they are removed.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mem,categories=roster
// +kubebuilder:selectablefield:JSONPath=`.spec.organizationRef.name`
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Email",type=string,JSONPath=`.spec.email`
// +kubebuilder:printcolumn:name="Department",type=string,JSONPath=`.spec.department`
// +kubebuilder:printcolumn:name="Position",type=string,JSONPath=`.spec.position`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.spec.role`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Member struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the person's membership.
	Spec MemberSpec `json:"spec"`
	// Status is what the controller observed.
	// +optional
	Status MemberStatus `json:"status,omitzero"`
}

// MemberList is a list of Members.
// +kubebuilder:object:root=true
type MemberList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the Members.
	Items []Member `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Member{}, &MemberList{})
}
