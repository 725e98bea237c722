package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	// Shard is the part of the organizations this manager reconciles; empty for all.
	Shard Shard
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Notifications send the invitations.
	Notifications
	// PortalURL is where links point when the Organization sets no spec.portalURL.
	PortalURL string
}

// Reconcile moves one invitation along: member, link, delivery, expiry, acceptance. It
// gathers the facts decideInvitation asks for, one at a time, does the steps it asks for,
// and writes the decision.
func (r *InvitationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	inv := &rosterv1.Invitation{}
	if err := r.Get(ctx, req.NamespacedName, inv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.Shard.Has(inv) {
		return ctrl.Result{}, nil // another shard's
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

	now := r.Clock.Now()
	f := invitationFacts{Name: inv.Name, Namespace: inv.Namespace, UID: string(inv.UID), Spec: inv.Spec, Status: *inv.Status.DeepCopy()}
	var (
		org *rosterv1.Organization
		d   invitationDecision
	)
	// Every way out writes the decision made so far, once: a step that fails leaves the
	// decision made before it in force.
	stop := func(res ctrl.Result, err error) (ctrl.Result, error) {
		r.apply(inv, d)
		return res, err
	}
	for {
		d = decideInvitation(f, now)
		switch d.Need {
		case needNothing:
			return stop(ctrl.Result{RequeueAfter: d.RequeueAfter}, nil)
		case needOrganization:
			org = &rosterv1.Organization{}
			err := r.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Spec.OrganizationRef.Name}, org)
			if client.IgnoreNotFound(err) != nil {
				return stop(ctrl.Result{}, fmt.Errorf("get organization %s: %w", inv.Spec.OrganizationRef.Name, err))
			}
			if err == nil && followShard(inv, org) {
				return ctrl.Result{}, nil // the Organization's shard takes it from here
			}
			f.Org = &invitationOrg{Found: err == nil, Deleting: err == nil && !org.DeletionTimestamp.IsZero(), TTL: org.Spec.InvitationTTL.Duration}
		case needMember:
			mf, err := r.lookupMember(ctx, inv)
			if err != nil {
				return stop(ctrl.Result{}, err)
			}
			f.Member = mf
		case needCurrent:
			ok, err := current(ctx, r.APIReader, inv)
			f.CurrentChecked, f.Current = true, ok && err == nil
			if err != nil {
				d = decideInvitation(f, now)
				return stop(ctrl.Result{RequeueAfter: d.RequeueAfter}, err)
			}
		case needConflict:
			reason, msg, err := membership.ConflictFor(ctx, r.Client, inv.Namespace, inv.UID, &inv.Spec)
			if err != nil {
				return stop(ctrl.Result{}, err)
			}
			f.ConflictChecked, f.Conflict, f.ConflictMessage = true, reason, msg
		case needAccount:
			account, err := r.account(ctx, inv.Namespace, inv.Spec.Invitee.Username)
			if err != nil {
				return stop(ctrl.Result{}, err)
			}
			f.AccountChecked, f.Account = true, account
		case needCreateMember:
			m, err := r.newMember(inv, f.Account)
			if err != nil {
				return stop(ctrl.Result{}, err)
			}
			if err := r.Create(ctx, m); err != nil {
				return stop(ctrl.Result{}, fmt.Errorf("create member: %w", err))
			}
			f.Member = &invitationMember{Member: m, Owned: true, Created: true}
		case needRelease:
			if err := r.release(ctx, inv, f.Member.Member); err != nil {
				return stop(ctrl.Result{}, err)
			}
			f.Released = true
		case needLink:
			if err := r.issueLink(ctx, inv, org, d.Gen); err != nil {
				return stop(ctrl.Result{}, err)
			}
			f.LinkIssued = true
		case needSend:
			s, res, err := r.send(ctx, inv, org, d)
			if s == nil {
				return stop(res, err)
			}
			f.Send = s
		case needDropToken:
			if err := r.dropPendingToken(ctx, inv); err != nil {
				return stop(ctrl.Result{}, err)
			}
			f.TokenDropped = true
		}
	}
}

// apply writes a decision into the invitation's status and conditions, records its events
// and its delivery.
func (r *InvitationReconciler) apply(inv *rosterv1.Invitation, d invitationDecision) {
	st := &inv.Status
	st.Phase, st.Reason, st.ResendsHandled = d.Phase, d.Reason, d.ResendsHandled
	st.ExpiresAt, st.SentAt, st.AcceptedAt = d.ExpiresAt, d.SentAt, d.AcceptedAt
	st.MemberRef, st.RequiresApproval = d.MemberRef, d.RequiresApproval
	if d.DropSending {
		var keep []rosterv1.Delivery
		for _, x := range st.Deliveries {
			if x.State != DeliverySending {
				keep = append(keep, x)
			}
		}
		st.Deliveries = keep
	}
	if d.RecordDelivery {
		r.outbox(r.Clock).record(&st.Deliveries, d.SendKey, d.Channel)
	}
	if d.Conclude {
		conclude(inv, d.Progress, d.Ready, d.CondReason, d.Message)
	}
	if d.Settled {
		if d.ResendWaiting != "" {
			setCondition(inv, "ResendWaiting", metav1.ConditionTrue, rosterv1.ReasonResendLimit, d.ResendWaiting)
			// A resend is on its way: Roster is still working, nothing waits for a person.
			setCondition(inv, rosterv1.ConditionReconciling, metav1.ConditionTrue, rosterv1.ReasonResendLimit, d.ResendWaiting)
			meta.RemoveStatusCondition(&inv.Status.Conditions, rosterv1.ConditionStalled)
		} else {
			setCondition(inv, "ResendWaiting", metav1.ConditionFalse, "NoResendWaiting", "No resend is waiting")
		}
	}
	for _, e := range d.Events {
		if e.Related != nil {
			r.Recorder.Eventf(inv, e.Related, e.Type, e.Reason, e.Action, "%s", e.Note)
		} else {
			r.Recorder.Eventf(inv, nil, e.Type, e.Reason, e.Action, "%s", e.Note)
		}
	}
}

// lookupMember finds the Member named after the invitation. When the cache has none but the
// invitation recorded one, it asks the API server before concluding it is gone: the cache
// may not have the Member this invitation made a moment ago.
func (r *InvitationReconciler) lookupMember(ctx context.Context, inv *rosterv1.Invitation) (*invitationMember, error) {
	m := &rosterv1.Member{}
	err := r.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Name}, m)
	if err == nil {
		return &invitationMember{Member: m, Owned: metav1.IsControlledBy(m, inv)}, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	if inv.Status.MemberRef == nil {
		return &invitationMember{}, nil
	}
	fresh := &rosterv1.Member{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Status.MemberRef.Name}, fresh); err == nil {
		return &invitationMember{InAPIServer: true}, nil
	} else if !apierrors.IsNotFound(err) {
		return nil, err
	}
	return &invitationMember{}, nil
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

// newMember is the Member an invitation makes, Inactivated. For a Contact invitation the
// person's name, email and phone come from their existing account (F3).
func (r *InvitationReconciler) newMember(inv *rosterv1.Invitation, account *rosterv1.Member) (*rosterv1.Member, error) {
	joinMethod := rosterv1.JoinMethodInvitation
	name, email, phone := inv.Spec.Invitee.Name, inv.Spec.Invitee.Email, inv.Spec.Invitee.Phone
	if inv.Spec.Method == rosterv1.InvitationMethodContact {
		joinMethod = rosterv1.JoinMethodContact
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
	// Born in the invitation's shard, so no other shard touches it; and with the labels the
	// Member controller mirrors, so that its first pass writes only the status.
	setLabels(m, map[string]string{rosterv1.LabelShard: inv.Labels[rosterv1.LabelShard]})
	syncLabels(m, membership.Phase(m))
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

// release lets the signed-up person's Member go: it no longer belongs to the invitation, so
// deleting the invitation keeps the member; and the link, single-use, is deleted.
func (r *InvitationReconciler) release(ctx context.Context, inv *rosterv1.Invitation, m *rosterv1.Member) error {
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
	return r.deleteToken(ctx, inv)
}

// expiring reports whether a sent invitation's link ran out.
func (r *InvitationReconciler) expiring(inv *rosterv1.Invitation) bool {
	return invitationExpiring(&inv.Status, r.Clock.Now())
}

// resendWait is how long the next resend must wait for the window to allow it.
func (r *InvitationReconciler) resendWait(inv *rosterv1.Invitation) time.Duration {
	return invitationResendWait(inv.Status.Deliveries, r.Clock.Now())
}

// send hands the current delivery of decision d to the person's channel, if it is due, with
// the link it carries. It returns the outcome, or nil and how the pass ends when it did not
// get as far as the channel.
func (r *InvitationReconciler) send(ctx context.Context, inv *rosterv1.Invitation, org *rosterv1.Organization, dec invitationDecision) (*invitationSend, ctrl.Result, error) {
	settings, err := notificationSettings(ctx, r.Client, org)
	if err != nil {
		return &invitationSend{SettingsError: err.Error()}, ctrl.Result{}, nil
	}
	box := r.outbox(r.Clock)
	if due, err := box.due(ctx, inv, dec.SendKey); err != nil || !due {
		// The cache is behind; the write that settled this delivery brings us back.
		return nil, ctrl.Result{RequeueAfter: time.Second}, err
	}
	var d *rosterv1.Delivery
	for i := range inv.Status.Deliveries {
		if inv.Status.Deliveries[i].Key == dec.SendKey {
			d = &inv.Status.Deliveries[i]
		}
	}
	if d == nil {
		return nil, ctrl.Result{RequeueAfter: time.Second}, nil
	}
	token, err := r.deliveryToken(ctx, inv, dec.Gen)
	if err != nil {
		return nil, ctrl.Result{}, err
	}
	msg := notify.Message{
		Key:      dec.SendKey,
		Template: templateFor(inv, dec.Gen),
		To:       dec.Recipient,
		Data: map[string]any{
			"OrganizationName": org.Spec.DisplayName,
			"InviteeName":      dec.Recipient.Name,
			"InvitedBy":        inv.Spec.InvitedBy,
			"Link":             r.link(org, token),
			"ExpiresAt":        r.Clock.Now().Add(org.Spec.InvitationTTL.Duration).UTC().Format(time.RFC1123),
		},
	}
	attempts := d.Attempts
	retry, permanent := box.send(ctx, d, settings, msg, inv.CreationTimestamp.Time)
	return &invitationSend{Attempted: d.Attempts != attempts, Retry: retry, Permanent: permanent, Attempts: d.Attempts, Error: d.Error,
		Deliveries: slices.Clone(inv.Status.Deliveries)}, ctrl.Result{}, nil
}

// deliveryToken is the token the message of send gen carries. The first attempt makes a new
// one, and every earlier link stops working; it is kept in the invitation's Secret until
// the message is delivered, so that a retry, or a resend after a crash, carries the same
// link and a receiver that drops the duplicate keeps a link that works. For a resend the
// Secret is read past the cache: a stale copy, still holding the send before, would make a
// second token and kill the first. The first send's token is the one the Secret was
// created with, so every copy of it that can be cached while that send is due holds the
// same token; a cache that has no copy yet makes the create fail, and the pass is retried.
func (r *InvitationReconciler) deliveryToken(ctx context.Context, inv *rosterv1.Invitation, gen int32) (string, error) {
	reader := r.APIReader
	if gen == 0 {
		reader = r.Client
	}
	sec := &corev1.Secret{}
	err := reader.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: tokenSecretName(inv)}, sec)
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

// dropPendingToken removes the token kept for a delivery once it is over: in the first pass
// that reads the invitation as Sent, so that from then on only the hash is kept. It reads
// the cache, as every later pass of a Sent invitation asks it again: a copy that still has
// the token is patched with its resourceVersion, and a copy that lags behind the write that
// added it comes back through the Secret's watch.
func (r *InvitationReconciler) dropPendingToken(ctx context.Context, inv *rosterv1.Invitation) error {
	sec := &corev1.Secret{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: tokenSecretName(inv)}, sec); err != nil {
		return client.IgnoreNotFound(err)
	}
	if _, ok := sec.Data[linktoken.SecretKeyPending]; !ok {
		return nil
	}
	if string(sec.Data[linktoken.SecretKeyGeneration]) != strconv.Itoa(int(inv.Status.ResendsHandled)) {
		return nil // a resend's token, which a copy of the invitation older than the resend must leave alone
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
