package membership

import (
	"context"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// rank orders the roles: Member < Admin < AccountAdmin < SuperAdmin. No role ranks 0.
var rank = map[rosterv1.Role]int{
	rosterv1.RoleMember:       1,
	rosterv1.RoleAdmin:        2,
	rosterv1.RoleAccountAdmin: 3,
	rosterv1.RoleSuperAdmin:   4,
}

// Outranks reports whether role a is above role b. Nobody grants, or acts on someone in, a
// role above their own.
func Outranks(a, b rosterv1.Role) bool { return rank[a] > rank[b] }

// AtLeast reports whether role has at least the rank of min.
func AtLeast(role, min rosterv1.Role) bool { return rank[role] >= rank[min] && rank[role] > 0 }

// IsAdmin reports whether a role may administer members: approve, reject, edit, remove and
// restore them, and change roles up to its own.
func IsAdmin(r rosterv1.Role) bool { return AtLeast(r, rosterv1.RoleAdmin) }

// InvitesWithoutApproval reports whether people this role invites by email or phone join
// without an admin's approval (F9).
func InvitesWithoutApproval(r rosterv1.Role) bool { return AtLeast(r, rosterv1.RoleAccountAdmin) }

// Authority is a Kubernetes identity's standing in one organization.
type Authority struct {
	// Organization is the organization, nil when it does not exist.
	Organization *rosterv1.Organization
	// Role is the identity's role there; "" when it has none.
	Role rosterv1.Role
}

// RoleIn finds what a Kubernetes identity is in an organization: Super Admin when the
// Organization names the user or one of their groups in spec.admins, else the role of their
// active Member. It reads the Organization and the Members with that username through the
// username index, never the whole organization, so its cost does not grow with the
// organization's size.
func RoleIn(ctx context.Context, r client.Reader, namespace, org, username string, groups []string) (Authority, error) {
	o := &rosterv1.Organization{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: org}, o); err != nil {
		if apierrors.IsNotFound(err) {
			return Authority{}, nil
		}
		return Authority{}, err
	}
	if IsOrganizationAdmin(o, username, groups) {
		return Authority{Organization: o, Role: rosterv1.RoleSuperAdmin}, nil
	}
	if username == "" {
		return Authority{Organization: o}, nil
	}
	list := &rosterv1.MemberList{}
	if err := r.List(ctx, list, client.InNamespace(namespace), client.MatchingFields{rosterv1.IndexUsername: username}); err != nil {
		return Authority{}, err
	}
	var role rosterv1.Role
	for i := range list.Items {
		m := &list.Items[i]
		if m.Spec.OrganizationRef.Name != org || m.Spec.Username != username || !Active(m) {
			continue
		}
		// Only the claim's holder counts; should two ever both say so, the lower role is the
		// safe one.
		if role == "" || Outranks(role, roleOf(m)) {
			role = roleOf(m)
		}
	}
	return Authority{Organization: o, Role: role}, nil
}

// IsOrganizationAdmin reports whether the Organization's spec.admins names the user or one
// of their groups.
func IsOrganizationAdmin(o *rosterv1.Organization, username string, groups []string) bool {
	for _, s := range o.Spec.Admins {
		if (s.Kind == "User" && s.Name == username) || (s.Kind == "Group" && slices.Contains(groups, s.Name)) {
			return true
		}
	}
	return false
}

// Active reports whether a member holds their role now: the Member controller says Active
// and that the member holds its username's Claim (status is written only by Roster, the
// admission webhook sees to that), and the spec does not already say rejected or removed, so
// a decision counts from the moment it is written.
func Active(m *rosterv1.Member) bool {
	return m.Status.Phase == rosterv1.MemberActive && m.Spec.Username != "" && m.Status.UsernameClaimed &&
		m.Spec.Access != rosterv1.AccessTerminated && m.Spec.Approval != rosterv1.ApprovalRejected
}

// roleOf is a member's role; an unset role is Member.
func roleOf(m *rosterv1.Member) rosterv1.Role {
	if m.Spec.Role == "" {
		return rosterv1.RoleMember
	}
	return m.Spec.Role
}

// RoleOfMember is a member's role, Member when unset.
func RoleOfMember(m *rosterv1.Member) rosterv1.Role { return roleOf(m) }
