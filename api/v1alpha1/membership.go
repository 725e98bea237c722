package v1alpha1

import (
	"fmt"
	"slices"
	"strings"
)

// Annotations that record facts about a Member or Invitation that only the admission
// webhook or the creating controller can know. Whatever a client sends for them is replaced.
const (
	// AnnotationInviterRole is the inviter's role when the invitation was created (F9).
	AnnotationInviterRole = "org.roster.dev/inviter-role"
	// AnnotationJoinMethod is how a Member came to the organization.
	AnnotationJoinMethod = "org.roster.dev/join-method"
	// AnnotationInvitedBy is the user who invited a Member.
	AnnotationInvitedBy = "org.roster.dev/invited-by"
	// AnnotationApprovedBy is the user who last changed a Member's spec.approval.
	AnnotationApprovedBy = "org.roster.dev/approved-by"
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
	// LabelPhase mirrors a Member's phase.
	LabelPhase = "org.roster.dev/phase"
)

// Cache indexes the manager registers, shared by controllers, webhooks and pages.
const (
	// IndexOrganization indexes every kind with an organizationRef by its name.
	IndexOrganization = "spec.organizationRef.name"
	// IndexUsername indexes Members by spec.username, to find an account across namespaces.
	IndexUsername = "spec.username"
	// LabelSource marks how an Invitation was made; "import" counts against the import quota.
	LabelSource = "org.roster.dev/source"
	// SourceImport is LabelSource's value for bulk imports (F6).
	SourceImport = "import"
)

// IsAdminRole reports whether a Member role may administer members.
func IsAdminRole(r Role) bool {
	return r == RoleAdmin || r == RoleAccountAdmin || r == RoleSuperAdmin
}

// InvitesWithoutApproval reports whether people this role invites by email or phone join
// without an admin's approval (F9).
func InvitesWithoutApproval(r Role) bool {
	return r == RoleAccountAdmin || r == RoleSuperAdmin
}

// RoleOf is the role a Kubernetes identity has in org: Super Admin when the Organization
// names the user or one of its groups as admin, else the role of the active Member whose
// username is the user's, else none.
func RoleOf(username string, groups []string, org *Organization, members []Member) Role {
	for _, s := range org.Spec.Admins {
		if (s.Kind == "User" && s.Name == username) || (s.Kind == "Group" && slices.Contains(groups, s.Name)) {
			return RoleSuperAdmin
		}
	}
	for i := range members {
		m := &members[i]
		if m.Spec.OrganizationRef.Name == org.Name && m.Spec.Username != "" && m.Spec.Username == username &&
			m.Status.Phase == MemberActive {
			return m.Spec.Role
		}
	}
	return ""
}

// SamePerson reports whether m is the person the invitation names: the same username, email
// (case-insensitive) or phone.
func (s *InvitationSpec) SamePerson(m *Member) bool {
	if m.Spec.OrganizationRef.Name != s.OrganizationRef.Name {
		return false
	}
	i := s.Invitee
	return (i.Username != "" && i.Username == m.Spec.Username) ||
		(i.Email != "" && strings.EqualFold(i.Email, m.Spec.Email)) ||
		(i.Phone != "" && i.Phone == m.Spec.Phone)
}

// InvitationConflict says why an invitation for the person m already is cannot go on (F7),
// with a message that tells the admin what to do instead. It returns "" when nothing stands
// in the way.
func (m *Member) InvitationConflict() (InvitationFailureReason, string) {
	who := m.Spec.DisplayName
	if who == "" {
		who = firstNonEmpty(m.Spec.Email, m.Spec.Phone, m.Spec.Username, m.Name)
	}
	patch := func(field, value string) string {
		return fmt.Sprintf(`kubectl patch mem %s -n %s --type=merge -p '{"spec":{"%s":"%s"}}'`, m.Name, m.Namespace, field, value)
	}
	switch m.Status.Phase {
	case MemberActive:
		return ReasonAlreadyMember, fmt.Sprintf("%s is already a member (Member %s); there is nothing to invite", who, m.Name)
	case MemberPending:
		return ReasonAwaitingApproval, fmt.Sprintf("%s has signed up and is awaiting approval (Member %s); approve them instead: %s",
			who, m.Name, patch("approval", string(ApprovalApproved)))
	case MemberRejected:
		return ReasonPreviouslyRejected, fmt.Sprintf("%s was rejected before (Member %s); re-approve them instead: %s",
			who, m.Name, patch("approval", string(ApprovalApproved)))
	case MemberTerminated:
		return ReasonPreviouslyRemoved, fmt.Sprintf("%s was removed before (Member %s); restore them instead: %s. "+
			"If this is a different person who now has the same email or phone, restoring would show them %s's data: invite them with a different email",
			who, m.Name, patch("access", string(AccessActive)), who)
	case MemberInactivated:
		inv := m.Labels[LabelInvitation]
		if inv == "" {
			inv = "another invitation"
		} else {
			inv = "Invitation " + inv
		}
		return ReasonAlreadyInvited, fmt.Sprintf("%s is already invited by %s (Member %s); raise that invitation's spec.resendRequests to send it again",
			who, inv, m.Name)
	}
	return "", ""
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
