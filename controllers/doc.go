// Package controllers holds Roster's reconcilers, one file each: Organization, Invitation,
// Member, ExternalUser and Collaboration.
package controllers

// The permissions every Roster controller shares; each reconciler adds its own markers.
// +kubebuilder:rbac:groups=org.roster.dev,resources=organizations;invitations;members;externalusers;collaborations,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=org.roster.dev,resources=organizations/status;invitations/status;members/status;externalusers/status;collaborations/status,verbs=get;update;patch
// Owners' finalizers: with OwnerReferencesPermissionEnforcement, only who may update an
// owner's finalizers sets blockOwnerDeletion on a reference to it, and the controllers make
// what Organizations (public link Secret), Invitations (Member, link Secret) and ExternalUsers
// (link Secret) own. Members and Collaborations own nothing.
// +kubebuilder:rbac:groups=org.roster.dev,resources=organizations/finalizers;invitations/finalizers;externalusers/finalizers,verbs=update
// +kubebuilder:rbac:groups=org.roster.dev,resources=claims;importledgers,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// The metrics endpoint asks the API server who a scraper is and whether they may read it.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
