package v1alpha1

import (
	"context"
	"reflect"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

var collaborationGR = schema.GroupResource{Group: rosterv1.GroupVersion.Group, Resource: "collaborations"}

// The manager's own writes that this webhook admits whatever they hold are not sent to it
// (matchConditions): the name is operator.DefaultTrustedUser, and a manager started with
// another --trusted-user needs the expression changed with it.
// +kubebuilder:webhook:path=/validate-org-roster-dev-v1alpha1-collaboration,mutating=false,failurePolicy=fail,sideEffects=None,groups=org.roster.dev,resources=collaborations;collaborations/status,verbs=create;update;delete,versions=v1alpha1,name=vcollaboration.roster.dev,admissionReviewVersions=v1,patch=`{"matchConditions":[{"name":"not-the-managers-status-writes","expression":"!(request.userInfo.username == 'system:serviceaccount:roster-system:roster-manager' && (has(request.subResource) && request.subResource == 'status'))"}]}`

// collaborationValidator lets only the organization's admins bring outside people into its
// modules, change which modules they are in, and remove them, since a collaboration gives a
// stranger access and sends them mail in the organization's name; status is Roster's. The
// portal only records requests to join: Pending modules, which give nobody anything until
// an admin approves them (see portalCollaborationCreate and portalCollaborationUpdate).
type collaborationValidator struct{ *gate }

// ValidateCreate admits an admin's collaboration in an organization that exists and is not
// being deleted, and the portal's of a person who asked to join modules on their links.
func (v *collaborationValidator) ValidateCreate(ctx context.Context, c *rosterv1.Collaboration) (admission.Warnings, error) {
	r, err := v.request(ctx)
	if err != nil || r.Trusted {
		return nil, err
	}
	if r.Portal {
		return nil, v.portalCollaborationCreate(ctx, r, c)
	}
	a, err := v.admin(ctx, r, collaborationGR, c.Namespace, c.Name, c.Spec.OrganizationRef.Name, "bring collaborators into modules")
	if err != nil {
		return nil, err
	}
	return nil, goingAway(a, collaborationGR, c.Name)
}

// ValidateUpdate lets admins change a collaboration's modules and person; status follows
// from the spec and only Roster writes it.
func (v *collaborationValidator) ValidateUpdate(ctx context.Context, old, c *rosterv1.Collaboration) (admission.Warnings, error) {
	if r, err := v.request(ctx); err != nil || r.Portal {
		if err != nil {
			return nil, err
		}
		return nil, v.portalCollaborationUpdate(ctx, r, old, c)
	}
	r, decided, err := v.update(ctx, collaborationGR, old, c,
		"only Roster writes a collaboration's status: it follows from spec.modules, which admins set")
	if decided || reflect.DeepEqual(old.Spec, c.Spec) {
		return nil, err
	}
	_, err = v.admin(ctx, r, collaborationGR, c.Namespace, c.Name, c.Spec.OrganizationRef.Name, "change collaborations")
	return nil, err
}

// ValidateDelete lets admins remove a collaborator, and Roster and the cluster's own
// controllers clean up.
func (v *collaborationValidator) ValidateDelete(ctx context.Context, c *rosterv1.Collaboration) (admission.Warnings, error) {
	return nil, v.adminDeletes(ctx, collaborationGR, c.Namespace, c.Name, c.Spec.OrganizationRef.Name, "remove collaborators")
}
