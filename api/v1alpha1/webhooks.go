package v1alpha1

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Admission webhooks guard what the schema cannot: who is asking, and what other objects
// say. The schema checks shapes; these check the requester's rights and the organization.

// WebhookOptions configure the admission webhooks.
type WebhookOptions struct {
	// TrustedUsers may change a signed-up member's personal fields on the person's behalf:
	// the manager, whose sign-up pages act for a verified person.
	TrustedUsers []string
}

// SetupWebhooks registers Roster's admission webhooks with the manager's webhook server.
func SetupWebhooks(mgr ctrl.Manager, opts WebhookOptions) error {
	c := mgr.GetClient()
	decoder := admission.NewDecoder(mgr.GetScheme())
	if err := ctrl.NewWebhookManagedBy(mgr, &Invitation{}).
		WithDefaulter(&invitationDefaulter{client: c, decoder: decoder}).
		WithValidator(&invitationValidator{client: c}).
		Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &Member{}).
		WithDefaulter(&memberDefaulter{decoder: decoder}).
		WithValidator(&memberValidator{client: c, trusted: opts.TrustedUsers}).
		Complete(); err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &Organization{}).
		WithValidator(&organizationValidator{client: c}).
		Complete()
}

// requester is who sent the admission request.
func requester(ctx context.Context) (admission.Request, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return req, apierrors.NewInternalError(err)
	}
	return req, nil
}

// roleIn is the requester's role in the named organization, "" when it does not exist.
func roleIn(ctx context.Context, c client.Reader, req admission.Request, namespace, orgName string) (Role, *Organization, error) {
	org := &Organization{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: orgName}, org); err != nil {
		if apierrors.IsNotFound(err) {
			return "", nil, nil
		}
		return "", nil, err
	}
	members := &MemberList{}
	if err := c.List(ctx, members, client.InNamespace(namespace), client.MatchingFields{IndexOrganization: orgName}); err != nil {
		return "", nil, err
	}
	return RoleOf(req.UserInfo.Username, req.UserInfo.Groups, org, members.Items), org, nil
}

// +kubebuilder:webhook:path=/mutate-org-roster-dev-v1alpha1-invitation,mutating=true,failurePolicy=fail,sideEffects=None,groups=org.roster.dev,resources=invitations,verbs=create;update,versions=v1alpha1,name=minvitation.roster.dev,admissionReviewVersions=v1

// invitationDefaulter records who invites: spec.invitedBy and the inviter's role come from
// the request, never from the client.
type invitationDefaulter struct {
	client  client.Reader
	decoder admission.Decoder
}

func (d *invitationDefaulter) Default(ctx context.Context, inv *Invitation) error {
	req, err := requester(ctx)
	if err != nil {
		return err
	}
	if req.Operation != "CREATE" {
		old := &Invitation{}
		if err := d.decoder.DecodeRaw(req.OldObject, old); err != nil {
			return apierrors.NewBadRequest(err.Error())
		}
		inv.Spec.InvitedBy = old.Spec.InvitedBy
		setAnnotation(&inv.ObjectMeta.Annotations, AnnotationInviterRole, old.Annotations[AnnotationInviterRole])
		return nil
	}
	inv.Spec.InvitedBy = req.UserInfo.Username
	role, _, err := roleIn(ctx, d.client, req, inv.Namespace, inv.Spec.OrganizationRef.Name)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	setAnnotation(&inv.ObjectMeta.Annotations, AnnotationInviterRole, string(role))
	return nil
}

func setAnnotation(a *map[string]string, key, value string) {
	if value == "" {
		delete(*a, key)
		return
	}
	if *a == nil {
		*a = map[string]string{}
	}
	(*a)[key] = value
}

// +kubebuilder:webhook:path=/validate-org-roster-dev-v1alpha1-invitation,mutating=false,failurePolicy=fail,sideEffects=None,groups=org.roster.dev,resources=invitations,verbs=create,versions=v1alpha1,name=vinvitation.roster.dev,admissionReviewVersions=v1

// invitationValidator refuses invitations that cannot go anywhere (F7), that raise someone
// above the inviter, or that go past the import quota (F6).
type invitationValidator struct{ client client.Reader }

var invitationGK = schema.GroupKind{Group: GroupVersion.Group, Kind: "Invitation"}

func (v *invitationValidator) ValidateCreate(ctx context.Context, inv *Invitation) (admission.Warnings, error) {
	req, err := requester(ctx)
	if err != nil {
		return nil, err
	}
	role, org, err := roleIn(ctx, v.client, req, inv.Namespace, inv.Spec.OrganizationRef.Name)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if org == nil {
		return admission.Warnings{fmt.Sprintf("Organization %q does not exist yet; the invitation waits for it", inv.Spec.OrganizationRef.Name)}, nil
	}
	members := &MemberList{}
	if err := v.client.List(ctx, members, client.InNamespace(inv.Namespace), client.MatchingFields{IndexOrganization: org.Name}); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	for i := range members.Items {
		m := &members.Items[i]
		if m.Labels[LabelInvitation] == inv.Name || !inv.Spec.SamePerson(m) {
			continue
		}
		if reason, msg := m.InvitationConflict(); reason != "" {
			return nil, apierrors.NewForbidden(schema.GroupResource{Group: GroupVersion.Group, Resource: "invitations"}, inv.Name,
				fmt.Errorf("%s: %s", reason, msg))
		}
	}
	if IsAdminRole(inv.Spec.Role) && !IsAdminRole(role) {
		return nil, apierrors.NewInvalid(invitationGK, inv.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "role"),
			fmt.Sprintf("only admins of Organization %s may invite someone as %s", org.Name, inv.Spec.Role))})
	}
	if inv.Labels[LabelSource] == SourceImport {
		if err := v.checkImportQuota(ctx, req, org, inv); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// checkImportQuota refuses an imported invitation past the requester's daily quota (F6).
func (v *invitationValidator) checkImportQuota(ctx context.Context, req admission.Request, org *Organization, inv *Invitation) error {
	quota, limited := ImportQuotaPerDay(org)
	if !limited {
		return nil
	}
	list := &InvitationList{}
	if err := v.client.List(ctx, list, client.InNamespace(inv.Namespace), client.MatchingFields{IndexOrganization: org.Name},
		client.MatchingLabels{LabelSource: SourceImport}); err != nil {
		return apierrors.NewInternalError(err)
	}
	used := ImportsInLastDay(list.Items, req.UserInfo.Username, time.Now())
	if int32(len(used)) < quota {
		return nil
	}
	next := used[0].CreationTimestamp.Add(24 * time.Hour).UTC().Format(time.RFC3339)
	return apierrors.NewForbidden(schema.GroupResource{Group: GroupVersion.Group, Resource: "invitations"}, inv.Name,
		fmt.Errorf("%s: %s imported %d invitations in the last 24 hours, the %s plan's limit; the next import is possible at %s",
			ReasonQuotaExceeded, req.UserInfo.Username, len(used), org.Spec.Plan, next))
}

// ImportQuotaPerDay is how many invitations one user may import a day, and whether there is
// a limit at all: 100 on the Free plan unless set lower, none on Paid unless set.
func ImportQuotaPerDay(org *Organization) (int32, bool) {
	if q := org.Spec.ImportQuota; q != nil && q.PerUserPerDay != nil {
		return *q.PerUserPerDay, true
	}
	if org.Spec.Plan == PlanPaid {
		return 0, false
	}
	return DefaultFreeImportsPerUserPerDay, true
}

// ImportsInLastDay returns the imported invitations by user made in the 24 hours before
// now, oldest first.
func ImportsInLastDay(invs []Invitation, user string, now time.Time) []Invitation {
	var out []Invitation
	for _, i := range invs {
		if i.Spec.InvitedBy == user && i.Labels[LabelSource] == SourceImport && now.Sub(i.CreationTimestamp.Time) < 24*time.Hour {
			out = append(out, i)
		}
	}
	slices.SortFunc(out, func(a, b Invitation) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	return out
}

func (v *invitationValidator) ValidateUpdate(context.Context, *Invitation, *Invitation) (admission.Warnings, error) {
	return nil, nil
}

func (v *invitationValidator) ValidateDelete(context.Context, *Invitation) (admission.Warnings, error) {
	return nil, nil
}

// +kubebuilder:webhook:path=/mutate-org-roster-dev-v1alpha1-member,mutating=true,failurePolicy=fail,sideEffects=None,groups=org.roster.dev,resources=members,verbs=create;update,versions=v1alpha1,name=mmember.roster.dev,admissionReviewVersions=v1

// memberDefaulter records who made an admin's decision on a member.
type memberDefaulter struct{ decoder admission.Decoder }

func (d *memberDefaulter) Default(ctx context.Context, m *Member) error {
	req, err := requester(ctx)
	if err != nil {
		return err
	}
	old := &Member{}
	if req.Operation != "CREATE" {
		if err := d.decoder.DecodeRaw(req.OldObject, old); err != nil {
			return apierrors.NewBadRequest(err.Error())
		}
	}
	value := old.Annotations[AnnotationApprovedBy]
	if m.Spec.Approval != old.Spec.Approval {
		value = req.UserInfo.Username
	}
	setAnnotation(&m.ObjectMeta.Annotations, AnnotationApprovedBy, value)
	return nil
}

// +kubebuilder:webhook:path=/validate-org-roster-dev-v1alpha1-member,mutating=false,failurePolicy=fail,sideEffects=None,groups=org.roster.dev,resources=members,verbs=create;update,versions=v1alpha1,name=vmember.roster.dev,admissionReviewVersions=v1

// memberValidator lets only admins decide on and remove members, and only the person change
// their own name, email and phone once they signed up (F11).
type memberValidator struct {
	client  client.Reader
	trusted []string
}

var memberGR = schema.GroupResource{Group: GroupVersion.Group, Resource: "members"}

func (v *memberValidator) ValidateUpdate(ctx context.Context, old, m *Member) (admission.Warnings, error) {
	req, err := requester(ctx)
	if err != nil {
		return nil, err
	}
	user := req.UserInfo.Username
	trusted := slices.Contains(v.trusted, user)
	if old.Spec.Username != "" && !trusted && user != old.Spec.Username {
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
		if len(changed) > 0 {
			return nil, apierrors.NewForbidden(memberGR, m.Name, fmt.Errorf(
				"%s belong to %s, who signed up as %q; only they can change them (admins edit department, position, workNumber and location)",
				strings.Join(changed, ", "), orName(old), old.Spec.Username))
		}
	}
	decided := m.Spec.Approval != old.Spec.Approval
	removed := m.Spec.Access != old.Spec.Access
	if !decided && !removed {
		return nil, nil
	}
	role, org, err := roleIn(ctx, v.client, req, m.Namespace, m.Spec.OrganizationRef.Name)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if !trusted && !IsAdminRole(role) {
		what := "approval"
		if removed {
			what = "access"
		}
		return nil, apierrors.NewForbidden(memberGR, m.Name, fmt.Errorf(
			"only admins of Organization %s may change spec.%s (approve, reject, remove or restore members); %s is not one",
			m.Spec.OrganizationRef.Name, what, user))
	}
	if removed && old.Spec.Access == AccessTerminated && m.Spec.Access == AccessActive && org != nil {
		return v.restoreWarnings(ctx, m)
	}
	return nil, nil
}

// restoreWarnings warns when restoring a removed member whose email or phone a pending
// invitation gives to someone of another name: restoring would show that person the old
// member's data (F7).
func (v *memberValidator) restoreWarnings(ctx context.Context, m *Member) (admission.Warnings, error) {
	list := &InvitationList{}
	if err := v.client.List(ctx, list, client.InNamespace(m.Namespace), client.MatchingFields{IndexOrganization: m.Spec.OrganizationRef.Name}); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	var warnings admission.Warnings
	for _, inv := range list.Items {
		name := inv.Spec.Invitee.Name
		if name == "" || strings.EqualFold(name, m.Spec.DisplayName) || !inv.Spec.SamePerson(m) {
			continue
		}
		warnings = append(warnings, fmt.Sprintf(
			"Invitation %s invites %q with the same email or phone as %s; restoring gives them %s's data. If %q is a different person, invite them with a different email instead",
			inv.Name, name, orName(m), orName(m), name))
	}
	return warnings, nil
}

func orName(m *Member) string {
	if m.Spec.DisplayName != "" {
		return m.Spec.DisplayName
	}
	return m.Name
}

// ValidateCreate lets only admins add a member who is already decided on or who holds an
// admin role: anyone else's additions go through an Invitation and its approval rules.
func (v *memberValidator) ValidateCreate(ctx context.Context, m *Member) (admission.Warnings, error) {
	if m.Spec.Approval == ApprovalNone && !IsAdminRole(m.Spec.Role) {
		return nil, nil
	}
	req, err := requester(ctx)
	if err != nil {
		return nil, err
	}
	if slices.Contains(v.trusted, req.UserInfo.Username) {
		return nil, nil
	}
	role, _, err := roleIn(ctx, v.client, req, m.Namespace, m.Spec.OrganizationRef.Name)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if !IsAdminRole(role) {
		return nil, apierrors.NewForbidden(memberGR, m.Name, fmt.Errorf(
			"only admins of Organization %s may add a member with spec.approval set or in role %s; %s is not one",
			m.Spec.OrganizationRef.Name, m.Spec.Role, req.UserInfo.Username))
	}
	return nil, nil
}

func (v *memberValidator) ValidateDelete(context.Context, *Member) (admission.Warnings, error) {
	return nil, nil
}

// +kubebuilder:webhook:path=/validate-org-roster-dev-v1alpha1-organization,mutating=false,failurePolicy=fail,sideEffects=None,groups=org.roster.dev,resources=organizations,verbs=create;update,versions=v1alpha1,name=vorganization.roster.dev,admissionReviewVersions=v1

// organizationValidator keeps door numbers unique across the cluster.
type organizationValidator struct{ client client.Reader }

func (v *organizationValidator) check(ctx context.Context, org *Organization) (admission.Warnings, error) {
	if org.Spec.DoorNumber == "" {
		return nil, nil
	}
	list := &OrganizationList{}
	if err := v.client.List(ctx, list); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	for _, o := range list.Items {
		if o.Namespace == org.Namespace && o.Name == org.Name {
			continue
		}
		if o.Spec.DoorNumber == org.Spec.DoorNumber || o.Status.DoorNumber == org.Spec.DoorNumber {
			return nil, apierrors.NewInvalid(schema.GroupKind{Group: GroupVersion.Group, Kind: "Organization"}, org.Name, field.ErrorList{
				field.Duplicate(field.NewPath("spec", "doorNumber"), org.Spec.DoorNumber)})
		}
	}
	return nil, nil
}

func (v *organizationValidator) ValidateCreate(ctx context.Context, org *Organization) (admission.Warnings, error) {
	return v.check(ctx, org)
}

func (v *organizationValidator) ValidateUpdate(ctx context.Context, old, org *Organization) (admission.Warnings, error) {
	if old.Spec.DoorNumber == org.Spec.DoorNumber {
		return nil, nil
	}
	return v.check(ctx, org)
}

func (v *organizationValidator) ValidateDelete(context.Context, *Organization) (admission.Warnings, error) {
	return nil, nil
}
