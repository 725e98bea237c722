package v1alpha1

// Reasons of the Ready, Reconciling and Stalled conditions, by kind. They are CamelCase, so
// that tools can match them, and each comes with a message that says what to do.
const (
	// ReasonDoorNumberTaken: the door number asked for in spec belongs to another
	// organization.
	ReasonDoorNumberTaken = "DoorNumberTaken"

	// ReasonSending: an invitation, or a message to an external user, is being delivered.
	ReasonSending = "Sending"
	// ReasonDeliveryRetrying: a delivery failed for a reason that may pass; it is retried.
	ReasonDeliveryRetrying = "DeliveryRetrying"
	// ReasonNotificationsMisconfigured: the Organization's channel settings cannot be used.
	ReasonNotificationsMisconfigured = "NotificationsMisconfigured"
	// ReasonSent: the invitation was delivered and its link works until it expires.
	ReasonSent = "Sent"
	// ReasonLinkReady: a Link invitation's link is ready for the admin to pass on.
	ReasonLinkReady = "LinkReady"
	// ReasonAccepted: the person signed up with the link.
	ReasonAccepted = "Accepted"
	// ReasonExpired: the link expired unused.
	ReasonExpired = "Expired"
	// ReasonAccountNotFound: a Contact invitation names no account in the namespace.
	ReasonAccountNotFound = "AccountNotFound"
	// ReasonMemberConflict: a Member of the invitation's name exists and is someone else's.
	ReasonMemberConflict = "MemberConflict"
	// ReasonResendLimit: a resend waits for the resend window.
	ReasonResendLimit = "ResendLimit"

	// ReasonActive: the member is in, or the external user may use the portal.
	ReasonActive = "Active"
	// ReasonAwaitingSignUp: the person was invited and has not signed up yet.
	ReasonAwaitingSignUp = "AwaitingSignUp"
	// ReasonWaitingForApproval: the person signed up and waits for an admin (the same word
	// as the invitation failure reason AwaitingApproval).
	ReasonWaitingForApproval = "AwaitingApproval"
	// ReasonRejected: an admin rejected the person, or an external user's registration.
	ReasonRejected = "Rejected"
	// ReasonUsernameTaken: another Member of the organization holds the member's username.
	ReasonUsernameTaken = "UsernameTaken"
	// ReasonTerminated: the member was removed; the record is kept.
	ReasonTerminated = "Terminated"
)
