package v1alpha1

import (
	"context"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
)

var (
	invitationGR = schema.GroupResource{Group: rosterv1.GroupVersion.Group, Resource: "invitations"}
	invitationGK = schema.GroupKind{Group: rosterv1.GroupVersion.Group, Kind: "Invitation"}
)

// +kubebuilder:webhook:path=/mutate-org-roster-dev-v1alpha1-invitation,mutating=true,failurePolicy=fail,sideEffects=None,groups=org.roster.dev,resources=invitations,verbs=create;update,versions=v1alpha1,name=minvitation.roster.dev,admissionReviewVersions=v1

// invitationDefaulter records who invites: spec.invitedBy and spec.inviterRole come from the
// request, never from the client, and never change afterwards.
type invitationDefaulter struct{ *gate }

func (d *invitationDefaulter) Default(ctx context.Context, inv *rosterv1.Invitation) error {
	r, err := d.request(ctx)
	if err != nil {
		return err
	}
	if r.Operation != "CREATE" {
		old := &rosterv1.Invitation{}
		if err := d.decoder.DecodeRaw(r.OldObject, old); err != nil {
			return apierrors.NewBadRequest(err.Error())
		}
		inv.Spec.InvitedBy, inv.Spec.InviterRole = old.Spec.InvitedBy, old.Spec.InviterRole
		return nil
	}
	a, err := d.authority(ctx, r, inv.Namespace, inv.Spec.OrganizationRef.Name)
	if err != nil {
		return err
	}
	inv.Spec.InvitedBy, inv.Spec.InviterRole = r.User, a.Role
	// Born in its Organization's shard, whatever the client wrote, so that the shard's
	// manager takes it at once, without a pass and a write of another shard's to relabel it.
	if a.Organization != nil {
		labels := inv.GetLabels()
		delete(labels, rosterv1.LabelShard)
		if shard := a.Organization.Labels[rosterv1.LabelShard]; shard != "" {
			if labels == nil {
				labels = map[string]string{}
			}
			labels[rosterv1.LabelShard] = shard
		}
		inv.SetLabels(labels)
	}
	// Born with the finalizer that lets the controller take the invited Member away with a
	// cancelled invitation: one write fewer for each invitation than adding it in a pass.
	controllerutil.AddFinalizer(inv, rosterv1.Finalizer)
	return nil
}

// The manager's own writes that this webhook admits whatever they hold are not sent to it
// (matchConditions): the name is operator.DefaultTrustedUser, and a manager started with
// another --trusted-user needs the expression changed with it.
// +kubebuilder:webhook:path=/validate-org-roster-dev-v1alpha1-invitation,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=org.roster.dev,resources=invitations;invitations/status,verbs=create;update;delete,versions=v1alpha1,name=vinvitation.roster.dev,admissionReviewVersions=v1,patch=`{"matchConditions":[{"name":"not-the-managers-status-writes","expression":"!(request.userInfo.username == 'system:serviceaccount:roster-system:roster-manager' && (has(request.subResource) && request.subResource == 'status'))"}]}`

// invitationValidator lets members invite, up to their own role, people who are not in the
// organization yet, within the daily quota (F6, F7); and lets only admins and the inviter
// change or cancel an invitation. Its one side effect is counting an admitted invitation
// against the quota, which it skips on dry runs.
type invitationValidator struct{ *gate }

func (v *invitationValidator) ValidateCreate(ctx context.Context, inv *rosterv1.Invitation) (admission.Warnings, error) {
	r, err := v.request(ctx)
	if err != nil {
		return nil, err
	}
	org := inv.Spec.OrganizationRef.Name
	a, err := v.authority(ctx, r, inv.Namespace, org)
	if err != nil {
		return nil, err
	}
	if a.Organization == nil {
		// An unchecked invitation must never act, so it is not admitted; GitOps tools retry
		// until the Organization exists, and it is then checked like any other.
		return nil, apierrors.NewInvalid(invitationGK, inv.Name, field.ErrorList{field.NotFound(
			field.NewPath("spec", "organizationRef", "name"),
			fmt.Sprintf("%s: create Organization %s in namespace %s first (GitOps tools retry until it exists)", org, org, inv.Namespace))})
	}
	if err := goingAway(a, invitationGR, inv.Name); err != nil {
		return nil, err
	}
	if a.Role == "" {
		return nil, apierrors.NewForbidden(invitationGR, inv.Name, fmt.Errorf(
			"%s is not an active member of Organization %s; only its members invite. Ask an admin of %s to invite the person", r.User, org, org))
	}
	role := inv.Spec.Role
	if role == "" {
		role = rosterv1.RoleMember
	}
	if membership.Outranks(role, a.Role) {
		return nil, apierrors.NewInvalid(invitationGK, inv.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "role"),
			fmt.Sprintf("%s has %s in Organization %s and cannot invite someone as %s: nobody grants a role above their own. "+
				"Invite them as %s, or ask a %s of %s to invite them", r.User, orNone(a.Role), org, role, highestGrantable(a.Role), role, org))})
	}
	reason, msg, err := membership.ConflictFor(ctx, v.reader, inv.Namespace, inv.UID, &inv.Spec)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if reason != "" {
		return nil, apierrors.NewForbidden(invitationGR, inv.Name, fmt.Errorf("%s: %s", reason, msg))
	}
	return nil, v.takeQuota(ctx, r, a, invitationGR, inv.Name)
}

// highestGrantable is the highest role someone with role may give.
func highestGrantable(role rosterv1.Role) rosterv1.Role {
	if role == "" {
		return rosterv1.RoleMember
	}
	return role
}

func (v *invitationValidator) ValidateUpdate(ctx context.Context, old, inv *rosterv1.Invitation) (admission.Warnings, error) {
	r, decided, err := v.update(ctx, invitationGR, old, inv,
		"only Roster writes an invitation's status; change its spec instead (spec.resendRequests sends it again)")
	if decided {
		return nil, err
	}
	if reflect.DeepEqual(old.Spec, inv.Spec) {
		return nil, nil // labels, annotations, finalizers
	}
	return nil, v.adminOrInviter(ctx, r, old, "change")
}

func (v *invitationValidator) ValidateDelete(ctx context.Context, inv *rosterv1.Invitation) (admission.Warnings, error) {
	r, err := v.request(ctx)
	if err != nil {
		return nil, err
	}
	if r.Trusted || r.System {
		return nil, nil
	}
	if inv.Spec.InvitedBy == r.User && inv.Status.Phase != rosterv1.InvitationAccepted {
		return nil, nil // an inviter cancels their own pending invitation
	}
	return nil, v.adminOrInviter(ctx, r, inv, "delete")
}

// adminOrInviter lets the organization's admins, and the inviter, change an invitation.
func (v *invitationValidator) adminOrInviter(ctx context.Context, r request, inv *rosterv1.Invitation, what string) error {
	org := inv.Spec.OrganizationRef.Name
	if what != "delete" && inv.Spec.InvitedBy == r.User {
		return nil
	}
	a, err := v.authority(ctx, r, inv.Namespace, org)
	if err != nil {
		return err
	}
	if a.Organization == nil || membership.IsAdmin(a.Role) {
		return nil // with no organization there is no one's authority to protect
	}
	if what == "delete" && inv.Spec.InvitedBy == r.User {
		return apierrors.NewForbidden(invitationGR, inv.Name, fmt.Errorf(
			"only admins of Organization %s delete an invitation once it was accepted, and %s has %s there; inviters cancel their own only until then. "+
				"To remove the member it made, ask an admin (spec.access: Terminated on the Member)", org, r.User, orNone(a.Role)))
	}
	if what == "delete" {
		return apierrors.NewForbidden(invitationGR, inv.Name, fmt.Errorf(
			"only admins of Organization %s delete invitations, and inviters cancel their own until accepted; %s has %s and did not send this one (%s did)",
			org, r.User, orNone(a.Role), inv.Spec.InvitedBy))
	}
	return apierrors.NewForbidden(invitationGR, inv.Name, fmt.Errorf(
		"only admins of Organization %s and the inviter (%s) change an invitation; %s has %s. Ask one of them",
		org, inv.Spec.InvitedBy, r.User, orNone(a.Role)))
}
