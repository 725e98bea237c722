package v1alpha1

// Labels Roster puts on its objects and reads.
const (
	// LabelPartOf marks the Secrets Roster reads and writes; the manager caches only those.
	LabelPartOf = "app.kubernetes.io/part-of"
	// PartOfRoster is LabelPartOf's value.
	PartOfRoster = "roster"
	// LabelOrganization names the Organization a public link Secret belongs to.
	LabelOrganization = "org.roster.dev/organization"
	// LabelInvitation names the Invitation that made a Member or a token Secret.
	LabelInvitation = "org.roster.dev/invitation"
	// LabelDepartment mirrors a Member's department, so `kubectl get mem -l` can select it.
	LabelDepartment = "org.roster.dev/department"
	// LabelShard names the manager shard that reconciles an Organization. Its invitations,
	// members, external users and collaborations carry the Organization's value, copied by
	// Roster; objects without it belong to the default shard.
	LabelShard = "org.roster.dev/shard"
	// DefaultShard is the shard of objects without LabelShard.
	DefaultShard = "default"
	// LabelPhase mirrors a Member's phase.
	LabelPhase = "org.roster.dev/phase"
)

// Cache indexes the manager registers, shared by controllers, webhooks and pages.
const (
	// IndexOrganization indexes every kind with an organizationRef by its name. It is also
	// a selectable field of each such kind, so that one organization's children can be
	// listed from the API server without a cache that holds them (a shard's manager).
	IndexOrganization = "spec.organizationRef.name"
	// IndexUsername indexes Members by spec.username, to find one person's account.
	IndexUsername = "spec.username"
	// IndexEmail indexes Members and ExternalUsers by spec.email in lower case.
	IndexEmail = "spec.email"
	// IndexPhone indexes Members by spec.phone.
	IndexPhone = "spec.phone"
	// FieldCollaboratorEmail and FieldCollaboratorPhone are Collaboration selectable fields:
	// the API server finds one person's Collaborations by them, past any cache. The email is
	// matched exactly; Roster writes the addresses people give in lower case.
	FieldCollaboratorEmail = "spec.collaborator.email"
	FieldCollaboratorPhone = "spec.collaborator.phone"
	// FieldOrganization is the selectable field of a Collaboration's organizationRef, the
	// same path as IndexOrganization.
	FieldOrganization = "spec.organizationRef.name"
	// IndexTeamMember indexes ExternalUsers by the Members on their teams.
	IndexTeamMember = "spec.team.member"
	// LabelSource marks how an Invitation was made, so that an import can be selected later.
	LabelSource = "org.roster.dev/source"
	// SourceImport is LabelSource's value for bulk imports.
	SourceImport = "import"
)

// Labels and annotations of the Secrets that hold an organization's module links.
const (
	// LabelModuleLink names the Organization a module link Secret belongs to. It is not
	// LabelOrganization: a module link must never open the public join page, nor the public
	// link a module's page.
	LabelModuleLink = "org.roster.dev/module-link"
	// LabelModuleKind is the kind of the module a module link Secret opens.
	LabelModuleKind = "org.roster.dev/module-kind"
	// LabelModuleName is the module's name, where it fits in a label value; the annotation
	// AnnotationModuleName always has it.
	LabelModuleName = "org.roster.dev/module-name"
	// AnnotationModuleName is the name of the module a module link Secret opens.
	AnnotationModuleName = "org.roster.dev/module-name"
)
