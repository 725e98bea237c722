package v1alpha1

// Labels Roster keeps on ExternalUsers, so that `kubectl get xu -l ...` selects them.
const (
	// LabelApplication mirrors an ExternalUser's spec.application.
	LabelApplication = "org.roster.dev/application"
	// LabelCompany mirrors an ExternalUser's spec.company, made label-safe.
	LabelCompany = "org.roster.dev/company"
	// LabelExternalUser names the ExternalUser a portal link Secret belongs to.
	LabelExternalUser = "org.roster.dev/external-user"
	// LabelSeat is the seat allocator's decision on an ExternalUser: SeatGranted while the
	// user holds one of the application's licensed seats, absent otherwise. Only Roster's
	// Organization controller writes it; the admission webhook refuses it from anyone else.
	LabelSeat = "org.roster.dev/seat"
	// SeatGranted is LabelSeat's value for a user who holds a seat.
	SeatGranted = "granted"
)

// Condition types of an ExternalUser, besides Ready, Reconciling and Stalled.
const (
	// ConditionSeat is True while the user holds one of the application's licensed seats.
	ConditionSeat = "Seat"
	// ConditionTeam is True while every Member on the user's team is an active member, and
	// False, naming them, when one left, so an admin knows whom to reassign.
	ConditionTeam = "Team"
	// ConditionNotified says whether every message to the person (an external user, a
	// collaborator) was delivered; False while one could not be, or when no channel reaches them.
	ConditionNotified = "Notified"
)

// Reasons of an ExternalUser's conditions.
const (
	// ReasonInvited: the user has not registered yet.
	ReasonInvited = "Invited"
	// ReasonPendingApproval: the user registered themselves and waits for an admin.
	ReasonPendingApproval = "PendingApproval"
	// ReasonLocked: an admin locked the user out.
	ReasonLocked = "Locked"
	// ReasonWaitingForSeat: every licensed seat is taken.
	ReasonWaitingForSeat = "WaitingForSeat"
	// ReasonLicenseExpired: the application's license ran out or has no seats.
	ReasonLicenseExpired = "LicenseExpired"
	// ReasonApplicationNotFound: spec.application is not one of the Organization's.
	ReasonApplicationNotFound = "ApplicationNotFound"
	// ReasonIssuingLink: a new invitation link is being made.
	ReasonIssuingLink = "IssuingLink"
	// ReasonDelivered: every message to the person was delivered.
	ReasonDelivered = "Delivered"
	// ReasonTeamActive: every team member is an active member.
	ReasonTeamActive = "TeamActive"
	// ReasonTeamMemberLeft: a team member was removed or deleted.
	ReasonTeamMemberLeft = "TeamMemberLeft"
	// ReasonSeatGranted: the user holds a seat.
	ReasonSeatGranted = "SeatGranted"
	// ReasonNoSeat: the user does not hold a seat.
	ReasonNoSeat = "NoSeat"
	// ReasonLinkExpired: the user's invitation link ran out before they registered.
	ReasonLinkExpired = "LinkExpired"
	// ReasonDisabledForInactivity: the user did not sign in for the application's
	// inactivity.disableAfter.
	ReasonDisabledForInactivity = "DisabledForInactivity"
)
