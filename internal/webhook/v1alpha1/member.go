package v1alpha1

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
)

var memberGR = schema.GroupResource{Group: rosterv1.GroupVersion.Group, Resource: "members"}

// The manager's own writes that this webhook admits whatever they hold are not sent to it
// (matchConditions): the name is operator.DefaultTrustedUser, and a manager started with
// another --trusted-user needs the expression changed with it.
// +kubebuilder:webhook:path=/mutate-org-roster-dev-v1alpha1-member,mutating=true,failurePolicy=fail,sideEffects=None,groups=org.roster.dev,resources=members,verbs=create;update,versions=v1alpha1,name=mmember.roster.dev,admissionReviewVersions=v1,patch=`{"matchConditions":[{"name":"not-the-managers-creates","expression":"!(request.userInfo.username == 'system:serviceaccount:roster-system:roster-manager' && request.operation == 'CREATE')"}]}`

// memberDefaulter writes spec.provenance from the request: how the member came and who
// decided on them. Only Roster's own identities, which create the Members of invitations and
// of the public link, say how a member came; for anyone else it is "added directly by the
// requester". On update the recorded values are kept, and a change of spec.approval is
// recorded as the requester's.
type memberDefaulter struct{ *gate }

func (d *memberDefaulter) Default(ctx context.Context, m *rosterv1.Member) error {
	r, err := d.request(ctx)
	if err != nil {
		return err
	}
	if r.Operation == "CREATE" {
		if r.Trusted {
			return nil
		}
		if r.Portal {
			// The portal says only how the person came (public link or door number, which
			// the validator checks); nobody invited or decided on them.
			m.Spec.Provenance = rosterv1.MemberProvenance{JoinMethod: m.Spec.Provenance.JoinMethod}
			return nil
		}
		a, err := d.authority(ctx, r, m.Namespace, m.Spec.OrganizationRef.Name)
		if err != nil {
			return err
		}
		m.Spec.Provenance = rosterv1.MemberProvenance{InvitedBy: r.User, InviterRole: a.Role}
		if m.Spec.Approval != rosterv1.ApprovalNone {
			m.Spec.Provenance.ApprovalBy = r.User
		}
		return nil
	}
	old := &rosterv1.Member{}
	if err := d.decoder.DecodeRaw(r.OldObject, old); err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	approvalBy := old.Spec.Provenance.ApprovalBy
	if m.Spec.Approval != old.Spec.Approval {
		approvalBy = r.User
	}
	m.Spec.Provenance = old.Spec.Provenance
	m.Spec.Provenance.ApprovalBy = approvalBy
	return nil
}

// The manager's own writes that this webhook admits whatever they hold are not sent to it
// (matchConditions): the name is operator.DefaultTrustedUser, and a manager started with
// another --trusted-user needs the expression changed with it.
// +kubebuilder:webhook:path=/validate-org-roster-dev-v1alpha1-member,mutating=false,failurePolicy=fail,sideEffects=None,groups=org.roster.dev,resources=members;members/status,verbs=create;update;delete,versions=v1alpha1,name=vmember.roster.dev,admissionReviewVersions=v1,patch=`{"matchConditions":[{"name":"not-the-managers-creates-and-status-writes","expression":"!(request.userInfo.username == 'system:serviceaccount:roster-system:roster-manager' && ((has(request.subResource) && request.subResource == 'status') || request.operation == 'CREATE'))"}]}`

// memberValidator lets admins add, decide on, edit and remove members, up to their own role;
// only the person change their name, email and phone once signed up (F11); and only Roster
// sign a person up and write status.
type memberValidator struct{ *gate }

// ValidateCreate admits Members that Roster makes (from invitations, the public link and the
// door number) and those an admin adds directly, in a role no higher than the admin's own,
// to an organization that exists and is not being deleted.
func (v *memberValidator) ValidateCreate(ctx context.Context, m *rosterv1.Member) (admission.Warnings, error) {
	r, err := v.request(ctx)
	if err != nil {
		return nil, err
	}
	if r.Trusted {
		return nil, nil
	}
	org := m.Spec.OrganizationRef.Name
	if r.Portal {
		if err := v.portalMemberCreate(m); err != nil {
			return nil, err
		}
		a, err := v.authority(ctx, r, m.Namespace, org)
		if err != nil {
			return nil, err
		}
		if a.Organization == nil {
			return nil, portalRefusal(memberGR, m.Name, "create a member of an organization that does not exist")
		}
		if err := goingAway(a, memberGR, m.Name); err != nil {
			return nil, err
		}
		return nil, v.usernameFree(ctx, m)
	}
	a, err := v.authority(ctx, r, m.Namespace, org)
	if err != nil {
		return nil, err
	}
	if !membership.IsAdmin(a.Role) {
		return nil, apierrors.NewForbidden(memberGR, m.Name, fmt.Errorf(
			"only admins of Organization %s add members directly, and %s has %s there. Members come from invitations, the public link and the door number: "+
				"create an Invitation for the person instead (kubectl roster import, or an Invitation object)", org, r.User, orNone(a.Role)))
	}
	if err := goingAway(a, memberGR, m.Name); err != nil {
		return nil, err
	}
	if err := grantable(r, a, m, roleOrMember(m.Spec.Role)); err != nil {
		return nil, err
	}
	if m.Spec.Username != "" {
		if err := v.usernameFree(ctx, m); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// usernameFree refuses a username another Member of the organization has or claims.
func (v *memberValidator) usernameFree(ctx context.Context, m *rosterv1.Member) error {
	org := m.Spec.OrganizationRef.Name
	list := &rosterv1.MemberList{}
	if err := v.reader.List(ctx, list, client.InNamespace(m.Namespace), client.MatchingFields{rosterv1.IndexUsername: m.Spec.Username}); err != nil {
		return apierrors.NewInternalError(err)
	}
	for _, other := range list.Items {
		if other.Name != m.Name && other.Spec.OrganizationRef.Name == org {
			return apierrors.NewForbidden(memberGR, m.Name, fmt.Errorf(
				"username %q is already Member %s's in Organization %s; each person has one Member", m.Spec.Username, other.Name, org))
		}
	}
	holder, err := v.claims.UsernameHolder(ctx, m.Namespace, org, m.Spec.Username)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if holder != nil && holder.Name != m.Name {
		return apierrors.NewForbidden(memberGR, m.Name, fmt.Errorf(
			"username %q is already Member %s's in Organization %s; each person has one Member", m.Spec.Username, holder.Name, org))
	}
	return nil
}

func (v *memberValidator) ValidateUpdate(ctx context.Context, old, m *rosterv1.Member) (admission.Warnings, error) {
	r, err := v.request(ctx)
	if err != nil {
		return nil, err
	}
	if r.Portal {
		return nil, portalMemberUpdate(r, old, m)
	}
	if r.Trusted && r.SubResource == "" {
		if err := managerMayNot(old, m); err != nil {
			return nil, err
		}
	}
	r, decided, err := v.update(ctx, memberGR, old, m,
		"only Roster writes a member's status: it follows from the spec (approval, access) that admins set")
	if decided {
		return nil, err
	}
	if old.Spec.Username == "" && m.Spec.Username != "" {
		return nil, apierrors.NewForbidden(memberGR, m.Name, fmt.Errorf(
			"spec.username is set when the person signs up through their invitation link; nobody sets it for them. "+
				"To send the link again, raise spec.resendRequests on their Invitation"))
	}
	if err := personalFields(r, old, m); err != nil {
		return nil, err
	}
	what := adminChanges(old, m)
	if len(what) == 0 {
		return nil, nil
	}
	org := m.Spec.OrganizationRef.Name
	a, err := v.authority(ctx, r, m.Namespace, org)
	if err != nil {
		return nil, err
	}
	if !membership.IsAdmin(a.Role) {
		return nil, apierrors.NewForbidden(memberGR, m.Name, fmt.Errorf(
			"only admins of Organization %s change %s (approve, reject, remove, restore, change roles and edit work details); %s has %s there",
			org, strings.Join(what, ", "), r.User, orNone(a.Role)))
	}
	if err := grantable(r, a, old, roleOrMember(old.Spec.Role)); err != nil {
		return nil, err
	}
	if err := grantable(r, a, m, roleOrMember(m.Spec.Role)); err != nil {
		return nil, err
	}
	if old.Spec.Access == rosterv1.AccessTerminated && m.Spec.Access == rosterv1.AccessActive {
		return v.restoreWarnings(ctx, m)
	}
	return nil, nil
}

// ValidateDelete lets admins delete the record of a member in a role no higher than theirs,
// and the cluster's own controllers clean up.
func (v *memberValidator) ValidateDelete(ctx context.Context, m *rosterv1.Member) (admission.Warnings, error) {
	r, err := v.request(ctx)
	if err != nil {
		return nil, err
	}
	if r.Trusted || r.System {
		return nil, nil
	}
	if r.Portal {
		// Its RBAC allows delete only for the API server's ownerReference check (a sign-up
		// releases the Member from its invitation); the portal deletes no one.
		return nil, portalRefusal(memberGR, m.Name, "delete a member")
	}
	org := m.Spec.OrganizationRef.Name
	a, err := v.authority(ctx, r, m.Namespace, org)
	if err != nil {
		return nil, err
	}
	if a.Organization == nil {
		return nil, nil // with no organization there is no one's authority to protect
	}
	if !membership.IsAdmin(a.Role) {
		return nil, apierrors.NewForbidden(memberGR, m.Name, fmt.Errorf(
			"only admins of Organization %s delete members; %s has %s there. To leave the organization, ask an admin to remove you (spec.access: Terminated)",
			org, r.User, orNone(a.Role)))
	}
	return nil, grantable(r, a, m, roleOrMember(m.Spec.Role))
}

// grantable refuses to act on a member in a role above the requester's own.
func grantable(r request, a membership.Authority, m *rosterv1.Member, role rosterv1.Role) error {
	if !membership.Outranks(role, a.Role) {
		return nil
	}
	return apierrors.NewForbidden(memberGR, m.Name, fmt.Errorf(
		"%s has role %s in Organization %s and cannot grant or act on role %s: nobody acts above their own role. Ask a %s of %s",
		r.User, a.Role, m.Spec.OrganizationRef.Name, role, role, m.Spec.OrganizationRef.Name))
}

func roleOrMember(r rosterv1.Role) rosterv1.Role {
	if r == "" {
		return rosterv1.RoleMember
	}
	return r
}

// personalFields lets only the person change their name, email and phone once they signed
// up. Before that they are where the invitation link goes: only admins change them then,
// since whoever could would receive the link.
func personalFields(r request, old, m *rosterv1.Member) error {
	if old.Spec.Username != "" && r.User == old.Spec.Username {
		return nil
	}
	var changed []string
	if m.Spec.DisplayName != old.Spec.DisplayName {
		changed = append(changed, "displayName")
	}
	if m.Spec.Email != old.Spec.Email {
		changed = append(changed, "email")
	}
	if m.Spec.Phone != old.Spec.Phone {
		changed = append(changed, "phone")
	}
	if len(changed) == 0 || old.Spec.Username == "" {
		return nil // before sign-up, adminChanges lists them
	}
	return apierrors.NewForbidden(memberGR, m.Name, fmt.Errorf(
		"%s belong to %s, who signed up as %q; only they can change them (admins edit department, position, workNumber and location)",
		strings.Join(changed, ", "), orName(old), old.Spec.Username))
}

// adminChanges lists the fields an update changes that are an admin's to change.
func adminChanges(old, m *rosterv1.Member) []string {
	var what []string
	add := func(changed bool, field string) {
		if changed {
			what = append(what, "spec."+field)
		}
	}
	add(old.Spec.Approval != m.Spec.Approval, "approval")
	add(old.Spec.Access != m.Spec.Access, "access")
	add(roleOrMember(old.Spec.Role) != roleOrMember(m.Spec.Role), "role")
	add(old.Spec.WorkDetails != m.Spec.WorkDetails, "work details")
	if old.Spec.Username == "" {
		// Until the person signs up, where their invitation link goes is an admin's to say.
		add(old.Spec.DisplayName != m.Spec.DisplayName, "displayName")
		add(old.Spec.Email != m.Spec.Email, "email")
		add(old.Spec.Phone != m.Spec.Phone, "phone")
	}
	return what
}

// restoreWarnings warns when restoring a removed member whose email or phone a pending
// invitation gives to someone of another name: restoring would show that person the old
// member's data (F7).
func (v *memberValidator) restoreWarnings(ctx context.Context, m *rosterv1.Member) (admission.Warnings, error) {
	list := &rosterv1.InvitationList{}
	if err := v.reader.List(ctx, list, client.InNamespace(m.Namespace), client.MatchingFields{rosterv1.IndexOrganization: m.Spec.OrganizationRef.Name}); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	var warnings admission.Warnings
	for _, inv := range list.Items {
		name := inv.Spec.Invitee.Name
		if name == "" || strings.EqualFold(name, m.Spec.DisplayName) || !membership.SamePerson(&inv.Spec, m) {
			continue
		}
		warnings = append(warnings, fmt.Sprintf(
			"Invitation %s invites %q with the same email or phone as %s; restoring gives them %s's data. If %q is a different person, invite them with a different email instead",
			inv.Name, name, orName(m), orName(m), name))
	}
	return warnings, nil
}

func orName(m *rosterv1.Member) string {
	if m.Spec.DisplayName != "" {
		return m.Spec.DisplayName
	}
	return m.Name
}
