package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InvitationMethod is how an invitation reaches the person.
// +kubebuilder:validation:Enum=Email;Phone;Link;Contact
type InvitationMethod string

const (
	// InvitationMethodEmail mails a sign-up link (F2).
	InvitationMethodEmail InvitationMethod = "Email"
	// InvitationMethodPhone texts a sign-up link (F2).
	InvitationMethodPhone InvitationMethod = "Phone"
	// InvitationMethodLink sends nothing: an admin reads the link from its Secret and passes
	// it on themselves.
	InvitationMethodLink InvitationMethod = "Link"
	// InvitationMethodContact invites someone who already has an account (F3).
	InvitationMethodContact InvitationMethod = "Contact"
)

// Invitee is the person being invited.
// +kubebuilder:validation:MinProperties=1
type Invitee struct {
	// Name is the person's name as the inviter knows it; they may correct it when they sign up.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name,omitempty"`
	// Email is where an Email invitation goes.
	// +optional
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Format=email
	Email string `json:"email,omitempty"`
	// Phone is where a Phone invitation goes, in E.164 form such as +4915112345678.
	// +optional
	// +kubebuilder:validation:Pattern=`^\+[1-9][0-9]{6,14}$`
	Phone string `json:"phone,omitempty"`
	// Username names someone who already has an account, for a Contact invitation; their
	// name, email and phone are taken from that account.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.@_]*[a-z0-9])?$`
	Username string `json:"username,omitempty"`
}

// WorkDetails are the admin-editable details of a member's job.
type WorkDetails struct {
	// Department the person works in.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Department string `json:"department,omitempty"`
	// Position is the person's job title.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Position string `json:"position,omitempty"`
	// WorkNumber is the person's work phone number or extension.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^\+?[0-9][0-9 ()-]*$`
	WorkNumber string `json:"workNumber,omitempty"`
	// Location is where the person works.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Location string `json:"location,omitempty"`
}

// InvitationSpec is whom to invite, how, and into which role.
// +kubebuilder:validation:XValidation:rule="self.method != 'Email' || has(self.invitee.email)",message="an Email invitation needs invitee.email"
// +kubebuilder:validation:XValidation:rule="self.method != 'Phone' || has(self.invitee.phone)",message="a Phone invitation needs invitee.phone"
// +kubebuilder:validation:XValidation:rule="self.method != 'Contact' || has(self.invitee.username)",message="a Contact invitation needs invitee.username"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.invitedBy) || (has(self.invitedBy) && self.invitedBy == oldSelf.invitedBy)",message="invitedBy cannot change"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.inviterRole) || (has(self.inviterRole) && self.inviterRole == oldSelf.inviterRole)",message="inviterRole cannot change"
type InvitationSpec struct {
	// OrganizationRef names the Organization the person is invited into.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="organizationRef cannot change"
	OrganizationRef OrganizationReference `json:"organizationRef"`

	// Method is how the invitation reaches the person.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="method cannot change; create a new Invitation"
	Method InvitationMethod `json:"method"`

	// Invitee is the person being invited. It cannot change: the invitation already made
	// their Member; invite someone else with a new Invitation.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="invitee cannot change; delete this Invitation and create another"
	Invitee Invitee `json:"invitee"`

	// WorkDetails prefill the member's department, position, work number and location when
	// the invitation is created; edit the Member to change them afterwards.
	WorkDetails `json:",inline"`

	// Role the person gets when they join. It cannot change; change the Member's role.
	// +optional
	// +kubebuilder:default=Member
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="role cannot change; change the Member's spec.role instead"
	Role Role `json:"role,omitempty"`

	// ResendRequests asks for the invitation to be sent again: raise it by one for each
	// resend. Every resend makes a new link, so earlier links stop working, and a new expiry.
	// It can only grow.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="resendRequests can only grow"
	ResendRequests int32 `json:"resendRequests,omitempty"`

	// InvitedBy is the Kubernetes user who created the invitation. The admission webhook
	// sets it from the request; whatever a client sends is replaced.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	InvitedBy string `json:"invitedBy,omitempty"`

	// InviterRole is the inviter's role in the organization when the invitation was
	// created; it decides whether the person will need an admin's approval. The admission
	// webhook sets it from the request; whatever a client sends is replaced.
	// +optional
	InviterRole Role `json:"inviterRole,omitempty"`
}

// InvitationPhase is where an invitation is in its life.
// +kubebuilder:validation:Enum=Pending;Sent;Accepted;Expired;Failed
type InvitationPhase string

const (
	// InvitationPending is being prepared or waits to be sent.
	InvitationPending InvitationPhase = "Pending"
	// InvitationSent was delivered (or, for Link, its link is ready to pass on).
	InvitationSent InvitationPhase = "Sent"
	// InvitationAccepted was used: the person signed up.
	InvitationAccepted InvitationPhase = "Accepted"
	// InvitationExpired ran past its expiry unused; a resend revives it.
	InvitationExpired InvitationPhase = "Expired"
	// InvitationFailed cannot go on; status.reason says why and what to do instead.
	InvitationFailed InvitationPhase = "Failed"
)

// InvitationFailureReason says why an invitation cannot go on (F7).
// +kubebuilder:validation:Enum=AlreadyMember;AlreadyInvited;AwaitingApproval;PreviouslyRejected;PreviouslyRemoved;QuotaExceeded;DeliveryFailed
type InvitationFailureReason string

const (
	// ReasonAlreadyMember: the person is already an active member.
	ReasonAlreadyMember InvitationFailureReason = "AlreadyMember"
	// ReasonAlreadyInvited: another invitation already waits for this person; resend that one.
	ReasonAlreadyInvited InvitationFailureReason = "AlreadyInvited"
	// ReasonAwaitingApproval: the person signed up and waits for approval; approve them instead.
	ReasonAwaitingApproval InvitationFailureReason = "AwaitingApproval"
	// ReasonPreviouslyRejected: the person was rejected; re-approve them instead.
	ReasonPreviouslyRejected InvitationFailureReason = "PreviouslyRejected"
	// ReasonPreviouslyRemoved: the person was removed; restore them instead.
	ReasonPreviouslyRemoved InvitationFailureReason = "PreviouslyRemoved"
	// ReasonQuotaExceeded: the inviter used up the day's import quota.
	ReasonQuotaExceeded InvitationFailureReason = "QuotaExceeded"
	// ReasonDeliveryFailed: the message could not be delivered and will not be retried.
	ReasonDeliveryFailed InvitationFailureReason = "DeliveryFailed"
)

// Delivery records one message handed to a notification channel.
type Delivery struct {
	// Channel is email, sms or webhook.
	// +kubebuilder:validation:Enum=email;sms;webhook;log
	Channel string `json:"channel"`
	// Key is the delivery's idempotency key: the same key is never delivered twice.
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
	// State is Sending while a delivery is under way, then Sent or Failed.
	// +kubebuilder:validation:Enum=Sending;Sent;Failed
	State string `json:"state"`
	// At is when the delivery last changed state.
	// +optional
	At *metav1.Time `json:"at,omitempty"`
	// Attempts counts delivery attempts.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// Error is the last delivery error, without secrets.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Error string `json:"error,omitempty"`
}

// InvitationStatus is what the controller observed of an invitation.
type InvitationStatus struct {
	// Phase is where the invitation is in its life.
	// +optional
	Phase InvitationPhase `json:"phase,omitempty"`
	// Reason says why a Failed invitation cannot go on.
	// +optional
	Reason InvitationFailureReason `json:"reason,omitempty"`
	// RequiresApproval tells whether the person will wait for an admin's approval after
	// signing up (F9).
	// +optional
	RequiresApproval bool `json:"requiresApproval,omitempty"`
	// MemberRef names the Member this invitation made.
	// +optional
	MemberRef *LocalObjectReference `json:"memberRef,omitempty"`
	// TokenSecretRef names the Secret that holds the hash of the current link token.
	// +optional
	TokenSecretRef *LocalObjectReference `json:"tokenSecretRef,omitempty"`
	// ResendsHandled is the spec.resendRequests the controller has acted on.
	// +optional
	ResendsHandled int32 `json:"resendsHandled,omitempty"`
	// ExpiresAt is when the current link stops working.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// SentAt is when the current link was last sent.
	// +optional
	SentAt *metav1.Time `json:"sentAt,omitempty"`
	// AcceptedAt is when the person used the link.
	// +optional
	AcceptedAt *metav1.Time `json:"acceptedAt,omitempty"`
	// Deliveries are the messages handed to notification channels, newest last.
	// +optional
	// +listType=map
	// +listMapKey=key
	// +kubebuilder:validation:MaxItems=32
	Deliveries []Delivery `json:"deliveries,omitempty"`
	// ObservedGeneration is the spec generation the last successful pass acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions tell whether the invitation is ready and, when not, why.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// Invitation invites one person into an organization by email, phone, link or from contacts.
// Creating it creates the person's Member; deleting it before it is accepted cancels it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=inv,categories=roster
// +kubebuilder:selectablefield:JSONPath=`.spec.organizationRef.name`
// +kubebuilder:printcolumn:name="Invitee",type=string,JSONPath=`.spec.invitee.name`
// +kubebuilder:printcolumn:name="Method",type=string,JSONPath=`.spec.method`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Invitation struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is whom to invite, how, and into which role.
	Spec InvitationSpec `json:"spec"`
	// Status is what the controller observed.
	// +optional
	Status InvitationStatus `json:"status,omitzero"`
}

// InvitationList is a list of Invitations.
// +kubebuilder:object:root=true
type InvitationList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the Invitations.
	Items []Invitation `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Invitation{}, &InvitationList{})
}
