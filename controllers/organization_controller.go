package controllers

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/patch"
)

// LabelOrganization names the Organization a public link Secret belongs to.
const LabelOrganization = rosterv1.LabelOrganization

// OrganizationReconciler gives an organization its door number, public link and module links and keeps
// the counts in its status: members by phase, seats by application, collaborators.
type OrganizationReconciler struct {
	// Shard is the part of the organizations this manager reconciles; empty for all.
	Shard Shard
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// APIReader reads past the cache, so that a door number is generated only once.
	APIReader client.Reader
	// PortalURL is where the public link points when spec.portalURL is empty.
	PortalURL string

	tally *memberTally
	doors *doorChecks
}

// Reconcile brings an organization's door number, public link and counts up to date.
func (r *OrganizationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, reterr error) {
	org := &rosterv1.Organization{}
	if err := r.Get(ctx, req.NamespacedName, org); err != nil {
		if apierrors.IsNotFound(err) {
			r.doors.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.Shard.Has(org) {
		return ctrl.Result{}, nil // another shard's
	}
	if !org.DeletionTimestamp.IsZero() && !controllerutil.ContainsFinalizer(org, rosterv1.Finalizer) {
		return ctrl.Result{}, nil
	}
	if !controllerutil.ContainsFinalizer(org, rosterv1.Finalizer) {
		orig := org.DeepCopy()
		controllerutil.AddFinalizer(org, rosterv1.Finalizer)
		return ctrl.Result{}, r.Patch(ctx, org, client.MergeFrom(orig))
	}
	helper, err := patch.NewHelper(org, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	gone := false
	defer func() {
		if !gone {
			reterr = finish(ctx, helper, org, reterr)
		}
	}()
	if !org.DeletionTimestamp.IsZero() {
		res, gone, reterr = r.deleteChildren(ctx, org)
		return res, reterr
	}

	if moved, err := r.moveChildren(ctx, org); err != nil || !moved {
		return ctrl.Result{RequeueAfter: time.Second}, err
	}
	if org.Spec.DoorNumber == "" && org.Status.DoorNumber == "" {
		if ok, err := current(ctx, r.APIReader, org); err != nil || !ok {
			return notCurrent, err
		}
	}
	doorOK, err := r.assignDoorNumber(ctx, org)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.syncPublicLink(ctx, org); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.syncModuleLinks(ctx, org); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.countMembers(ctx, org); err != nil {
		return ctrl.Result{}, err
	}
	seatsChange, err := r.allocateSeats(ctx, org)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.countCollaborators(ctx, org); err != nil {
		return ctrl.Result{}, err
	}
	if doorOK {
		conclude(org, settled, true, rosterv1.ReasonReconciled, fmt.Sprintf("Door number %s; %d active, %d awaiting approval",
			org.Status.DoorNumber, org.Status.Members.Active, org.Status.Members.Pending))
	}
	// A license that expires later takes its seats back then.
	return ctrl.Result{RequeueAfter: seatsChange}, nil
}

// childKinds are an Organization's children in the order its deletion removes them:
// invitations first, so none makes a Member while members go; then collaborations and
// external users, whose teams name members; members last.
var childKinds = []struct {
	// plural names the kind in messages.
	plural string
	list   func() client.ObjectList
}{
	{"invitations", func() client.ObjectList { return &rosterv1.InvitationList{} }},
	{"collaborations", func() client.ObjectList { return &rosterv1.CollaborationList{} }},
	{"external users", func() client.ObjectList { return &rosterv1.ExternalUserList{} }},
	{"members", func() client.ObjectList { return &rosterv1.MemberList{} }},
}

// childWritesPerPass bounds the children one pass deletes or relabels, so that a large
// organization does not hold a worker; the next pass goes on.
const childWritesPerPass = 200

// deleteChildren removes a deleted organization's children, kind by kind in childKinds'
// order, a kind only once the one before it is gone, then its door number, and then lets
// the Organization go; gone reports that it went. The children's controllers see the Organization going and send
// nothing more, so nobody is told anything twice, or at all, about objects that go with it.
func (r *OrganizationReconciler) deleteChildren(ctx context.Context, org *rosterv1.Organization) (_ ctrl.Result, gone bool, _ error) {
	// The cache first; once it holds none, the API server, for a shard's cache does not
	// hold a child not yet labelled for the shard.
	for _, pastCache := range []bool{false, true} {
		if res, left, err := r.deleteSome(ctx, org, pastCache); err != nil || left {
			return res, false, err
		}
	}
	if door := org.Status.DoorNumber; door != "" {
		me := rosterv1.ClaimHolder{Kind: "Organization", Namespace: org.Namespace, Name: org.Name}
		if err := (membership.Claims{Client: r.Client, Reader: r.APIReader}).Release(ctx, membership.DoorNumberClaimName(door), me); err != nil {
			return ctrl.Result{}, false, err
		}
	}
	r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "ChildrenDeleted", "Delete", "Every invitation, collaboration, external user and member of the organization was deleted")
	orig := org.DeepCopy()
	controllerutil.RemoveFinalizer(org, rosterv1.Finalizer)
	return ctrl.Result{}, true, client.IgnoreNotFound(r.Patch(ctx, org, client.MergeFrom(orig)))
}

// deleteSome deletes a bounded number of the organization's children of the first kind in
// childKinds' order that has any, read from the cache or past it; left reports that there
// were some.
func (r *OrganizationReconciler) deleteSome(ctx context.Context, org *rosterv1.Organization, pastCache bool) (_ ctrl.Result, left bool, _ error) {
	for i, kind := range childKinds {
		list, err := r.children(ctx, org, kind.list(), pastCache, nil)
		if err != nil {
			return ctrl.Result{}, false, err
		}
		n := meta.LenList(list)
		if n == 0 {
			continue
		}
		deleted := 0
		err = forEach(list, func(o client.Object) {
			if deleted >= childWritesPerPass || !o.GetDeletionTimestamp().IsZero() {
				return
			}
			if err := r.Delete(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
				log.FromContext(ctx).Error(err, "delete child of a deleted organization", "object", client.ObjectKeyFromObject(o))
				return
			}
			deleted++
		})
		if err != nil {
			return ctrl.Result{}, false, err
		}
		msg := fmt.Sprintf("The organization is being deleted: %d %s left", n, kind.plural)
		if rest := childKinds[i+1:]; len(rest) > 0 {
			var names []string
			for _, k := range rest {
				names = append(names, k.plural)
			}
			msg += ", then " + strings.Join(names, ", ")
		}
		conclude(org, working, false, rosterv1.ReasonOrganizationDeleting, msg)
		// The children's watches bring the organization back sooner.
		return ctrl.Result{RequeueAfter: 2 * time.Second}, true, nil
	}
	return ctrl.Result{}, false, nil
}

// children lists the organization's children of one kind: from the cache through its index,
// or past it, with the organization as a field selector and at most childWritesPerPass of
// them. A shard's manager caches only the children labelled for its shard, so what may
// carry another label (a child not yet labelled, or one a moved organization has not yet
// taken along) is looked for past the cache. sel narrows by labels; nil takes all.
func (r *OrganizationReconciler) children(ctx context.Context, org *rosterv1.Organization, list client.ObjectList, pastCache bool, sel labels.Selector) (client.ObjectList, error) {
	opts := []client.ListOption{client.InNamespace(org.Namespace), client.MatchingFields{IndexOrganization: org.Name}}
	if sel != nil {
		opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
	}
	if !pastCache {
		return list, r.List(ctx, list, opts...)
	}
	return list, r.APIReader.List(ctx, list, append(opts, client.Limit(childWritesPerPass))...)
}

// moveChildren gives the organization's children its shard label when that changed, a
// bounded number a pass, so that they follow it to the manager that serves that shard. It
// reports whether every child carries it. The children are looked for past the cache: the
// new shard's manager may cache only what is already labelled for it, and the old shard's
// own controllers, which also move them, may be gone.
func (r *OrganizationReconciler) moveChildren(ctx context.Context, org *rosterv1.Organization) (bool, error) {
	want := org.Labels[rosterv1.LabelShard]
	if org.Status.Shard == want {
		return true, nil
	}
	op, values := selection.NotEquals, []string{want}
	if want == "" {
		op, values = selection.Exists, nil
	}
	other, err := labels.NewRequirement(rosterv1.LabelShard, op, values)
	if err != nil {
		return false, err
	}
	for _, kind := range childKinds {
		list, err := r.children(ctx, org, kind.list(), true, labels.NewSelector().Add(*other))
		if err != nil {
			return false, err
		}
		if meta.LenList(list) == 0 {
			continue
		}
		err = forEach(list, func(o client.Object) {
			orig := o.DeepCopyObject().(client.Object)
			setLabels(o, map[string]string{rosterv1.LabelShard: want})
			if perr := client.IgnoreNotFound(r.Patch(ctx, o, client.MergeFrom(orig))); perr != nil && err == nil {
				err = perr
			}
		})
		return false, err // the next pass sees whether any is left
	}
	org.Status.Shard = want
	return true, nil
}

// assignDoorNumber puts the door number in force into status: the one asked for in spec,
// unless another organization holds it, or a generated one. Each is held by a Claim named
// after the number, so of two organizations that want one number only one can have it,
// whatever order the API server sees them in.
func (r *OrganizationReconciler) assignDoorNumber(ctx context.Context, org *rosterv1.Organization) (held bool, err error) {
	claims := membership.Claims{Client: r.Client, Reader: r.APIReader}
	me := rosterv1.ClaimHolder{Kind: "Organization", Namespace: org.Namespace, Name: org.Name}
	key := types.NamespacedName{Namespace: org.Namespace, Name: org.Name}
	if cur := org.Status.DoorNumber; cur != "" && (org.Spec.DoorNumber == "" || org.Spec.DoorNumber == cur) &&
		r.doors.fresh(key, cur, r.Clock.Now()) {
		// The number in force stays, and a recent pass proved the Claim ours: no read past the
		// cache on every pass. Nobody takes over a claim whose holder names the number in
		// status, so only an admin deleting the Claim by hand goes unseen, until doorRecheck.
		return true, nil
	}
	defer func() {
		if held && err == nil {
			r.doors.proved(key, org.Status.DoorNumber, r.Clock.Now())
		}
	}()
	take := func(door string) (bool, error) {
		err := claims.Take(ctx, rosterv1.ClaimDoorNumber, membership.DoorNumberClaimName(door), door, me)
		var taken *membership.ErrTaken
		if errors.As(err, &taken) {
			return false, nil
		}
		return err == nil, err
	}
	release := func(door string) error {
		if door == "" {
			return nil
		}
		return claims.Release(ctx, membership.DoorNumberClaimName(door), me)
	}
	cur := org.Status.DoorNumber
	if want := org.Spec.DoorNumber; want != "" {
		ok, err := take(want)
		if err != nil {
			return false, err
		}
		if !ok {
			org.Status.DoorNumber = ""
			conclude(org, stalled, false, rosterv1.ReasonDoorNumberTaken, fmt.Sprintf("Door number %s belongs to another organization; choose another or leave spec.doorNumber empty to get one", want))
			return false, release(cur)
		}
		org.Status.DoorNumber = want
		if cur != want {
			return true, release(cur)
		}
		return true, nil
	}
	if cur != "" {
		if ok, err := take(cur); ok || err != nil {
			return ok, err
		}
	}
	for range 10 {
		n, err := rand.Int(rand.Reader, big.NewInt(90_000_000))
		if err != nil {
			return false, err
		}
		candidate := strconv.FormatInt(n.Int64()+10_000_000, 10)
		ok, err := take(candidate)
		if err != nil {
			return false, err
		}
		if ok {
			org.Status.DoorNumber = candidate
			r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "DoorNumberAssigned", "Assign", "Door number %s assigned", candidate)
			return true, nil
		}
	}
	return false, fmt.Errorf("no free door number found in 10 tries")
}

// doorRecheck is how long an organization trusts its proof that it holds its door number's
// Claim before it reads the Claim again. Claims are not cached: there is one for every
// username, and the organization's controller alone would need the door numbers'.
const doorRecheck = 10 * time.Minute

// doorChecks remembers the door number each organization last proved it holds, and when.
type doorChecks struct {
	mu sync.Mutex
	at map[types.NamespacedName]doorCheck
}

type doorCheck struct {
	door string
	at   time.Time
}

// fresh reports whether org proved it holds door less than doorRecheck before now.
func (d *doorChecks) fresh(org types.NamespacedName, door string, now time.Time) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.at[org]
	return ok && c.door == door && now.Sub(c.at) < doorRecheck
}

// proved records that org holds door at now.
func (d *doorChecks) proved(org types.NamespacedName, door string, now time.Time) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.at[org] = doorCheck{door: door, at: now}
}

// forget drops what is remembered of org, once it is gone.
func (d *doorChecks) forget(org types.NamespacedName) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.at, org)
}

// syncPublicLink keeps the public invitation link in a Secret while it is enabled, with a
// new token whenever spec.publicInvitation.linkGeneration changes (F1).
func (r *OrganizationReconciler) syncPublicLink(ctx context.Context, org *rosterv1.Organization) error {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: org.Name + "-public-link", Namespace: org.Namespace}}
	if !org.Spec.PublicInvitation.Enabled {
		// Deleted only when the cache has it, not by a DELETE on every pass: should the cache
		// not have it yet, its arrival (the Secret is owned) brings the organization back.
		err := r.Get(ctx, client.ObjectKeyFromObject(sec), sec)
		if err == nil {
			err = r.Delete(ctx, sec)
		}
		if client.IgnoreNotFound(err) != nil {
			return err
		}
		org.Status.PublicLinkSecretRef = nil
		return nil
	}
	gen := strconv.FormatInt(org.Spec.PublicInvitation.LinkGeneration, 10)
	_, err := controllerutil.CreateOrPatch(ctx, r.Client, sec, func() error {
		if string(sec.Data[linktoken.SecretKeyGeneration]) != gen || len(sec.Data[linktoken.SecretKeyHash]) == 0 {
			token, hash, err := linktoken.New()
			if err != nil {
				return err
			}
			sec.Data = map[string][]byte{
				linktoken.SecretKeyHash:       []byte(hash),
				linktoken.SecretKeyLink:       []byte(linktoken.Link(portalURL(org, r.PortalURL), "join", token)),
				linktoken.SecretKeyGeneration: []byte(gen),
			}
			if sec.Labels == nil {
				sec.Labels = map[string]string{}
			}
			sec.Labels[linktoken.HashLabel] = linktoken.LabelValue(hash)
			if org.Status.PublicLinkSecretRef != nil {
				r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "PublicLinkRotated", "Rotate", "A new public link was made; the old one no longer works")
			}
		}
		if sec.Labels == nil {
			sec.Labels = map[string]string{}
		}
		sec.Labels[rosterv1.LabelPartOf] = rosterv1.PartOfRoster
		sec.Labels[LabelOrganization] = org.Name
		return controllerutil.SetControllerReference(org, sec, r.Scheme())
	})
	if err != nil {
		return fmt.Errorf("public link: %w", err)
	}
	org.Status.PublicLinkSecretRef = &rosterv1.LocalObjectReference{Name: sec.Name}
	org.Status.PublicLinkGeneration = org.Spec.PublicInvitation.LinkGeneration
	return nil
}

// countMembers copies the organization's member counts, kept as the members' events arrive.
func (r *OrganizationReconciler) countMembers(_ context.Context, org *rosterv1.Organization) error {
	org.Status.Members = r.tally.of(types.NamespacedName{Namespace: org.Namespace, Name: org.Name})
	return nil
}

// countCollaborators counts the collaborations still in at least one module, leaving out
// the collaborators who are an application's external users: a Collaboration whose email is
// an ExternalUser's in the same organization belongs to that application's portal. Each
// active collaboration costs one lookup in the cache's email index.
func (r *OrganizationReconciler) countCollaborators(ctx context.Context, org *rosterv1.Organization) error {
	// Read only: the cache's own objects, not a deep copy of each.
	list := &rosterv1.CollaborationList{}
	if err := r.List(ctx, list, client.InNamespace(org.Namespace), client.MatchingFields{IndexOrganization: org.Name},
		client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	var n int32
	for _, c := range list.Items {
		if c.Status.ActiveModules == 0 {
			continue
		}
		external, err := r.isExternalUser(ctx, org, c.Spec.Collaborator.Email)
		if err != nil {
			return err
		}
		if !external {
			n++
		}
	}
	org.Status.Collaborators = n
	return nil
}

// isExternalUser reports whether email is one of the organization's external users'.
func (r *OrganizationReconciler) isExternalUser(ctx context.Context, org *rosterv1.Organization, email string) (bool, error) {
	if email == "" {
		return false, nil
	}
	users := &rosterv1.ExternalUserList{}
	if err := r.List(ctx, users, client.InNamespace(org.Namespace), client.MatchingFields{rosterv1.IndexEmail: strings.ToLower(email)},
		client.UnsafeDisableDeepCopy); err != nil {
		return false, err
	}
	for _, x := range users.Items {
		if x.Spec.OrganizationRef.Name == org.Name {
			return true, nil
		}
	}
	return false, nil
}

// portalURL is where an organization's links point: its spec.portalURL, or the manager's
// default.
func portalURL(org *rosterv1.Organization, fallback string) string {
	if org.Spec.PortalURL != "" {
		return org.Spec.PortalURL
	}
	return fallback
}

// childBatch is how long an Organization waits after a change to one of its children before
// it counts again. The workqueue keeps one entry per organization, so a burst of a thousand
// invitations makes about one pass, and one status write, a second instead of a thousand.
const childBatch = time.Second

// organizationOf queues, childBatch later, the Organization an object names.
func organizationOf(name func(client.Object) string) handler.Funcs {
	enqueue := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object) {
		q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name(o)}}, childBatch)
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, e.Object)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, e.ObjectNew)
			if name(e.ObjectOld) != name(e.ObjectNew) {
				enqueue(q, e.ObjectOld)
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, e.Object)
		},
		GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, e.Object)
		},
	}
}

// SetupWithManager watches Organizations, their public link Secrets, and the objects they
// count.
func (r *OrganizationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.tally = newMemberTally()
	r.doors = &doorChecks{at: map[types.NamespacedName]doorCheck{}}
	return ctrl.NewControllerManagedBy(mgr).
		For(&rosterv1.Organization{}).
		Owns(&corev1.Secret{}).
		Watches(&rosterv1.Member{}, r.tally.handler()).
		Watches(&rosterv1.ExternalUser{}, organizationOf(func(o client.Object) string {
			return o.(*rosterv1.ExternalUser).Spec.OrganizationRef.Name
		})).
		Watches(&rosterv1.Collaboration{}, organizationOf(func(o client.Object) string {
			return o.(*rosterv1.Collaboration).Spec.OrganizationRef.Name
		})).
		Watches(&rosterv1.Invitation{}, organizationOf(func(o client.Object) string {
			return o.(*rosterv1.Invitation).Spec.OrganizationRef.Name
		}), builder.WithPredicates(predicate.Funcs{
			// Only an invitation going away matters here: a deleted organization waits for its
			// invitations before it deletes the rest.
			CreateFunc:  func(event.CreateEvent) bool { return false },
			UpdateFunc:  func(event.UpdateEvent) bool { return false },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		Named("organization").
		Complete(r)
}
