package v1alpha1

// Condition types and reasons of a Collaboration. Ready, Reconciling and Stalled carry the
// same reason and message (see ConditionReady); Notified says separately whether the person
// hears about their modules.
const (

	// ReasonCollaborationActive: the person is in at least one module and was told.
	ReasonCollaborationActive = "Active"
	// ReasonAwaitingDelivery: the person is in modules but no message adding them to one was
	// delivered yet; the collaboration is Invited.
	ReasonAwaitingDelivery = "AwaitingDelivery"
	// ReasonNotifying: messages about added or removed modules are on their way.
	ReasonNotifying = "Notifying"
	// ReasonCollaborationRemoved: the person is in no module any more and the record is kept
	// (cleanupPolicy Retain).
	ReasonCollaborationRemoved = "Removed"
	// ReasonRemoving: the person is in no module any more; once they were told, the
	// Collaboration is deleted (cleanupPolicy Delete).
	ReasonRemoving = "Removing"
	// ReasonNoNotificationChannel: neither the collaborator's email with the Organization's
	// email channel nor their phone with its SMS channel can reach them.
	ReasonNoNotificationChannel = "NoNotificationChannel"
	// ReasonMessageFailed: a message about the person's modules could not be delivered and
	// will not be retried.
	ReasonMessageFailed = "DeliveryFailed"
	// ReasonModulesAwaitingApproval: the person asked to join modules on their links and is
	// in none yet; the collaboration is PendingApproval until an admin approves one. The
	// same word as the Member and Invitation reason ReasonWaitingForApproval.
	ReasonModulesAwaitingApproval = ReasonWaitingForApproval
)

// Reasons of the Events a Collaboration records.
const (
	// EventModuleAdded: the person was added to a module and is being told.
	EventModuleAdded = "ModuleAdded"
	// EventModuleRemoved: the person was taken out of a module and is being told.
	EventModuleRemoved = "ModuleRemoved"
	// EventModuleExpired: the person's time in a module ran out and they are being told.
	EventModuleExpired = "ModuleExpired"
	// EventCollaborationDeleted: the person is in no module any more and was told, so the
	// Collaboration was deleted.
	EventCollaborationDeleted = "Deleted"
)

// Reasons of the Events a Collaboration records when its phase changes.
const (
	// EventCollaborationInvited: the person is in modules and is being told.
	EventCollaborationInvited = "Invited"
	// EventCollaborationActivated: the person was told about a module and is active.
	EventCollaborationActivated = "Activated"
	// EventCollaborationRemoved: the person is in no module any more.
	EventCollaborationRemoved = "Removed"
	// EventCollaborationPendingApproval: the person asked to join modules on their links and
	// is in none yet; an admin decides.
	EventCollaborationPendingApproval = "PendingApproval"
)
