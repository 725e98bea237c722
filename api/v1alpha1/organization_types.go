package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OrganizationSpec is how an organization wants its membership run.
// +kubebuilder:validation:XValidation:rule="!has(self.importQuota) || !has(self.importQuota.perUserPerDay) || self.plan == 'Paid' || self.importQuota.perUserPerDay <= 100",message="the Free plan allows at most 100 imports per user per day; set plan: Paid for more"
type OrganizationSpec struct {
	// DisplayName is the organization's name as people see it in mails and on pages.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName"`

	// DoorNumber is the short number anyone can type on the join page to ask to join (F1).
	// Leave it empty to have one generated into status.doorNumber; it must be unique in the
	// cluster.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]{6,10}$`
	DoorNumber string `json:"doorNumber,omitempty"`

	// Admins are the Kubernetes users and groups that act as the organization's Super Admins:
	// they may approve, reject, terminate and restore members whatever their Member role.
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Admins []Subject `json:"admins,omitempty"`

	// JoinRules say who needs an admin's approval to join and what a joiner must tell (F10).
	// +optional
	// +kubebuilder:default={}
	JoinRules JoinRules `json:"joinRules,omitzero"`

	// PublicInvitation is the shareable link anyone can join with (F1).
	// +optional
	PublicInvitation PublicInvitation `json:"publicInvitation,omitzero"`

	// ModuleLinks are shareable links on which people outside the organization ask to join
	// one task, project, file or group. Roster keeps each link in a Secret named in
	// status.moduleLinks; whoever opens it gives their name and email (or phone), proves it
	// with a code, and lands in a Collaboration with the module Pending until an admin
	// approves. Remove an entry and its link stops working.
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	ModuleLinks []ModuleLink `json:"moduleLinks,omitempty"`

	// InvitationTTL is how long an invitation link works after it was sent, from 1h to 720h.
	// +optional
	// +kubebuilder:default="168h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h') && duration(self) <= duration('720h')",message="invitationTTL must be between 1h and 720h"
	InvitationTTL metav1.Duration `json:"invitationTTL,omitzero"`

	// Plan is the organization's plan; it sets the default import quota.
	// +optional
	// +kubebuilder:default=Free
	Plan Plan `json:"plan,omitempty"`

	// ImportQuota limits bulk imports (F6).
	// +optional
	ImportQuota *ImportQuota `json:"importQuota,omitempty"`

	// Applications are the organization's applications that outside people may use through
	// an external portal, each with its own licensed seats (F15, F16).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Applications []Application `json:"applications,omitempty"`

	// Notifications say how Roster reaches people: email, SMS and webhooks.
	// +optional
	Notifications Notifications `json:"notifications,omitzero"`

	// PortalURL is the public base address of the pages invitation links open, such as
	// https://join.example.com. Links in mails are built from it.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s/?#]+[^\s]*$`
	PortalURL string `json:"portalURL,omitempty"`
}

// Subject is a Kubernetes identity, as the API server authenticates it.
type Subject struct {
	// Kind is User for a single identity or Group for everyone in a group.
	// +kubebuilder:validation:Enum=User;Group
	Kind string `json:"kind"`
	// Name is the user name or group name exactly as the API server reports it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// JoinRules say who needs approval and what information a joiner must give.
type JoinRules struct {
	// ApprovalForNonAdminInvites is the "inviting verification" switch: when true, people
	// invited by someone who is not an Account Admin or Super Admin wait for an admin's
	// approval. Joins through the public link or door number always need approval.
	// +optional
	// +kubebuilder:default=true
	ApprovalForNonAdminInvites *bool `json:"approvalForNonAdminInvites,omitempty"`

	// RequiredFields are the details a joiner must fill in on the sign-up page.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=6
	RequiredFields []MemberField `json:"requiredFields,omitempty"`
}

// MemberField names a detail a joiner can be asked for.
// +kubebuilder:validation:Enum=department;position;workNumber;location;email;phone
type MemberField string

// PublicInvitation is the organization's shareable join link.
type PublicInvitation struct {
	// Enabled turns the public link and the door number on. Off, both stop working.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// LinkGeneration rotates the public link: bump it and the old link stops working.
	// +optional
	// +kubebuilder:validation:Minimum=0
	LinkGeneration int64 `json:"linkGeneration,omitempty"`
}

// ModuleLink is the shareable link for asking to join one module.
type ModuleLink struct {
	// Kind of the module: Task, Project, File or Group.
	Kind ModuleKind `json:"kind"`
	// Name identifies the module within its kind, as Collaborations name it in
	// spec.modules.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Role is what people who ask on this link may do in the module once approved, such as
	// viewer; the admin who approves sees it and can change it.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Role string `json:"role,omitempty"`
	// LinkGeneration rotates the link: bump it and the old link stops working at once;
	// requests already made stay.
	// +optional
	// +kubebuilder:validation:Minimum=0
	LinkGeneration int64 `json:"linkGeneration,omitempty"`
}

// ModuleLinkStatus says where the current link of a module is.
type ModuleLinkStatus struct {
	// Kind of the module.
	Kind ModuleKind `json:"kind"`
	// Name of the module.
	Name string `json:"name"`
	// SecretRef names the Secret whose key "link" holds the current link to pass on.
	SecretRef LocalObjectReference `json:"secretRef"`
	// LinkGeneration is the spec linkGeneration the current link was made for.
	// +optional
	LinkGeneration int64 `json:"linkGeneration,omitempty"`
}

// Plan is an organization's billing plan.
// +kubebuilder:validation:Enum=Free;Paid
type Plan string

const (
	// PlanFree limits each user to 100 imports a day.
	PlanFree Plan = "Free"
	// PlanPaid has no import limit unless one is set.
	PlanPaid Plan = "Paid"
)

// DefaultFreeImportsPerUserPerDay is the Free plan's import limit (F6).
const DefaultFreeImportsPerUserPerDay = 100

// ImportQuota limits bulk imports.
type ImportQuota struct {
	// PerUserPerDay is how many invitations one user may import in a day. Unset means 100 on
	// the Free plan and no limit on the Paid plan; Free cannot go above 100.
	// +optional
	// +kubebuilder:validation:Minimum=0
	PerUserPerDay *int32 `json:"perUserPerDay,omitempty"`
}

// Application is one of the organization's applications with an external portal.
type Application struct {
	// Name identifies the application; ExternalUsers name it in spec.application.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// DisplayName is the application's name as outside people see it.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`
	// Portal is the application's external portal.
	// +optional
	Portal Portal `json:"portal,omitzero"`
	// License is what the organization paid for: seats for external users and until when.
	// +optional
	License License `json:"license,omitzero"`
	// RequireTeam requires every external user to have at least one internal team member
	// who serves them.
	// +optional
	RequireTeam bool `json:"requireTeam,omitempty"`
	// Inactivity disables, and later deletes, external users who stop signing in. Off
	// unless set.
	// +optional
	Inactivity *Inactivity `json:"inactivity,omitempty"`
}

// HoldsSelfRegistration reports whether a person who registered themselves on the
// application's portal waits for an admin: where the portal asks for approval, and where the
// application requires a team, which only an admin can give (the person cannot pick the
// organization's members themselves).
func (a *Application) HoldsSelfRegistration(x *ExternalUserSpec) bool {
	return a.Portal.ApprovalRequired || a.RequireTeam && len(x.Team) == 0
}

// Inactivity is what happens to an application's external users who do not sign in. The
// time counts from their last sign-in, or from registration or reactivation when later.
// A disabled user frees their seat, is told once, and an admin lets them in again by
// raising the ExternalUser's spec.reactivateRequests.
// +kubebuilder:validation:XValidation:rule="!has(self.deleteAfter) || (has(self.disableAfter) && duration(self.deleteAfter) > duration(self.disableAfter))",message="deleteAfter needs a shorter disableAfter: users are disabled and told before they are deleted"
type Inactivity struct {
	// DisableAfter disables an external user who has not signed in for this long, such as
	// 2160h (90 days). At least 1h.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="disableAfter must be at least 1h"
	DisableAfter *metav1.Duration `json:"disableAfter,omitempty"`
	// DeleteAfter deletes a disabled external user who has not signed in for this long,
	// counted like disableAfter and longer than it.
	// +optional
	DeleteAfter *metav1.Duration `json:"deleteAfter,omitempty"`
}

// Portal is an application's external portal settings.
type Portal struct {
	// Enabled opens the portal to external users.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// SelfRegistration lets outside people register themselves on the portal.
	// +optional
	SelfRegistration bool `json:"selfRegistration,omitempty"`
	// ApprovalRequired makes self-registrations wait for an admin's approval.
	// +optional
	ApprovalRequired bool `json:"approvalRequired,omitempty"`
}

// License is an application's external-user license.
type License struct {
	// Seats is how many external users may use the application at once. External users
	// beyond it wait for a seat, oldest first.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Seats int32 `json:"seats,omitempty"`
	// ExpiresAt is when the license ends; after it no external user can sign in until it
	// is renewed. Unset means it does not expire.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
}

// Notifications say how Roster reaches people.
type Notifications struct {
	// Email sends mail through an SMTP server.
	// +optional
	Email *EmailNotifications `json:"email,omitempty"`
	// SMS sends text messages through an HTTP SMS provider.
	// +optional
	SMS *SecretNotifications `json:"sms,omitempty"`
	// Webhook posts every notification as JSON to an HTTP endpoint (Slack compatible).
	// +optional
	Webhook *SecretNotifications `json:"webhook,omitempty"`
	// TemplatesRef names a ConfigMap whose keys override the built-in message templates.
	// +optional
	TemplatesRef *LocalObjectReference `json:"templatesRef,omitempty"`
}

// EmailNotifications configure mail delivery.
type EmailNotifications struct {
	// SMTPSecretRef names the Secret with the SMTP server's host, port, username, password
	// and TLS mode. Credentials live only there.
	SMTPSecretRef LocalObjectReference `json:"smtpSecretRef"`
	// From is the sender address of every mail, such as "Acme <people@acme.example>".
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=320
	// +kubebuilder:validation:XValidation:rule="self.contains('@')",message="from must contain an email address"
	From string `json:"from"`
	// MaxPerSecond is how many mails Roster sends for this organization per second, with
	// bursts of twice as many. The default, 10, keeps a bulk invitation from tripping a
	// shared relay's abuse protection; a high-volume relay can take more.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxPerSecond *int32 `json:"maxPerSecond,omitempty"`
}

// SecretNotifications configure a channel whose endpoint and credentials live in a Secret.
type SecretNotifications struct {
	// SecretRef names the Secret with the endpoint URL and its credentials.
	SecretRef LocalObjectReference `json:"secretRef"`
	// MaxPerSecond is how many messages Roster sends on this channel per second, with bursts
	// of twice as many. Defaults: 1 for SMS, 5 for webhooks.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxPerSecond *int32 `json:"maxPerSecond,omitempty"`
}

// MemberCounts counts an organization's members by phase.
type MemberCounts struct {
	// Inactivated members were invited and have not signed up yet.
	// +optional
	Inactivated int32 `json:"inactivated"`
	// Pending members signed up and wait for an admin's approval.
	// +optional
	Pending int32 `json:"pending"`
	// Active members are in.
	// +optional
	Active int32 `json:"active"`
	// Rejected members were refused by an admin.
	// +optional
	Rejected int32 `json:"rejected"`
	// Terminated members were removed and can be restored.
	// +optional
	Terminated int32 `json:"terminated"`
}

// ApplicationStatus is how an application's seats are used.
type ApplicationStatus struct {
	// Name of the application in spec.applications.
	Name string `json:"name"`
	// Seats is the licensed number of seats.
	// +optional
	Seats int32 `json:"seats"`
	// SeatsUsed is how many external users hold a seat.
	// +optional
	SeatsUsed int32 `json:"seatsUsed"`
	// Waiting is how many external users wait for a seat.
	// +optional
	Waiting int32 `json:"waiting,omitempty"`
	// LicenseExpired is true once license.expiresAt has passed.
	// +optional
	LicenseExpired bool `json:"licenseExpired,omitempty"`
}

// OrganizationStatus is what the controller observed of an organization.
type OrganizationStatus struct {
	// DoorNumber is the door number in force: spec.doorNumber, or the generated one.
	// +optional
	DoorNumber string `json:"doorNumber,omitempty"`
	// PublicLinkSecretRef names the Secret that holds the current public invitation link.
	// +optional
	PublicLinkSecretRef *LocalObjectReference `json:"publicLinkSecretRef,omitempty"`
	// PublicLinkGeneration is the spec.publicInvitation.linkGeneration the current link was
	// made for.
	// +optional
	PublicLinkGeneration int64 `json:"publicLinkGeneration,omitempty"`
	// ModuleLinks name the Secrets that hold the current link of each spec.moduleLinks
	// entry: kubectl get secret NAME -o jsonpath='{.data.link}' | base64 -d
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	ModuleLinks []ModuleLinkStatus `json:"moduleLinks,omitempty"`
	// Shard is the org.roster.dev/shard label every child of the organization carries now;
	// when the Organization's label changes, Roster relabels the children, then sets it.
	// +optional
	Shard string `json:"shard,omitempty"`
	// Members counts the organization's members by phase.
	// +optional
	Members MemberCounts `json:"members,omitzero"`
	// Applications shows each application's seats.
	// +optional
	// +listType=map
	// +listMapKey=name
	Applications []ApplicationStatus `json:"applications,omitempty"`
	// Collaborators counts the organization's Collaborations that are in at least one module.
	// +optional
	Collaborators int32 `json:"collaborators,omitempty"`
	// ObservedGeneration is the spec generation the last successful pass acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions tell whether the organization is ready and, when not, why.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// Organization is one organization whose membership Roster runs: its join rules, public
// invitation, admins, application portals and notification channels.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=org,categories=roster
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Door",type=string,JSONPath=`.status.doorNumber`
// +kubebuilder:printcolumn:name="Active",type=integer,JSONPath=`.status.members.active`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.members.pending`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Organization struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is how the organization wants its membership run.
	Spec OrganizationSpec `json:"spec"`
	// Status is what the controller observed.
	// +optional
	Status OrganizationStatus `json:"status,omitzero"`
}

// OrganizationList is a list of Organizations.
// +kubebuilder:object:root=true
type OrganizationList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the Organizations.
	Items []Organization `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Organization{}, &OrganizationList{})
}
