// Package v1alpha1 holds Roster's admission webhooks. They are the gate of the threat model:
// anyone with RBAC to create or update Roster objects in a namespace is untrusted, because a
// person needs `update members` to change their own name, email and phone and RBAC cannot
// limit that to their own object. So the webhooks decide who may do what: they record who
// asked (never trusting what a client writes about itself), and they refuse what the
// requester's role in the organization does not allow. The rules themselves (role order,
// quota, claims) live in internal/membership.
package v1alpha1

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
)

// Options configure the admission webhooks.
type Options struct {
	// TrustedUsers are the manager's identities: its controllers create the Members of
	// invitations, write status and record how a Member came. They do not sign anyone up
	// nor change a signed-up person's name, email or phone: that is the portal's.
	TrustedUsers []string
	// PortalUsers are the portal's identities, which act for a person who proved who they
	// are (a link, a code, a password). The portal faces the internet, so it may do only
	// what the pages need: sign a person up (spec.username), create the Members of the
	// public link and door number, create self-registered external users, record a
	// person's request to join a module on its link (a Collaboration's Pending modules,
	// which let nobody in), change a person's own name, email and phone, and write the few
	// status fields it owns (sign-up and sign-in times, a verified email).
	PortalUsers []string
	// Now is the webhooks' clock, for the invitation quota; time.Now when nil.
	Now func() time.Time
}

// Setup registers Roster's admission webhooks with the manager's webhook server.
func Setup(mgr ctrl.Manager, opts Options) error {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &gate{
		reader:  mgr.GetClient(),
		trusted: opts.TrustedUsers,
		portal:  opts.PortalUsers,
		claims:  membership.Claims{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()},
		ledger:  membership.Ledger{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()},
		now:     opts.Now,
		decoder: admission.NewDecoder(mgr.GetScheme()),
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &rosterv1.Invitation{}).
		WithDefaulter(&invitationDefaulter{g}).
		WithValidator(&invitationValidator{g}).
		Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &rosterv1.Member{}).
		WithDefaulter(&memberDefaulter{g}).
		WithValidator(&memberValidator{g}).
		Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &rosterv1.ExternalUser{}).
		WithValidator(&externalUserValidator{g}).
		Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &rosterv1.Collaboration{}).
		WithValidator(&collaborationValidator{g}).
		Complete(); err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &rosterv1.Organization{}).
		WithValidator(&organizationValidator{g}).
		Complete()
}

// gate is what every webhook needs: who is asking and what they are in the organization.
type gate struct {
	// reader is the manager's cache, with the field indexes.
	reader  client.Reader
	trusted []string
	portal  []string
	claims  membership.Claims
	ledger  membership.Ledger
	now     func() time.Time
	decoder admission.Decoder
}

// request is one admission request and the standing of who sent it.
type request struct {
	admission.Request
	// User is the requester's Kubernetes username.
	User string
	// Trusted is true for the manager's identities.
	Trusted bool
	// Portal is true for the portal's identities. It is never Trusted: each kind that lets
	// the portal write says exactly what, and for the rest the portal is anyone.
	Portal bool
	// System is true for the cluster's own controllers (garbage collector, namespace
	// deletion), which clean up what their owners' deletion left.
	System bool
}

func (g *gate) request(ctx context.Context) (request, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return request{}, apierrors.NewInternalError(err)
	}
	u := req.UserInfo.Username
	return request{
		Request: req,
		User:    u,
		Trusted: slices.Contains(g.trusted, u),
		Portal:  slices.Contains(g.portal, u) && !slices.Contains(g.trusted, u),
		System:  strings.HasPrefix(u, "system:serviceaccount:kube-system:") || u == "system:kube-controller-manager",
	}, nil
}

// update settles what every update webhook decides first: the manager may change anything
// (Members keep a signed-up person's own fields from it, see memberValidator), and only it
// writes status (statusRefusal says so, and what to do instead); the portal writes only
// what the Member and ExternalUser webhooks let it, before they call update. decided is
// true when that settles the request, refused or not. The shard label of an
// Organization's children is Roster's too: it follows the Organization, and moving one
// object to a shard no manager serves would freeze it. So are owner references, which only
// Roster and the cluster's own controllers (the garbage collector orphaning dependents)
// change: the garbage collector deletes an object whose owners are gone.
func (g *gate) update(ctx context.Context, gr schema.GroupResource, old, obj client.Object, statusRefusal string) (r request, decided bool, err error) {
	r, err = g.request(ctx)
	name := obj.GetName()
	switch {
	case err != nil:
		return r, true, err
	case r.Trusted:
		return r, true, nil
	case r.SubResource == "status":
		return r, true, apierrors.NewForbidden(gr, name, errors.New(statusRefusal))
	case gr.Resource != "organizations" && old.GetLabels()[rosterv1.LabelShard] != obj.GetLabels()[rosterv1.LabelShard]:
		return r, true, apierrors.NewForbidden(gr, name, fmt.Errorf(
			"the label %s is Roster's: it follows the Organization's; to move the organization to another shard, relabel the Organization", rosterv1.LabelShard))
	case !r.System && !equality.Semantic.DeepEqual(old.GetOwnerReferences(), obj.GetOwnerReferences()):
		// The garbage collector deletes an object whose owners are all gone, as itself: an
		// owner reference anyone could add would delete what only admins may delete.
		return r, true, apierrors.NewForbidden(gr, name, errors.New(
			"metadata.ownerReferences are Roster's: the garbage collector deletes an object with its owners, so an owner added or removed "+
				"would delete it, or keep it, past the webhooks. To delete the object, delete it"))
	}
	return r, false, nil
}

// authority is the requester's standing in an organization.
func (g *gate) authority(ctx context.Context, r request, namespace, org string) (membership.Authority, error) {
	a, err := membership.RoleIn(ctx, g.reader, namespace, org, r.User, r.UserInfo.Groups)
	if err != nil {
		return a, apierrors.NewInternalError(err)
	}
	return a, nil
}

// admin refuses anyone who is not an admin of the organization org, for what they want to do
// to the object name of resource gr.
func (g *gate) admin(ctx context.Context, r request, gr schema.GroupResource, namespace, name, org, what string) (membership.Authority, error) {
	a, err := g.authority(ctx, r, namespace, org)
	if err != nil {
		return a, err
	}
	if a.Organization == nil {
		return a, apierrors.NewForbidden(gr, name, fmt.Errorf(
			"Organization %s does not exist in namespace %s; create it first, or fix spec.organizationRef", org, namespace))
	}
	return a, notAdmin(a, r, gr, name, what)
}

// notAdmin refuses a requester whose standing a is below Admin.
func notAdmin(a membership.Authority, r request, gr schema.GroupResource, name, what string) error {
	if membership.IsAdmin(a.Role) {
		return nil
	}
	return apierrors.NewForbidden(gr, name, fmt.Errorf(
		"only admins of Organization %s %s; %s has %s there. Ask one of its admins", a.Organization.Name, what, r.User, orNone(a.Role)))
}

// adminDeletes lets the organization's admins delete an object, and Roster and the
// cluster's own controllers clean up; with no organization there is no one's authority to
// protect.
func (g *gate) adminDeletes(ctx context.Context, gr schema.GroupResource, namespace, name, org, what string) error {
	r, err := g.request(ctx)
	if err != nil || r.Trusted || r.System {
		return err
	}
	a, err := g.authority(ctx, r, namespace, org)
	if err != nil || a.Organization == nil {
		return err
	}
	return notAdmin(a, r, gr, name, what)
}

// takeQuota counts an admitted create against its requester's daily quota in the
// organization, after every other check, so that a refused create does not use it up. A dry
// run counts nothing.
func (g *gate) takeQuota(ctx context.Context, r request, a membership.Authority, gr schema.GroupResource, name string) error {
	if ptr.Deref(r.DryRun, false) {
		return nil
	}
	if err := g.ledger.Take(ctx, a.Organization, r.User, g.now()); err != nil {
		var q *membership.QuotaError
		if errors.As(err, &q) {
			return apierrors.NewForbidden(gr, name, q)
		}
		return apierrors.NewInternalError(err)
	}
	return nil
}

// goingAway refuses a new object for an organization that is being deleted: its deletion
// removes what it has, and what is added meanwhile would be left behind or deleted unseen.
func goingAway(a membership.Authority, gr schema.GroupResource, name string) error {
	if a.Organization == nil || a.Organization.DeletionTimestamp.IsZero() {
		return nil
	}
	return apierrors.NewForbidden(gr, name, fmt.Errorf("Organization %s is being deleted; nothing can be added to it", a.Organization.Name))
}

// orNone names a role for a message.
func orNone(r rosterv1.Role) string {
	if r == "" {
		return "no role"
	}
	return "role " + string(r)
}
