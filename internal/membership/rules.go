// Package membership holds the rules of who joins an organization and how: who needs an
// admin's approval (F9, F10), what phase a member is in, and the acceptance of an invitation
// link that the sign-up page calls.
package membership

import (
	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// RequiresApproval says whether someone who joined by method, invited by someone with
// inviterRole, waits for an admin's approval (F9): always through the public link or door
// number; through an invitation unless an Account Admin or Super Admin sent it, or the
// organization turned the "inviting verification" switch off (F10). A member an admin
// created directly (no join method) needs none: the admin is the approval.
func RequiresApproval(method rosterv1.JoinMethod, inviterRole rosterv1.Role, rules rosterv1.JoinRules) bool {
	switch method {
	case rosterv1.JoinMethodPublicLink, rosterv1.JoinMethodDoorNumber:
		return true
	case "":
		return false
	}
	if InvitesWithoutApproval(inviterRole) {
		return false
	}
	return rules.ApprovalForNonAdminInvites == nil || *rules.ApprovalForNonAdminInvites
}

// Phase is the phase a member's facts put them in. Removal wins over everything; someone who
// has not signed up is Inactivated; an admin's decision wins over the approval rule.
func Phase(m *rosterv1.Member) rosterv1.MemberPhase {
	switch {
	case m.Spec.Access == rosterv1.AccessTerminated:
		return rosterv1.MemberTerminated
	case m.Spec.Username == "":
		return rosterv1.MemberInactivated
	case m.Spec.Approval == rosterv1.ApprovalRejected:
		return rosterv1.MemberRejected
	case m.Spec.Approval == rosterv1.ApprovalApproved:
		return rosterv1.MemberActive
	case m.Status.RequiresApproval:
		return rosterv1.MemberPending
	default:
		return rosterv1.MemberActive
	}
}
