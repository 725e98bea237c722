package controllers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/patch"
)

// Resends are limited per invitation so that a loop bumping resendRequests cannot flood a
// person's inbox; requests beyond the limit wait, they are not dropped.
const (
	maxResendsPerWindow = 3
	resendWindow        = 10 * time.Minute
)

// InvitationReconciler turns an Invitation into an Inactivated Member and a single-use link,
// delivers the link, expires it, resends it on request, and notices the sign-up.
type InvitationReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Notifications send the invitations.
	Notifications
	// PortalURL is where links point when the Organization sets no spec.portalURL.
	PortalURL string
}

// Reconcile moves one invitation along: member, link, delivery, expiry, acceptance.
func (r *InvitationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	inv := &rosterv1.Invitation{}
	if err := r.Get(ctx, req.NamespacedName, inv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !inv.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.cancel(ctx, inv)
	}
	if !controllerutil.ContainsFinalizer(inv, rosterv1.Finalizer) {
		orig := inv.DeepCopy()
		controllerutil.AddFinalizer(inv, rosterv1.Finalizer)
		return ctrl.Result{}, r.Patch(ctx, inv, client.MergeFrom(orig))
	}
	helper, err := patch.NewHelper(inv, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	defer func() { reterr = finish(ctx, helper, inv, reterr) }()

	if inv.Status.Phase == "" {
		inv.Status.Phase = rosterv1.InvitationPending
	}
	if inv.Status.Reason == rosterv1.ReasonDeliveryFailed && inv.Spec.ResendRequests > inv.Status.ResendsHandled {
		// A resend after a failed delivery tries again with whatever was fixed.
		inv.Status.Phase, inv.Status.Reason = rosterv1.InvitationPending, ""
		inv.Status.ResendsHandled = inv.Spec.ResendRequests
	}
	if inv.Status.Phase == rosterv1.InvitationFailed || inv.Status.Phase == rosterv1.InvitationAccepted {
		return ctrl.Result{}, r.ignoreResends(inv)
	}
	org, err := organization(ctx, r.Client, inv, inv.Spec.OrganizationRef.Name)
	if err != nil || org == nil {
		return ctrl.Result{}, err
	}
	member, err := r.ensureMember(ctx, inv, org)
	if err != nil || member == nil {
		return ctrl.Result{}, err
	}
	if member.Spec.Username != "" {
		return ctrl.Result{}, r.accepted(ctx, inv, member)
	}
	if r.expiring(inv) {
		if ok, err := current(ctx, r.APIReader, inv); err != nil || !ok {
			return notCurrent, err
		}
	}
	r.expire(inv)
	r.takeResend(inv)
	return r.deliver(ctx, inv, org, member)
}

// cancel runs when an invitation is deleted: an invitation that was never accepted takes its
// Inactivated Member with it (F4). The token Secret is owned and goes by garbage collection.
func (r *InvitationReconciler) cancel(ctx context.Context, inv *rosterv1.Invitation) error {
	if !controllerutil.ContainsFinalizer(inv, rosterv1.Finalizer) {
		return nil
	}
	{
		// The Member is named after the invitation; it may exist even when the status write
		// that recorded it was lost.
		m := &rosterv1.Member{}
		err := r.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Name}, m)
		if client.IgnoreNotFound(err) != nil {
			return err
		}
		if err == nil && m.Spec.Username == "" && metav1.IsControlledBy(m, inv) {
			// The preconditions make a stale copy fail: a person who signed up a moment ago
			// has a newer Member, released from the invitation, that must stay.
			err := r.Delete(ctx, m, client.Preconditions{UID: &m.UID, ResourceVersion: &m.ResourceVersion})
			if apierrors.IsConflict(err) {
				return fmt.Errorf("the invited member changed while cancelling; looking again")
			}
			if client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("delete the invited member: %w", err)
			}
			r.Recorder.Eventf(inv, m, corev1.EventTypeNormal, "Cancelled", "Delete", "Invitation cancelled; its Inactivated Member %s was removed", m.Name)
		}
	}
	orig := inv.DeepCopy()
	controllerutil.RemoveFinalizer(inv, rosterv1.Finalizer)
	return r.Patch(ctx, inv, client.MergeFrom(orig))
}

// ensureMember makes the invited person's Member, Inactivated, at once: it holds the work
// details the admin gave and tells the Member controller how the person joins. Before it
// exists, an invitation for someone who already is in the organization fails with the
// reason (F7): the webhook refuses those, this catches what came past it.
func (r *InvitationReconciler) ensureMember(ctx context.Context, inv *rosterv1.Invitation, org *rosterv1.Organization) (*rosterv1.Member, error) {
	m := &rosterv1.Member{}
	err := r.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Name}, m)
	if err == nil {
		if !metav1.IsControlledBy(m, inv) && inv.Status.MemberRef == nil {
			r.fail(inv, "", fmt.Sprintf("a Member named %s already exists and does not belong to this invitation; use another name for the Invitation", inv.Name))
			return nil, nil
		}
		inv.Status.MemberRef = &rosterv1.LocalObjectReference{Name: m.Name}
		inv.Status.RequiresApproval = m.Status.RequiresApproval
		return m, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	if inv.Status.MemberRef != nil {
		// The cache may not have the Member this invitation made a moment ago: ask the API
		// server before concluding it is gone.
		fresh := &rosterv1.Member{}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Status.MemberRef.Name}, fresh); err == nil {
			return nil, nil // the watch brings the Member into the cache, and us back
		} else if !apierrors.IsNotFound(err) {
			return nil, err
		}
		// The member went away after the invitation made it: an admin deleted it. Nothing
		// can be accepted any more.
		r.fail(inv, "", fmt.Sprintf("Member %s of this invitation was deleted; delete the invitation and invite again", inv.Status.MemberRef.Name))
		return nil, nil
	}
	if ok, err := current(ctx, r.APIReader, inv); err != nil || !ok {
		return nil, err // a stale copy; the pending write brings the invitation back
	}
	reason, msg, err := membership.ConflictFor(ctx, r.Client, inv.Namespace, inv.UID, &inv.Spec)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		r.fail(inv, reason, msg)
		return nil, nil
	}
	m, err = r.newMember(ctx, inv)
	if err != nil || m == nil {
		return nil, err
	}
	if err := r.Create(ctx, m); err != nil {
		return nil, fmt.Errorf("create member: %w", err)
	}
	inv.Status.MemberRef = &rosterv1.LocalObjectReference{Name: m.Name}
	r.Recorder.Eventf(inv, m, corev1.EventTypeNormal, "MemberCreated", "Create", "Created Member %s, Inactivated until the person signs up", m.Name)
	return m, nil
}

// newMember is the Member an invitation makes. For a Contact invitation the person's name,
// email and phone come from their existing account (F3).
func (r *InvitationReconciler) newMember(ctx context.Context, inv *rosterv1.Invitation) (*rosterv1.Member, error) {
	joinMethod := rosterv1.JoinMethodInvitation
	name, email, phone := inv.Spec.Invitee.Name, inv.Spec.Invitee.Email, inv.Spec.Invitee.Phone
	if inv.Spec.Method == rosterv1.InvitationMethodContact {
		joinMethod = rosterv1.JoinMethodContact
		account, err := r.account(ctx, inv.Namespace, inv.Spec.Invitee.Username)
		if err != nil {
			return nil, err
		}
		if account == nil {
			conclude(inv, stalled, false, rosterv1.ReasonAccountNotFound, fmt.Sprintf("No account with username %q in namespace %s; invite them by email or phone instead",
				inv.Spec.Invitee.Username, inv.Namespace))
			return nil, nil
		}
		name, email, phone = firstNonEmpty(name, account.Spec.DisplayName), account.Spec.Email, account.Spec.Phone
	}
	m := &rosterv1.Member{
		ObjectMeta: metav1.ObjectMeta{
			Name:      inv.Name,
			Namespace: inv.Namespace,
			Labels:    map[string]string{rosterv1.LabelInvitation: inv.Name},
		},
		Spec: rosterv1.MemberSpec{
			OrganizationRef: inv.Spec.OrganizationRef,
			DisplayName:     name,
			Email:           email,
			Phone:           phone,
			WorkDetails:     inv.Spec.WorkDetails,
			Role:            inv.Spec.Role,
			Access:          rosterv1.AccessActive,
			// The invitation's inviter and role were recorded by the admission webhook; the
			// Member's webhook keeps them because the manager creates it.
			Provenance: rosterv1.MemberProvenance{JoinMethod: joinMethod, InvitedBy: inv.Spec.InvitedBy, InviterRole: inv.Spec.InviterRole},
		},
	}
	return m, controllerutil.SetControllerReference(inv, m, r.Scheme())
}

// account finds someone's existing account: a signed-up Member with that username in the
// invitation's namespace. It looks nowhere else: the inviter may read this namespace, and an
// account elsewhere must neither lend its email and phone nor reveal that it exists.
func (r *InvitationReconciler) account(ctx context.Context, namespace, username string) (*rosterv1.Member, error) {
	list := &rosterv1.MemberList{}
	if err := r.List(ctx, list, client.InNamespace(namespace), client.MatchingFields{IndexUsername: username}); err != nil {
		return nil, err
	}
	if len(list.Items) == 0 {
		return nil, nil
	}
	return &list.Items[0], nil
}

// accepted records that the person signed up with the link: the link is used up, and the
// Member no longer belongs to the invitation, so deleting the invitation keeps the member.
func (r *InvitationReconciler) accepted(ctx context.Context, inv *rosterv1.Invitation, m *rosterv1.Member) error {
	if metav1.IsControlledBy(m, inv) {
		orig := m.DeepCopy()
		var refs []metav1.OwnerReference
		for _, ref := range m.OwnerReferences {
			if ref.UID != inv.UID {
				refs = append(refs, ref)
			}
		}
		m.OwnerReferences = refs
		if err := r.Patch(ctx, m, client.MergeFrom(orig)); err != nil {
			return fmt.Errorf("release member: %w", err)
		}
	}
	if err := r.deleteToken(ctx, inv); err != nil {
		return err
	}
	inv.Status.Phase = rosterv1.InvitationAccepted
	inv.Status.AcceptedAt = m.Status.SignedUpAt
	if inv.Status.AcceptedAt == nil {
		inv.Status.AcceptedAt = now(r.Clock)
	}
	inv.Status.ExpiresAt = nil
	conclude(inv, settled, true, rosterv1.ReasonAccepted, fmt.Sprintf("Accepted: the person signed up as Member %s", m.Name))
	r.Recorder.Eventf(inv, m, corev1.EventTypeNormal, "Accepted", "Accept", "The person signed up as Member %s", m.Name)
	return nil
}

// expiring reports whether a sent invitation's link ran out.
func (r *InvitationReconciler) expiring(inv *rosterv1.Invitation) bool {
	return inv.Status.Phase == rosterv1.InvitationSent && inv.Status.ExpiresAt != nil && !r.Clock.Now().Before(inv.Status.ExpiresAt.Time)
}

// expire marks a sent invitation whose link ran out (F8); a resend revives it.
func (r *InvitationReconciler) expire(inv *rosterv1.Invitation) {
	if !r.expiring(inv) {
		return
	}
	inv.Status.Phase = rosterv1.InvitationExpired
	r.Recorder.Eventf(inv, nil, corev1.EventTypeNormal, "Expired", "Expire", "The invitation link expired unused")
}

// takeResend starts the next requested resend unless this invitation already had
// maxResendsPerWindow resends in the window; the request then waits.
func (r *InvitationReconciler) takeResend(inv *rosterv1.Invitation) {
	if inv.Spec.ResendRequests <= inv.Status.ResendsHandled || r.resendWait(inv) > 0 {
		return
	}
	switch inv.Status.Phase {
	case rosterv1.InvitationPending:
		if inv.Status.SentAt != nil {
			return // a resend is under way; the next one waits for it
		}
		// Nothing went out yet: the first send, still under way, becomes the resend.
		inv.Status.ResendsHandled = inv.Spec.ResendRequests
		var keep []rosterv1.Delivery
		for _, d := range inv.Status.Deliveries {
			if d.State != DeliverySending {
				keep = append(keep, d)
			}
		}
		inv.Status.Deliveries = keep
	case rosterv1.InvitationSent, rosterv1.InvitationExpired:
		inv.Status.ResendsHandled++
		inv.Status.Phase = rosterv1.InvitationPending
	}
}

// resendWait is how long the next resend must wait for the window to allow it.
func (r *InvitationReconciler) resendWait(inv *rosterv1.Invitation) time.Duration {
	var recent []time.Time
	cutoff := r.Clock.Now().Add(-resendWindow)
	for _, d := range inv.Status.Deliveries {
		if d.At != nil && d.At.After(cutoff) && !strings.HasSuffix(d.Key, "/0") && d.State != DeliveryFailed {
			recent = append(recent, d.At.Time)
		}
	}
	if len(recent) < maxResendsPerWindow {
		return 0
	}
	oldest := recent[0]
	for _, t := range recent {
		if t.Before(oldest) {
			oldest = t
		}
	}
	return oldest.Add(resendWindow).Sub(r.Clock.Now())
}

// deliver makes a fresh link for the current send and hands it to the person's channel.
func (r *InvitationReconciler) deliver(ctx context.Context, inv *rosterv1.Invitation, org *rosterv1.Organization, m *rosterv1.Member) (ctrl.Result, error) {
	gen := inv.Status.ResendsHandled
	if inv.Status.Phase != rosterv1.InvitationPending {
		return r.settled(inv), nil
	}
	ch, recipient := channelFor(inv, m)
	if ch == "" {
		// A Link invitation: the admin copies the link from its Secret.
		if err := r.issueLink(ctx, inv, org, gen); err != nil {
			return ctrl.Result{}, err
		}
		r.sent(inv, org)
		conclude(inv, settled, true, rosterv1.ReasonLinkReady, fmt.Sprintf("The link is ready in Secret %s (key %q); pass it on to the person", inv.Status.TokenSecretRef.Name, linktoken.SecretKeyLink))
		return r.settled(inv), nil
	}
	box := r.outbox(r.Clock)
	key := fmt.Sprintf("%s/invitation/%d", inv.UID, gen)
	d, added := box.record(&inv.Status.Deliveries, key, ch)
	if added {
		conclude(inv, working, false, rosterv1.ReasonSending, "The invitation is being sent")
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if d.State == DeliveryFailed {
		return ctrl.Result{}, nil
	}
	settings, err := notificationSettings(ctx, r.Client, org)
	if err != nil {
		conclude(inv, stalled, false, rosterv1.ReasonNotificationsMisconfigured, err.Error())
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	if due, err := box.due(ctx, inv, key); err != nil || !due {
		// The cache is behind; the write that settled this delivery brings us back.
		return ctrl.Result{RequeueAfter: time.Second}, err
	}
	token, err := r.deliveryToken(ctx, inv, gen)
	if err != nil {
		return ctrl.Result{}, err
	}
	msg := notify.Message{
		Key:      key,
		Template: templateFor(inv, gen),
		To:       recipient,
		Data: map[string]any{
			"OrganizationName": org.Spec.DisplayName,
			"InviteeName":      recipient.Name,
			"InvitedBy":        inv.Spec.InvitedBy,
			"Link":             r.link(org, token),
			"ExpiresAt":        r.Clock.Now().Add(org.Spec.InvitationTTL.Duration).UTC().Format(time.RFC1123),
		},
	}
	attempts := d.Attempts
	retry, permanent := box.send(ctx, d, settings, msg)
	switch {
	case retry > 0 && d.Attempts == attempts:
		// The channel was busy and nothing was attempted; the same link goes next time.
		return ctrl.Result{RequeueAfter: retry}, nil
	case permanent != nil:
		r.fail(inv, rosterv1.ReasonDeliveryFailed, "The invitation could not be delivered: "+deliveryAdvice(permanent, ch)+
			". Fix it, then raise spec.resendRequests to send it again")
		return ctrl.Result{}, nil
	case retry > 0:
		conclude(inv, working, false, rosterv1.ReasonDeliveryRetrying, fmt.Sprintf("Delivery failed (%s); retrying in %s", d.Error, retry))
		r.Recorder.Eventf(inv, nil, corev1.EventTypeWarning, "DeliveryRetrying", "Send", "Delivery attempt %d failed; retrying in %s", d.Attempts, retry)
		return ctrl.Result{RequeueAfter: retry}, nil
	}
	if err := r.dropPendingToken(ctx, inv); err != nil {
		return ctrl.Result{}, err
	}
	r.sent(inv, org)
	conclude(inv, settled, true, rosterv1.ReasonSent, fmt.Sprintf("Sent by %s to %s; the link works until %s", ch, recipientAddress(recipient, ch), inv.Status.ExpiresAt.UTC().Format(time.RFC3339)))
	r.Recorder.Eventf(inv, nil, corev1.EventTypeNormal, "Sent", "Send", "Invitation sent by %s (send %d)", ch, gen+1)
	return r.settled(inv), nil
}

// sent stamps a (re)sent invitation.
func (r *InvitationReconciler) sent(inv *rosterv1.Invitation, org *rosterv1.Organization) {
	inv.Status.Phase = rosterv1.InvitationSent
	inv.Status.SentAt = now(r.Clock)
	exp := metav1.NewTime(inv.Status.SentAt.Add(org.Spec.InvitationTTL.Duration))
	inv.Status.ExpiresAt = &exp
}

// settled says what a sent or expired invitation waits for, and when to look again: at
// expiry, or when a waiting resend may go.
func (r *InvitationReconciler) settled(inv *rosterv1.Invitation) ctrl.Result {
	var after time.Duration
	if inv.Status.Phase == rosterv1.InvitationExpired {
		conclude(inv, stalled, false, rosterv1.ReasonExpired, "The link expired unused; raise spec.resendRequests to send a new one")
	}
	if inv.Spec.ResendRequests > inv.Status.ResendsHandled {
		after = r.resendWait(inv)
		msg := fmt.Sprintf("At most %d resends in %s; the next resend goes out in %s", maxResendsPerWindow, resendWindow, after.Round(time.Second))
		setCondition(inv, "ResendWaiting", metav1.ConditionTrue, rosterv1.ReasonResendLimit, msg)
		// A resend is on its way: Roster is still working, nothing waits for a person.
		setCondition(inv, rosterv1.ConditionReconciling, metav1.ConditionTrue, rosterv1.ReasonResendLimit, msg)
		meta.RemoveStatusCondition(&inv.Status.Conditions, rosterv1.ConditionStalled)
	} else {
		setCondition(inv, "ResendWaiting", metav1.ConditionFalse, "NoResendWaiting", "No resend is waiting")
	}
	if inv.Status.Phase == rosterv1.InvitationSent {
		if until := inv.Status.ExpiresAt.Sub(r.Clock.Now()); after == 0 || until < after {
			after = until
		}
	}
	if after <= 0 {
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: after + time.Second}
}

// ignoreResends marks resends of a finished invitation as handled, saying why they do
// nothing.
func (r *InvitationReconciler) ignoreResends(inv *rosterv1.Invitation) error {
	if inv.Spec.ResendRequests > inv.Status.ResendsHandled {
		inv.Status.ResendsHandled = inv.Spec.ResendRequests
		r.Recorder.Eventf(inv, nil, corev1.EventTypeWarning, "ResendIgnored", "Resend", "The invitation is %s; a resend changes nothing", inv.Status.Phase)
	}
	return nil
}

// fail ends the invitation with a reason and a message that says what to do instead.
func (r *InvitationReconciler) fail(inv *rosterv1.Invitation, reason rosterv1.InvitationFailureReason, msg string) {
	inv.Status.Phase = rosterv1.InvitationFailed
	inv.Status.Reason = reason
	inv.Status.ExpiresAt = nil
	condReason := string(reason)
	if condReason == "" {
		condReason = rosterv1.ReasonMemberConflict
	}
	conclude(inv, stalled, false, condReason, msg)
	r.Recorder.Eventf(inv, nil, corev1.EventTypeWarning, condReason, "Invite", "%s", msg)
}

// deliveryToken is the token the message of send gen carries. The first attempt makes a new
// one, and every earlier link stops working; it is kept in the invitation's Secret until
// the message is delivered, so that a retry, or a resend after a crash, carries the same
// link and a receiver that drops the duplicate keeps a link that works. The Secret is read
// past the cache: a stale copy would make a second token and kill the first.
func (r *InvitationReconciler) deliveryToken(ctx context.Context, inv *rosterv1.Invitation, gen int32) (string, error) {
	sec := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: tokenSecretName(inv)}, sec)
	if client.IgnoreNotFound(err) != nil {
		return "", err
	}
	if pending := string(sec.Data[linktoken.SecretKeyPending]); err == nil && pending != "" &&
		string(sec.Data[linktoken.SecretKeyGeneration]) == strconv.Itoa(int(gen)) &&
		linktoken.Matches(string(sec.Data[linktoken.SecretKeyHash]), pending) && metav1.IsControlledBy(sec, inv) {
		inv.Status.TokenSecretRef = &rosterv1.LocalObjectReference{Name: sec.Name}
		return pending, nil
	}
	token, hash, err := linktoken.New()
	if err != nil {
		return "", err
	}
	return token, r.storeToken(ctx, inv, hash, map[string]string{linktoken.SecretKeyPending: token}, gen)
}

// dropPendingToken removes the token kept for a delivery once it is over: in the pass that
// delivered it, before the invitation reads Sent, so that from then on only the hash is kept.
func (r *InvitationReconciler) dropPendingToken(ctx context.Context, inv *rosterv1.Invitation) error {
	sec := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: tokenSecretName(inv)}, sec); err != nil {
		return client.IgnoreNotFound(err)
	}
	if _, ok := sec.Data[linktoken.SecretKeyPending]; !ok {
		return nil
	}
	orig := sec.DeepCopy()
	delete(sec.Data, linktoken.SecretKeyPending)
	return client.IgnoreNotFound(r.Patch(ctx, sec, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})))
}

// issueLink makes the link for a Link invitation, once per send: the link is kept in the
// Secret for the admin to copy, so a pass that finds it already made keeps it.
func (r *InvitationReconciler) issueLink(ctx context.Context, inv *rosterv1.Invitation, org *rosterv1.Organization, gen int32) error {
	if _, err := r.tokenSecret(inv, gen).ensure(ctx, r.Client, func(token string) string { return r.link(org, token) }); err != nil {
		return err
	}
	inv.Status.TokenSecretRef = &rosterv1.LocalObjectReference{Name: tokenSecretName(inv)}
	return nil
}

// storeToken writes the token's hash, and what else must be kept with it (the link of a Link
// invitation for the admin to copy, or the token while its message is delivered), into the
// invitation's Secret, replacing the one before: the old link stops working.
func (r *InvitationReconciler) storeToken(ctx context.Context, inv *rosterv1.Invitation, hash string, keep map[string]string, gen int32) error {
	if err := r.tokenSecret(inv, gen).store(ctx, r.Client, hash, keep); err != nil {
		return err
	}
	inv.Status.TokenSecretRef = &rosterv1.LocalObjectReference{Name: tokenSecretName(inv)}
	return nil
}

// tokenSecret is the Secret of the invitation's link for send gen.
func (r *InvitationReconciler) tokenSecret(inv *rosterv1.Invitation, gen int32) linkSecret {
	return linkSecret{owner: inv, name: tokenSecretName(inv), labels: map[string]string{rosterv1.LabelInvitation: inv.Name},
		generation: strconv.Itoa(int(gen))}
}

// deleteToken removes the link once it was used: it is single-use.
func (r *InvitationReconciler) deleteToken(ctx context.Context, inv *rosterv1.Invitation) error {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: tokenSecretName(inv), Namespace: inv.Namespace}}
	if err := r.Delete(ctx, sec); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete used link token: %w", err)
	}
	inv.Status.TokenSecretRef = nil
	return nil
}

func tokenSecretName(inv *rosterv1.Invitation) string { return inv.Name + "-invitation-link" }

// link is the sign-up page address a token opens.
func (r *InvitationReconciler) link(org *rosterv1.Organization, token string) string {
	return linktoken.Link(portalURL(org, r.PortalURL), "invite", token)
}

// channelFor picks how an invitation reaches the person; "" for a Link invitation.
func channelFor(inv *rosterv1.Invitation, m *rosterv1.Member) (notify.Channel, notify.Recipient) {
	to := notify.Recipient{Name: m.Spec.DisplayName, Email: m.Spec.Email, Phone: m.Spec.Phone}
	switch inv.Spec.Method {
	case rosterv1.InvitationMethodEmail:
		return notify.ChannelEmail, to
	case rosterv1.InvitationMethodPhone:
		return notify.ChannelSMS, to
	case rosterv1.InvitationMethodContact:
		if to.Email != "" {
			return notify.ChannelEmail, to
		}
		if to.Phone != "" {
			return notify.ChannelSMS, to
		}
	}
	return "", to
}

// deliveryAdvice says what an admin can do about a delivery that failed for good.
func deliveryAdvice(err error, ch notify.Channel) string {
	if errors.Is(err, notify.ErrNotConfigured) {
		field := map[notify.Channel]string{notify.ChannelEmail: "email", notify.ChannelSMS: "sms", notify.ChannelWebhook: "webhook"}[ch]
		return fmt.Sprintf("the Organization has no %s channel; set spec.notifications.%s", ch, field)
	}
	return err.Error()
}

func templateFor(inv *rosterv1.Invitation, gen int32) notify.TemplateName {
	switch {
	case inv.Spec.Method == rosterv1.InvitationMethodPhone:
		return notify.TemplateInvitationSMS
	case gen > 0:
		return notify.TemplateInvitationResend
	}
	return notify.TemplateInvitationEmail
}

func recipientAddress(to notify.Recipient, ch notify.Channel) string {
	if ch == notify.ChannelSMS {
		return to.Phone
	}
	return to.Email
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func now(c clock.PassiveClock) *metav1.Time {
	t := metav1.NewTime(c.Now().UTC().Truncate(time.Second))
	return &t
}

// SetupWithManager watches Invitations, the Members and Secrets they own, and Organizations.
func (r *InvitationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&rosterv1.Invitation{}).
		Owns(&rosterv1.Member{}).
		Watches(&rosterv1.Organization{},
			handler.EnqueueRequestsFromMapFunc(requestsForOrganization(mgr.GetClient(), &rosterv1.InvitationList{})),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("invitation").
		Complete(r)
}
