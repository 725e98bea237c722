package v1alpha1

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// The portal faces the internet, so what it may write is listed here field by field: if it
// is ever taken over, it can sign up only people whose links it holds, record requests to
// join the modules an organization offers links for, and never make anyone an admin,
// approve anyone, let anyone into a module, or touch an invitation or an organization.

// portalRefusal is the answer to a portal write outside what the pages do.
func portalRefusal(gr schema.GroupResource, name, what string) error {
	return apierrors.NewForbidden(gr, name, fmt.Errorf(
		"the portal may not %s: it signs people up, records requests to join modules, and changes people's own name, email and phone, nothing else", what))
}

// portalMemberCreate admits the Member of a request to join by the public link or door
// number: an ordinary member, undecided, whom an admin must approve.
func (v *memberValidator) portalMemberCreate(m *rosterv1.Member) error {
	p := m.Spec.Provenance
	switch {
	case p.JoinMethod != rosterv1.JoinMethodPublicLink && p.JoinMethod != rosterv1.JoinMethodDoorNumber:
		return portalRefusal(memberGR, m.Name, "create a member other than by the public link or door number")
	case roleOrMember(m.Spec.Role) != rosterv1.RoleMember, m.Spec.Approval != rosterv1.ApprovalNone,
		m.Spec.Access != "" && m.Spec.Access != rosterv1.AccessActive:
		return portalRefusal(memberGR, m.Name, "give a joiner a role, an approval or an access")
	case m.Spec.Username == "":
		return portalRefusal(memberGR, m.Name, "create a member without a username")
	}
	return nil
}

// portalMemberUpdate lets the portal sign a person up through their link (username, their
// details, the organization's required fields, and dropping the invitation's ownership),
// change a signed-up person's own name, email and phone, and record a sign-in.
func portalMemberUpdate(r request, old, m *rosterv1.Member) error {
	if r.SubResource == "status" {
		o, n := old.Status, m.Status
		o.LastLoginAt, n.LastLoginAt = nil, nil
		if !reflect.DeepEqual(o, n) {
			return portalRefusal(memberGR, m.Name, "write a member's status beyond lastLoginAt")
		}
		return nil
	}
	if !maps.Equal(old.Labels, m.Labels) || !slices.Equal(old.Finalizers, m.Finalizers) || !maps.Equal(old.Annotations, m.Annotations) {
		return portalRefusal(memberGR, m.Name, "change a member's labels, annotations or finalizers")
	}
	for _, ref := range m.OwnerReferences {
		if !slices.ContainsFunc(old.OwnerReferences, func(o metav1.OwnerReference) bool { return reflect.DeepEqual(o, ref) }) {
			return portalRefusal(memberGR, m.Name, "add an owner")
		}
	}
	signUp := old.Spec.Username == "" && m.Spec.Username != ""
	if old.Spec.Username == "" && !signUp {
		return portalRefusal(memberGR, m.Name, "change a member who has not signed up, other than by signing them up")
	}
	o, n := old.Spec, m.Spec
	o.Username, n.Username = "", ""
	o.DisplayName, n.DisplayName = "", ""
	o.Email, n.Email = "", ""
	o.Phone, n.Phone = "", ""
	if signUp {
		// The sign-up form asks for the organization's required work details (F10).
		o.WorkDetails, n.WorkDetails = rosterv1.WorkDetails{}, rosterv1.WorkDetails{}
	}
	if !reflect.DeepEqual(o, n) {
		return portalRefusal(memberGR, m.Name, "change "+strings.Join(adminChanges(old, m), ", "))
	}
	return nil
}

// managerMayNot keeps the manager from what only the person, through the portal, does:
// signing up and changing their own name, email and phone. A manager never acts for a
// person, so a bug in a controller cannot hand an account to someone else.
func managerMayNot(old, m *rosterv1.Member) error {
	if old.Spec.Username == "" && m.Spec.Username != "" {
		return apierrors.NewForbidden(memberGR, m.Name, errors.New(
			"spec.username is set when the person signs up through their invitation link, on the portal; the manager does not sign people up"))
	}
	if old.Spec.Username != "" && (old.Spec.DisplayName != m.Spec.DisplayName || old.Spec.Email != m.Spec.Email || old.Spec.Phone != m.Spec.Phone) {
		return apierrors.NewForbidden(memberGR, m.Name, fmt.Errorf(
			"name, email and phone belong to %s, who signed up as %q; they change them on the portal's profile page", orName(old), old.Spec.Username))
	}
	return nil
}

// portalExternalUserCreate admits a self-registration: where the application's portal
// allows it and its license is active, an undecided, enabled user with no team and no seat.
func (v *externalUserValidator) portalExternalUserCreate(x *rosterv1.ExternalUser, org *rosterv1.Organization) error {
	app := findApplication(org, x.Spec.Application)
	switch {
	case app == nil || !app.Portal.Enabled || !app.Portal.SelfRegistration:
		return portalRefusal(externalUserGR, x.Name, "register an external user where the application does not allow self-registration")
	case licenseProblem(app, v.now()) != "":
		return portalRefusal(externalUserGR, x.Name, "register an external user while the application's license is not active")
	case x.Labels[rosterv1.LabelSeat] != "":
		return v.seatLabelRefused(x)
	}
	want := rosterv1.ExternalUserSpec{OrganizationRef: x.Spec.OrganizationRef, Application: x.Spec.Application, DisplayName: x.Spec.DisplayName,
		Email: x.Spec.Email, Phone: x.Spec.Phone, Company: x.Spec.Company, Title: x.Spec.Title, Access: x.Spec.Access}
	if x.Spec.Access != "" && x.Spec.Access != rosterv1.ExternalAccessEnabled || !reflect.DeepEqual(want, x.Spec) {
		return portalRefusal(externalUserGR, x.Name, "give a self-registered user an approval, a team, a lock or link and resend settings")
	}
	return nil
}

// portalExternalUserUpdate lets the portal change a user's own name, email and phone, and
// write the status it owns: registration (selfRegistered, emailVerified, registeredAt) and
// sign-in (lastLoginAt).
func portalExternalUserUpdate(r request, old, x *rosterv1.ExternalUser) error {
	if r.SubResource == "status" {
		o, n := old.Status, x.Status
		o.SelfRegistered, n.SelfRegistered = false, false
		o.EmailVerified, n.EmailVerified = false, false
		o.RegisteredAt, n.RegisteredAt = nil, nil
		o.LastLoginAt, n.LastLoginAt = nil, nil
		if !reflect.DeepEqual(o, n) {
			return portalRefusal(externalUserGR, x.Name, "write an external user's status beyond registration and sign-in")
		}
		return nil
	}
	if !maps.Equal(old.Labels, x.Labels) || !slices.Equal(old.Finalizers, x.Finalizers) || !maps.Equal(old.Annotations, x.Annotations) ||
		!reflect.DeepEqual(old.OwnerReferences, x.OwnerReferences) {
		return portalRefusal(externalUserGR, x.Name, "change an external user's labels, annotations, owners or finalizers")
	}
	o, n := old.Spec, x.Spec
	o.DisplayName, n.DisplayName = "", ""
	o.Email, n.Email = "", ""
	o.Phone, n.Phone = "", ""
	if !reflect.DeepEqual(o, n) {
		return portalRefusal(externalUserGR, x.Name, "change an external user's spec beyond name, email and phone")
	}
	return nil
}

// portalCollaborationCreate admits the Collaboration of a person who asked to join modules
// on their links: every module Pending, offered by a link of the Organization's
// spec.moduleLinks with that link's role, and nothing else an admin decides (expiry,
// cleanup, labels, owners).
func (v *collaborationValidator) portalCollaborationCreate(ctx context.Context, r request, c *rosterv1.Collaboration) error {
	a, err := v.authority(ctx, r, c.Namespace, c.Spec.OrganizationRef.Name)
	if err != nil {
		return err
	}
	if a.Organization == nil {
		return portalRefusal(collaborationGR, c.Name, "create a collaboration in an organization that does not exist")
	}
	if err := goingAway(a, collaborationGR, c.Name); err != nil {
		return err
	}
	if len(c.Labels) > 0 || len(c.Annotations) > 0 || len(c.OwnerReferences) > 0 || len(c.Finalizers) > 0 {
		return portalRefusal(collaborationGR, c.Name, "give a collaboration labels, annotations, owners or finalizers")
	}
	if c.Spec.CleanupPolicy != "" && c.Spec.CleanupPolicy != rosterv1.CleanupDelete {
		return portalRefusal(collaborationGR, c.Name, "choose a collaboration's cleanupPolicy")
	}
	if len(c.Spec.Modules) == 0 {
		return portalRefusal(collaborationGR, c.Name, "create a collaboration that asks for no module")
	}
	for _, m := range c.Spec.Modules {
		if err := portalAsk(a.Organization, c.Name, m); err != nil {
			return err
		}
	}
	return nil
}

// portalCollaborationUpdate lets the portal add Pending modules the Organization offers
// links for, and nothing else: it never changes, approves or removes a module already there,
// never touches the person's name, email or phone, the cleanup policy, metadata, or status.
func (v *collaborationValidator) portalCollaborationUpdate(ctx context.Context, r request, old, c *rosterv1.Collaboration) error {
	if r.SubResource != "" {
		return portalRefusal(collaborationGR, c.Name, "write a collaboration's status")
	}
	if !maps.Equal(old.Labels, c.Labels) || !maps.Equal(old.Annotations, c.Annotations) || !slices.Equal(old.Finalizers, c.Finalizers) ||
		!reflect.DeepEqual(old.OwnerReferences, c.OwnerReferences) {
		return portalRefusal(collaborationGR, c.Name, "change a collaboration's labels, annotations, owners or finalizers")
	}
	o, n := old.Spec, c.Spec
	o.Modules, n.Modules = nil, nil
	if !reflect.DeepEqual(o, n) {
		return portalRefusal(collaborationGR, c.Name, "change a collaboration's person, organization or cleanup policy")
	}
	type key struct {
		kind rosterv1.ModuleKind
		name string
	}
	now := map[key]rosterv1.Module{}
	for _, m := range c.Spec.Modules {
		now[key{m.Kind, m.Name}] = m
	}
	for _, m := range old.Spec.Modules {
		if cur, ok := now[key{m.Kind, m.Name}]; !ok || !reflect.DeepEqual(cur, m) {
			return portalRefusal(collaborationGR, c.Name, fmt.Sprintf("change, approve or remove the module %s %s: only admins decide on modules", m.Kind, m.Name))
		}
		delete(now, key{m.Kind, m.Name})
	}
	if len(now) == 0 {
		return nil
	}
	a, err := v.authority(ctx, r, c.Namespace, c.Spec.OrganizationRef.Name)
	if err != nil {
		return err
	}
	if a.Organization == nil {
		return portalRefusal(collaborationGR, c.Name, "add modules in an organization that does not exist")
	}
	if err := goingAway(a, collaborationGR, c.Name); err != nil {
		return err
	}
	for _, m := range now {
		if err := portalAsk(a.Organization, c.Name, m); err != nil {
			return err
		}
	}
	return nil
}

// portalAsk admits one module the portal adds: Pending, without an expiry, and offered by
// one of the organization's module links with that link's role.
func portalAsk(org *rosterv1.Organization, name string, m rosterv1.Module) error {
	if m.Approval != rosterv1.ModulePending {
		return portalRefusal(collaborationGR, name, fmt.Sprintf("let anyone into a module: the module %s %s must be Pending until an admin approves it", m.Kind, m.Name))
	}
	if m.ExpiresAt != nil {
		return portalRefusal(collaborationGR, name, fmt.Sprintf("set when the module %s %s expires", m.Kind, m.Name))
	}
	i := slices.IndexFunc(org.Spec.ModuleLinks, func(l rosterv1.ModuleLink) bool { return l.Kind == m.Kind && l.Name == m.Name })
	if i < 0 {
		return portalRefusal(collaborationGR, name, fmt.Sprintf("ask for the module %s %s: Organization %s offers no link for it in spec.moduleLinks", m.Kind, m.Name, org.Name))
	}
	if org.Spec.ModuleLinks[i].Role != m.Role {
		return portalRefusal(collaborationGR, name, fmt.Sprintf("ask for the module %s %s with role %q: its link gives role %q", m.Kind, m.Name, m.Role, org.Spec.ModuleLinks[i].Role))
	}
	return nil
}
