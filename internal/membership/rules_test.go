package membership

import (
	"testing"

	"k8s.io/utils/ptr"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

func TestRequiresApproval(t *testing.T) {
	on := rosterv1.JoinRules{ApprovalForNonAdminInvites: ptr.To(true)}
	off := rosterv1.JoinRules{ApprovalForNonAdminInvites: ptr.To(false)}
	cases := []struct {
		name   string
		method rosterv1.JoinMethod
		role   rosterv1.Role
		rules  rosterv1.JoinRules
		want   bool
	}{
		{"public link always", rosterv1.JoinMethodPublicLink, rosterv1.RoleSuperAdmin, off, true},
		{"door number always", rosterv1.JoinMethodDoorNumber, rosterv1.RoleAccountAdmin, off, true},
		{"super admin invite", rosterv1.JoinMethodInvitation, rosterv1.RoleSuperAdmin, on, false},
		{"account admin invite", rosterv1.JoinMethodInvitation, rosterv1.RoleAccountAdmin, on, false},
		{"plain admin invite needs approval", rosterv1.JoinMethodInvitation, rosterv1.RoleAdmin, on, true},
		{"member invite needs approval", rosterv1.JoinMethodInvitation, rosterv1.RoleMember, on, true},
		{"unknown inviter needs approval", rosterv1.JoinMethodInvitation, "", on, true},
		{"switch off", rosterv1.JoinMethodInvitation, rosterv1.RoleMember, off, false},
		{"switch unset means on", rosterv1.JoinMethodContact, rosterv1.RoleMember, rosterv1.JoinRules{}, true},
		{"added by an admin", "", "", on, false},
	}
	for _, c := range cases {
		if got := RequiresApproval(c.method, c.role, c.rules); got != c.want {
			t.Errorf("%s: RequiresApproval = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPhase(t *testing.T) {
	m := func(username string, approval rosterv1.Approval, access rosterv1.Access, requires bool) *rosterv1.Member {
		return &rosterv1.Member{
			Spec:   rosterv1.MemberSpec{Username: username, Approval: approval, Access: access},
			Status: rosterv1.MemberStatus{RequiresApproval: requires},
		}
	}
	cases := []struct {
		name string
		m    *rosterv1.Member
		want rosterv1.MemberPhase
	}{
		{"not signed up", m("", "", rosterv1.AccessActive, true), rosterv1.MemberInactivated},
		{"needs approval", m("bob", "", rosterv1.AccessActive, true), rosterv1.MemberPending},
		{"needs none", m("bob", "", rosterv1.AccessActive, false), rosterv1.MemberActive},
		{"approved", m("bob", rosterv1.ApprovalApproved, rosterv1.AccessActive, true), rosterv1.MemberActive},
		{"rejected", m("bob", rosterv1.ApprovalRejected, rosterv1.AccessActive, true), rosterv1.MemberRejected},
		{"terminated wins", m("bob", rosterv1.ApprovalApproved, rosterv1.AccessTerminated, false), rosterv1.MemberTerminated},
		{"terminated before sign-up", m("", "", rosterv1.AccessTerminated, false), rosterv1.MemberTerminated},
	}
	for _, c := range cases {
		if got := Phase(c.m); got != c.want {
			t.Errorf("%s: Phase = %s, want %s", c.name, got, c.want)
		}
	}
}
