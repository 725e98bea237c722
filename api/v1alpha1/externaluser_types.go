package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ExternalAccess says whether an external user may sign in.
// +kubebuilder:validation:Enum=Enabled;Locked
type ExternalAccess string

const (
	// ExternalAccessEnabled lets the external user sign in.
	ExternalAccessEnabled ExternalAccess = "Enabled"
	// ExternalAccessLocked keeps the external user out completely (F27).
	ExternalAccessLocked ExternalAccess = "Locked"
)

// SystemGroupExternalUsers is the group every external user is in (F26).
const SystemGroupExternalUsers = "system:external-users"

// ExternalUserInvitation controls the external user's individual invitation link (F24).
type ExternalUserInvitation struct {
	// SkipContactConfirmation skips email verification when the admin already knows the
	// address is right ("without contact confirmation").
	// +optional
	SkipContactConfirmation bool `json:"skipContactConfirmation,omitempty"`
	// LinkGeneration issues a new invitation link when raised; the old link stops working.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="linkGeneration can only grow"
	LinkGeneration int64 `json:"linkGeneration,omitempty"`
}

// TeamMember is an internal member who serves an external user (F36, F38).
type TeamMember struct {
	// Member names the Member, in the same namespace, who serves this external user.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Member string `json:"member"`
	// Lead marks the team's lead. There is at most one, and once there is one there is
	// always one: make another member lead to take it from them.
	// +optional
	Lead bool `json:"lead,omitempty"`
}

// ExternalUserSpec is one outside person's access to one application's portal.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.team) || !oldSelf.team.exists(t, has(t.lead) && t.lead) || (has(self.team) && self.team.exists(t, has(t.lead) && t.lead))",message="the team lead cannot be removed until another member is made lead: in the same change, set lead: true on the team member who takes over (kubectl edit xu NAME)"
type ExternalUserSpec struct {
	// OrganizationRef names the Organization whose application this is.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="organizationRef cannot change"
	OrganizationRef OrganizationReference `json:"organizationRef"`

	// Application names the application in the Organization's spec.applications. The same
	// person in two applications is two ExternalUsers.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="application cannot change; create an ExternalUser for the other application"
	Application string `json:"application"`

	// DisplayName is the person's name, the only detail an admin must give (F23).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName"`
	// Email is the person's email address; their invitation and mails go there.
	// +optional
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Format=email
	Email string `json:"email,omitempty"`
	// Phone is the person's phone number in E.164 form.
	// +optional
	// +kubebuilder:validation:Pattern=`^\+[1-9][0-9]{6,14}$`
	Phone string `json:"phone,omitempty"`
	// Company is the business partner the person works for; clear it to unlink them (F30).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Company string `json:"company,omitempty"`
	// Title is the person's job title.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Title string `json:"title,omitempty"`

	// Access is Enabled, or Locked to keep the person out completely.
	// +optional
	// +kubebuilder:default=Enabled
	Access ExternalAccess `json:"access,omitempty"`

	// Approval is an admin's decision on a self-registration (F29).
	// +optional
	Approval Approval `json:"approval,omitempty"`

	// Invitation controls the person's individual invitation link.
	// +optional
	Invitation ExternalUserInvitation `json:"invitation,omitzero"`

	// ResendConfirmationRequests asks for the registration confirmation mail again: raise it
	// by one for each resend (F32).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="resendConfirmationRequests can only grow"
	ResendConfirmationRequests int32 `json:"resendConfirmationRequests,omitempty"`
	// ResendWelcomeRequests asks for the welcome mail with the portal link again: raise it
	// by one for each resend (F32).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="resendWelcomeRequests can only grow"
	ResendWelcomeRequests int32 `json:"resendWelcomeRequests,omitempty"`

	// ReactivateRequests lets a user disabled for inactivity in again: raise it by one. Their
	// inactivity counts from the reactivation.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="reactivateRequests can only grow"
	ReactivateRequests int32 `json:"reactivateRequests,omitempty"`

	// Team are the internal members who serve the person, with at most one lead.
	// +optional
	// +listType=map
	// +listMapKey=member
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.filter(t, has(t.lead) && t.lead).size() <= 1",message="a team has at most one lead"
	Team []TeamMember `json:"team,omitempty"`
}

// ExternalUserPhase is where an external user is in their life.
// +kubebuilder:validation:Enum=Invited;PendingApproval;Active;Locked;Rejected;WaitingForSeat;Disabled
type ExternalUserPhase string

const (
	// ExternalUserInvited was added or invited and has not registered yet.
	ExternalUserInvited ExternalUserPhase = "Invited"
	// ExternalUserPendingApproval registered themselves and waits for an admin.
	ExternalUserPendingApproval ExternalUserPhase = "PendingApproval"
	// ExternalUserActive may use the portal.
	ExternalUserActive ExternalUserPhase = "Active"
	// ExternalUserLocked is kept out by an admin.
	ExternalUserLocked ExternalUserPhase = "Locked"
	// ExternalUserRejected registered themselves and was refused.
	ExternalUserRejected ExternalUserPhase = "Rejected"
	// ExternalUserWaitingForSeat has no licensed seat (all taken, or the license expired).
	ExternalUserWaitingForSeat ExternalUserPhase = "WaitingForSeat"
	// ExternalUserDisabled did not sign in for the application's inactivity.disableAfter;
	// they hold no seat until an admin reactivates them.
	ExternalUserDisabled ExternalUserPhase = "Disabled"
)

// ExternalUserStatus is what the controller observed of an external user.
type ExternalUserStatus struct {
	// Phase is where the external user is.
	// +optional
	Phase ExternalUserPhase `json:"phase,omitempty"`
	// SelfRegistered is true when the person registered on the portal themselves.
	// +optional
	SelfRegistered bool `json:"selfRegistered,omitempty"`
	// EmailVerified is true once the person confirmed their email address.
	// +optional
	EmailVerified bool `json:"emailVerified,omitempty"`
	// RegisteredAt is when the person completed registration.
	// +optional
	RegisteredAt *metav1.Time `json:"registeredAt,omitempty"`
	// LastLoginAt is when the person last signed in to the portal.
	// +optional
	LastLoginAt *metav1.Time `json:"lastLoginAt,omitempty"`
	// LinkSecretRef names the Secret an admin reads to copy the current invitation link.
	// +optional
	LinkSecretRef *LocalObjectReference `json:"linkSecretRef,omitempty"`
	// LinkGeneration is the spec.invitation.linkGeneration the current link was made for.
	// +optional
	LinkGeneration int64 `json:"linkGeneration,omitempty"`
	// LinkExpiresAt is when the current link stops working: the Organization's
	// invitationTTL after it was made. Raise spec.invitation.linkGeneration for a new one.
	// The link also stops working once the person has registered with it.
	// +optional
	LinkExpiresAt *metav1.Time `json:"linkExpiresAt,omitempty"`
	// ConfirmationResendsHandled is the spec.resendConfirmationRequests acted on.
	// +optional
	ConfirmationResendsHandled int32 `json:"confirmationResendsHandled,omitempty"`
	// WelcomeResendsHandled is the spec.resendWelcomeRequests acted on.
	// +optional
	WelcomeResendsHandled int32 `json:"welcomeResendsHandled,omitempty"`
	// SeatSince is when the user got the seat they hold; unset while they hold none.
	// Inactivity counts from it too, so a user who waited for a seat is not disabled the
	// moment they get one.
	// +optional
	SeatSince *metav1.Time `json:"seatSince,omitempty"`
	// DisabledAt is when the user was disabled for inactivity; unset while they are not.
	// +optional
	DisabledAt *metav1.Time `json:"disabledAt,omitempty"`
	// ReactivationsHandled is the spec.reactivateRequests acted on.
	// +optional
	ReactivationsHandled int32 `json:"reactivationsHandled,omitempty"`
	// ReactivatedAt is when an admin last let the user in again after inactivity.
	// +optional
	ReactivatedAt *metav1.Time `json:"reactivatedAt,omitempty"`
	// Groups are the groups the person is in; always includes the external users' system
	// group.
	// +optional
	// +listType=set
	Groups []string `json:"groups,omitempty"`
	// Deliveries are the messages handed to notification channels, newest last.
	// +optional
	// +listType=map
	// +listMapKey=key
	// +kubebuilder:validation:MaxItems=32
	Deliveries []Delivery `json:"deliveries,omitempty"`
	// ObservedGeneration is the spec generation the last successful pass acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions tell whether the external user is ready and, when not, why.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// ExternalUser is one outside person using one application's external portal. Admins find
// them server side with field selectors on application, name, email, phone, company and
// phase (kubectl get xu --field-selector spec.company=Partner), and with the labels Roster
// keeps for application, company and phase.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=xu,categories=roster
// +kubebuilder:selectablefield:JSONPath=`.spec.organizationRef.name`
// +kubebuilder:selectablefield:JSONPath=`.spec.application`
// +kubebuilder:selectablefield:JSONPath=`.spec.displayName`
// +kubebuilder:selectablefield:JSONPath=`.spec.email`
// +kubebuilder:selectablefield:JSONPath=`.spec.phone`
// +kubebuilder:selectablefield:JSONPath=`.spec.company`
// +kubebuilder:selectablefield:JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Application",type=string,JSONPath=`.spec.application`
// +kubebuilder:printcolumn:name="Company",type=string,JSONPath=`.spec.company`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Registered",type=date,JSONPath=`.status.registeredAt`
// +kubebuilder:printcolumn:name="Last Login",type=date,JSONPath=`.status.lastLoginAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ExternalUser struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the person's access to the application's portal.
	Spec ExternalUserSpec `json:"spec"`
	// Status is what the controller observed.
	// +optional
	Status ExternalUserStatus `json:"status,omitzero"`
}

// ExternalUserList is a list of ExternalUsers.
// +kubebuilder:object:root=true
type ExternalUserList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the ExternalUsers.
	Items []ExternalUser `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ExternalUser{}, &ExternalUserList{})
}
