package v1alpha1

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
)

var externalUserGR = schema.GroupResource{Group: rosterv1.GroupVersion.Group, Resource: "externalusers"}

// The manager's own writes that this webhook admits whatever they hold are not sent to it
// (matchConditions): the name is operator.DefaultTrustedUser, and a manager started with
// another --trusted-user needs the expression changed with it.
// +kubebuilder:webhook:path=/validate-org-roster-dev-v1alpha1-externaluser,mutating=false,failurePolicy=fail,sideEffects=None,groups=org.roster.dev,resources=externalusers;externalusers/status,verbs=create;update;delete,versions=v1alpha1,name=vexternaluser.roster.dev,admissionReviewVersions=v1,patch=`{"matchConditions":[{"name":"not-the-managers-status-writes","expression":"!(request.userInfo.username == 'system:serviceaccount:roster-system:roster-manager' && (has(request.subResource) && request.subResource == 'status'))"}]}`

// externalUserValidator lets only the organization's admins add, change and delete its
// external users; admits new ones only to an application with an active license; keeps
// their teams to active members, with a lead who stays until replaced; and leaves status
// and the seat label to Roster.
type externalUserValidator struct{ *gate }

// ValidateCreate admits an admin's new external user of a licensed application.
func (v *externalUserValidator) ValidateCreate(ctx context.Context, x *rosterv1.ExternalUser) (admission.Warnings, error) {
	r, err := v.request(ctx)
	if err != nil {
		return nil, err
	}
	if r.Trusted {
		return nil, nil
	}
	if r.Portal {
		a, err := v.authority(ctx, r, x.Namespace, x.Spec.OrganizationRef.Name)
		if err != nil {
			return nil, err
		}
		if err := goingAway(a, externalUserGR, x.Name); err != nil {
			return nil, err
		}
		return nil, v.portalExternalUserCreate(x, a.Organization)
	}
	if _, ok := x.Labels[rosterv1.LabelSeat]; ok {
		return nil, v.seatLabelRefused(x)
	}
	a, err := v.admin(ctx, r, x, "add external users")
	if err != nil {
		return nil, err
	}
	if err := goingAway(a, externalUserGR, x.Name); err != nil {
		return nil, err
	}
	app := findApplication(a.Organization, x.Spec.Application)
	if app == nil {
		return nil, apierrors.NewForbidden(externalUserGR, x.Name, fmt.Errorf(
			"Organization %s has no application %q; add it to the Organization's spec.applications first, or name one of its applications", a.Organization.Name, x.Spec.Application))
	}
	if msg := licenseProblem(app, v.now()); msg != "" {
		return nil, apierrors.NewForbidden(externalUserGR, x.Name, fmt.Errorf(
			"the license of application %s %s; external users can be added once it is active: set seats and expiresAt in the Organization's spec.applications[].license", app.Name, msg))
	}
	if err := v.team(ctx, x, nil, app); err != nil {
		return nil, err
	}
	// Clients a bulk import adds count against the importer's daily quota like imported
	// invitations (F6); the quota goes last, so that a refused create does not use it up.
	if x.Labels[rosterv1.LabelSource] != rosterv1.SourceImport {
		return nil, nil
	}
	return nil, v.takeQuota(ctx, r, a, externalUserGR, x.Name)
}

// ValidateUpdate lets admins change external users; status and the seat are Roster's.
func (v *externalUserValidator) ValidateUpdate(ctx context.Context, old, x *rosterv1.ExternalUser) (admission.Warnings, error) {
	if r, err := v.request(ctx); err != nil || r.Portal {
		if err != nil {
			return nil, err
		}
		return nil, portalExternalUserUpdate(r, old, x)
	}
	r, decided, err := v.update(ctx, externalUserGR, old, x,
		"only Roster writes an external user's status: it follows from the spec (access, approval) that admins set and from the portal")
	if decided {
		return nil, err
	}
	if old.Labels[rosterv1.LabelSeat] != x.Labels[rosterv1.LabelSeat] {
		return nil, v.seatLabelRefused(x)
	}
	if reflect.DeepEqual(old.Spec, x.Spec) {
		return nil, nil
	}
	a, err := v.admin(ctx, r, x, "change external users")
	if err != nil {
		return nil, err
	}
	return nil, v.team(ctx, x, old, findApplication(a.Organization, x.Spec.Application))
}

// ValidateDelete lets admins delete external users, and the cluster's own controllers clean
// up.
func (v *externalUserValidator) ValidateDelete(ctx context.Context, x *rosterv1.ExternalUser) (admission.Warnings, error) {
	return nil, v.adminDeletes(ctx, externalUserGR, x.Namespace, x.Name, x.Spec.OrganizationRef.Name, "delete external users")
}

// admin refuses anyone who is not an admin of the external user's organization.
func (v *externalUserValidator) admin(ctx context.Context, r request, x *rosterv1.ExternalUser, what string) (membership.Authority, error) {
	return v.gate.admin(ctx, r, externalUserGR, x.Namespace, x.Name, x.Spec.OrganizationRef.Name, what)
}

func (v *externalUserValidator) seatLabelRefused(x *rosterv1.ExternalUser) error {
	return apierrors.NewForbidden(externalUserGR, x.Name, fmt.Errorf(
		"the label %s is Roster's: seats go to the oldest waiting external users as the license allows. To give more people seats, raise license.seats in the Organization's spec.applications",
		rosterv1.LabelSeat))
}

// team checks the team: its members must be active members of the organization, an
// application that requires a team gets one, and there is at most one lead, who stays until
// another is made lead. old is nil on create.
func (v *externalUserValidator) team(ctx context.Context, x, old *rosterv1.ExternalUser, app *rosterv1.Application) error {
	if app != nil && app.RequireTeam && len(x.Spec.Team) == 0 {
		return apierrors.NewForbidden(externalUserGR, x.Name, fmt.Errorf(
			"application %s requires every external user to have a team: add at least one active member to spec.team, for example {\"member\": \"<member-name>\", \"lead\": true}", app.Name))
	}
	var leads []string
	for _, t := range x.Spec.Team {
		if t.Lead {
			leads = append(leads, t.Member)
		}
	}
	if len(leads) > 1 {
		return apierrors.NewForbidden(externalUserGR, x.Name, fmt.Errorf(
			"a team has at most one lead, and %s are all marked lead; keep lead: true on one of them", strings.Join(leads, ", ")))
	}
	known := map[string]bool{}
	var oldLead string
	if old != nil {
		for _, t := range old.Spec.Team {
			known[t.Member] = true
			if t.Lead {
				oldLead = t.Member
			}
		}
	}
	if oldLead != "" && len(leads) == 0 {
		return apierrors.NewForbidden(externalUserGR, x.Name, fmt.Errorf(
			"%s leads this external user's team and stays lead until another member is made lead. Make someone else lead in the same change, for example: %s",
			oldLead, leadPatch(x, oldLead)))
	}
	for _, t := range x.Spec.Team {
		if known[t.Member] {
			continue // already on the team; a member who left is reported on the external user
		}
		m := &rosterv1.Member{}
		err := v.reader.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: t.Member}, m)
		if client.IgnoreNotFound(err) != nil {
			return apierrors.NewInternalError(err)
		}
		if err != nil || m.Spec.OrganizationRef.Name != x.Spec.OrganizationRef.Name || !membership.Active(m) {
			return apierrors.NewForbidden(externalUserGR, x.Name, fmt.Errorf(
				"team member %q is not an active Member of Organization %s; a team is made of the organization's active members (kubectl get mem -n %s -l %s=Active)",
				t.Member, x.Spec.OrganizationRef.Name, x.Namespace, rosterv1.LabelPhase))
		}
	}
	return nil
}

// leadPatch is a kubectl command that makes another member lead: the team as it is asked
// for, with its first other member, or a placeholder, as lead.
func leadPatch(x *rosterv1.ExternalUser, oldLead string) string {
	team := []map[string]any{}
	made := false
	for _, t := range x.Spec.Team {
		e := map[string]any{"member": t.Member}
		if !made && t.Member != oldLead {
			e["lead"], made = true, true
		}
		team = append(team, e)
	}
	if !made {
		team = append(team, map[string]any{"member": "<new-lead>", "lead": true})
	}
	b, _ := json.Marshal(map[string]any{"spec": map[string]any{"team": team}})
	return fmt.Sprintf("kubectl patch xu %s -n %s --type=merge -p '%s'", x.Name, x.Namespace, b)
}

func findApplication(org *rosterv1.Organization, name string) *rosterv1.Application {
	if org == nil {
		return nil
	}
	for i := range org.Spec.Applications {
		if org.Spec.Applications[i].Name == name {
			return &org.Spec.Applications[i]
		}
	}
	return nil
}

// licenseProblem says why an application's license is not active at now, or "".
func licenseProblem(app *rosterv1.Application, now time.Time) string {
	switch {
	case app.License.Seats <= 0:
		return "has no seats"
	case app.License.ExpiresAt != nil && !now.Before(app.License.ExpiresAt.Time):
		return "expired at " + app.License.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return ""
}
