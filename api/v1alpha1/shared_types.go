package v1alpha1

// LocalObjectReference names an object in the same namespace as the object that refers to it.
// Roster keeps every reference namespace-local so that a namespace is a whole organization and
// RBAC on the namespace is the whole story.
type LocalObjectReference struct {
	// Name of the referenced object in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// OrganizationReference names the Organization, in the same namespace, that an object belongs to.
type OrganizationReference struct {
	// Name of the Organization in the same namespace. It cannot change: an object moves to
	// another organization only by being created there.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// Role is a member's role in the organization. Account Admins and Super Admins invite without
// needing an admin's approval (F9).
// +kubebuilder:validation:Enum=Member;Admin;AccountAdmin;SuperAdmin
type Role string

const (
	// RoleMember is an ordinary member.
	RoleMember Role = "Member"
	// RoleAdmin administers members: approves, rejects, edits and removes them.
	RoleAdmin Role = "Admin"
	// RoleAccountAdmin is an Admin whose invitations by email or phone need no approval.
	RoleAccountAdmin Role = "AccountAdmin"
	// RoleSuperAdmin is the organization's owner-level role.
	RoleSuperAdmin Role = "SuperAdmin"
)

// Approval is an admin's decision on someone who asked to join.
// +kubebuilder:validation:Enum="";Approved;Rejected
type Approval string

const (
	// ApprovalNone means no admin has decided yet.
	ApprovalNone Approval = ""
	// ApprovalApproved lets the person in.
	ApprovalApproved Approval = "Approved"
	// ApprovalRejected keeps the person out; setting Approved later re-approves them.
	ApprovalRejected Approval = "Rejected"
)

// Condition types and reasons shared by every kind. They follow the kstatus conventions
// that GitOps tools (Flux, Argo CD, kubectl wait) read: Reconciling is True while Roster is
// still working on the object, Stalled is True when nothing can move without a person, and
// Ready summarises. An object with neither Reconciling nor Stalled, whose
// status.observedGeneration is its generation, is Current.
const (
	// ConditionReady is true when the object is what its spec asks for; every kind has it.
	ConditionReady = "Ready"
	// ConditionReconciling is True while Roster is still working towards the spec (sending,
	// waiting for a retry); absent otherwise.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when Roster cannot go on without a person (a failed invitation,
	// an expired link, a missing Organization); absent otherwise.
	ConditionStalled = "Stalled"

	// ReasonReconciled says the last pass made the object match its spec.
	ReasonReconciled = "Reconciled"
	// ReasonOrganizationNotFound says the organizationRef names no Organization.
	ReasonOrganizationNotFound = "OrganizationNotFound"
	// ReasonOrganizationDeleting says the object's Organization is being deleted: it goes
	// too, in order, and nothing more is sent on its behalf.
	ReasonOrganizationDeleting = "OrganizationDeleting"
)

// Finalizer is put on Roster's objects so that their controllers clean up before they go.
const Finalizer = "org.roster.dev/finalizer"
