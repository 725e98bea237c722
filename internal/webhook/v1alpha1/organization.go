package v1alpha1

import (
	"context"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
)

var (
	organizationGR = schema.GroupResource{Group: rosterv1.GroupVersion.Group, Resource: "organizations"}
	organizationGK = schema.GroupKind{Group: rosterv1.GroupVersion.Group, Kind: "Organization"}
)

// The manager's own writes that this webhook admits whatever they hold are not sent to it
// (matchConditions): the name is operator.DefaultTrustedUser, and a manager started with
// another --trusted-user needs the expression changed with it.
// +kubebuilder:webhook:path=/validate-org-roster-dev-v1alpha1-organization,mutating=false,failurePolicy=fail,sideEffects=None,groups=org.roster.dev,resources=organizations;organizations/status,verbs=create;update;delete,versions=v1alpha1,name=vorganization.roster.dev,admissionReviewVersions=v1,patch=`{"matchConditions":[{"name":"not-the-managers-status-writes","expression":"!(request.userInfo.username == 'system:serviceaccount:roster-system:roster-manager' && (has(request.subResource) && request.subResource == 'status'))"}]}`

// organizationValidator refuses a door number another organization holds, and lets only the
// organization's admins change its spec: its plan and quota, join rules, portal address and
// channels all decide who gets in and where their links go. Only Super Admins change
// spec.admins. An organization with no admins yet can be given its first ones by anyone
// RBAC lets update it.
type organizationValidator struct{ *gate }

func (v *organizationValidator) ValidateCreate(ctx context.Context, org *rosterv1.Organization) (admission.Warnings, error) {
	return nil, v.doorNumberFree(ctx, org)
}

func (v *organizationValidator) ValidateUpdate(ctx context.Context, old, org *rosterv1.Organization) (admission.Warnings, error) {
	r, decided, err := v.update(ctx, organizationGR, old, org,
		"only Roster writes an organization's status")
	if decided {
		return nil, err
	}
	if reflect.DeepEqual(old.Spec, org.Spec) {
		return nil, nil
	}
	if len(old.Spec.Admins) > 0 {
		// The old spec's admins decide: nobody makes themselves an admin in the same write.
		role := rosterv1.Role("")
		if membership.IsOrganizationAdmin(old, r.User, r.UserInfo.Groups) {
			role = rosterv1.RoleSuperAdmin
		} else {
			a, err := v.authority(ctx, r, org.Namespace, org.Name)
			if err != nil {
				return nil, err
			}
			role = a.Role
		}
		if !reflect.DeepEqual(old.Spec.Admins, org.Spec.Admins) && role != rosterv1.RoleSuperAdmin {
			return nil, apierrors.NewForbidden(organizationGR, org.Name, fmt.Errorf(
				"only Super Admins of Organization %s change spec.admins; %s has %s there. Ask one of the admins in spec.admins", org.Name, r.User, orNone(role)))
		}
		if !membership.IsAdmin(role) {
			return nil, apierrors.NewForbidden(organizationGR, org.Name, fmt.Errorf(
				"only admins of Organization %s change its spec (plan, quota, join rules, links, channels); %s has %s there. Ask one of the admins in spec.admins",
				org.Name, r.User, orNone(role)))
		}
	}
	if old.Spec.DoorNumber == org.Spec.DoorNumber {
		return nil, nil
	}
	return nil, v.doorNumberFree(ctx, org)
}

// ValidateDelete lets only Super Admins delete an organization (deleting it takes every
// membership with it, and a recreated one could name new admins), and the cluster's own
// controllers clean up a deleted namespace. An organization without admins is anyone's
// RBAC allows.
func (v *organizationValidator) ValidateDelete(ctx context.Context, org *rosterv1.Organization) (admission.Warnings, error) {
	r, err := v.request(ctx)
	if err != nil {
		return nil, err
	}
	if r.Trusted || r.System || len(org.Spec.Admins) == 0 || membership.IsOrganizationAdmin(org, r.User, r.UserInfo.Groups) {
		return nil, nil
	}
	a, err := v.authority(ctx, r, org.Namespace, org.Name)
	if err != nil {
		return nil, err
	}
	if a.Role == rosterv1.RoleSuperAdmin {
		return nil, nil
	}
	return nil, apierrors.NewForbidden(organizationGR, org.Name, fmt.Errorf(
		"only Super Admins of Organization %s delete it, with every membership in it; %s has %s there. Ask one of the admins in spec.admins",
		org.Name, r.User, orNone(a.Role)))
}

// doorNumberFree refuses a door number whose claim another organization holds. Two
// organizations asking at once both pass here; the Organization controller's claim lets
// only one of them have it.
func (v *organizationValidator) doorNumberFree(ctx context.Context, org *rosterv1.Organization) error {
	door := org.Spec.DoorNumber
	if door == "" {
		return nil
	}
	holder, err := v.claims.Holder(ctx, membership.DoorNumberClaimName(door))
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if holder == nil || (holder.Namespace == org.Namespace && holder.Name == org.Name) {
		return nil
	}
	return apierrors.NewInvalid(organizationGK, org.Name, field.ErrorList{field.Duplicate(field.NewPath("spec", "doorNumber"), door)})
}
