package controllers

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
	"github.com/roster-dev/roster/internal/notify"
)

// The Invitation controller gathers facts, decides on them with a pure function, then acts.
// decideInvitation reads no clock and no cluster. It looks at the facts in the order a pass
// learns them: where it needs one the reconciler has not gathered yet (the Organization, the
// Member, a fresh read, a send's outcome), it says so in Need, with everything decided up to
// there; the reconciler gathers or does that one thing and decides again. Every decision is
// made from the invitation as the pass read it, so deciding again repeats nothing.

// invitationNeed is the next fact a decision waits for.
type invitationNeed int

const (
	// needNothing: the decision is complete.
	needNothing invitationNeed = iota
	// needOrganization: look the Organization up.
	needOrganization
	// needMember: look the Member named after the invitation up (past the cache when the
	// invitation recorded one and the cache has none).
	needMember
	// needCurrent: read the invitation past the cache; something must happen only once.
	needCurrent
	// needConflict: look for people in the organization the invitation conflicts with.
	needConflict
	// needAccount: find the Contact invitation's account.
	needAccount
	// needCreateMember: create the Inactivated Member.
	needCreateMember
	// needRelease: the person signed up; release the Member and delete the used link.
	needRelease
	// needLink: make the Link invitation's link for the current send.
	needLink
	// needSend: send the current delivery, if it is due, and report the outcome.
	needSend
	// needDropToken: the status says the message was delivered; drop the token kept for it.
	needDropToken
)

// invitationFacts is everything decideInvitation looks at.
type invitationFacts struct {
	// Name, Namespace and UID identify the invitation (for messages and delivery keys).
	Name, Namespace, UID string
	Spec                 rosterv1.InvitationSpec
	// Status is the invitation's status as the pass read it.
	Status rosterv1.InvitationStatus

	// Org is the Organization; nil until looked up.
	Org *invitationOrg
	// Member is what is known about the invitation's Member; nil until looked up.
	Member *invitationMember
	// CurrentChecked tells that Current was read past the cache.
	CurrentChecked, Current bool
	// ConflictChecked tells that Conflict and ConflictMessage were looked for; a Conflict
	// of "" with a message is a conflict without a failure reason.
	ConflictChecked bool
	Conflict        rosterv1.InvitationFailureReason
	ConflictMessage string
	// AccountChecked tells that Account was looked for; Account is nil when there is none.
	AccountChecked bool
	Account        *rosterv1.Member
	// Released: the signed-up Member was released and the used link deleted.
	Released bool
	// LinkIssued: a Link invitation's link for the current send is in its Secret.
	LinkIssued bool
	// Send is the outcome of the send made in this pass; nil before.
	Send *invitationSend
	// TokenDropped: the token kept for the delivered message is gone.
	TokenDropped bool
}

// invitationOrg is what the decision needs of the Organization.
type invitationOrg struct {
	Found bool
	// Deleting: the Organization is being deleted, and the invitation with it.
	Deleting bool
	TTL      time.Duration
}

// invitationMember is what a pass learned about the Member named after the invitation.
type invitationMember struct {
	// Member is that Member; nil when there is none.
	Member *rosterv1.Member
	// Owned: the invitation controls the Member.
	Owned bool
	// Created: this pass created it.
	Created bool
	// InAPIServer: the cache has none, but the API server has the one status.memberRef names.
	InAPIServer bool
}

// invitationSend is the outcome of one send.
type invitationSend struct {
	// SettingsError says why the Organization's notification settings cannot be used; the
	// send was not tried.
	SettingsError string
	// Attempted: the channel took the message (it was not busy).
	Attempted bool
	// Retry is how long to wait before the next attempt; Permanent is a failure for good.
	Retry     time.Duration
	Permanent error
	// Attempts and Error are the delivery record's after the send.
	Attempts int32
	Error    string
	// Deliveries are the invitation's delivery records after the send.
	Deliveries []rosterv1.Delivery
}

// invitationEvent is an Event to record on the invitation.
type invitationEvent struct {
	Type, Reason, Action, Note string
	// Related is the Member the event is about, if any.
	Related *rosterv1.Member
}

// invitationDecision is what the controller writes and does.
type invitationDecision struct {
	// Need is the fact to gather, or the step to take, before deciding again.
	Need invitationNeed

	Phase                         rosterv1.InvitationPhase
	Reason                        rosterv1.InvitationFailureReason
	ExpiresAt, SentAt, AcceptedAt *metav1.Time
	ResendsHandled                int32
	MemberRef                     *rosterv1.LocalObjectReference
	RequiresApproval              bool
	Events                        []invitationEvent

	// Conclude asks for the kstatus summary Progress, Ready, Reason and Message.
	Conclude bool
	Progress progress
	Ready    bool
	Message  string
	// CondReason is the conditions' reason.
	CondReason string
	// Settled tells that the ResendWaiting condition is set: True with ResendWaiting as its
	// message when a resend waits for the window, False otherwise.
	Settled       bool
	ResendWaiting string

	// DropSending asks to drop the Sending delivery records: the first send, still under
	// way, became a resend.
	DropSending bool
	// Gen is the current send; SendKey its delivery key; Channel and Recipient where it goes.
	Gen       int32
	SendKey   string
	Channel   notify.Channel
	Recipient notify.Recipient
	// RecordDelivery asks to record a Sending delivery under SendKey.
	RecordDelivery bool
	// RequeueAfter is when to look again; zero for not at all.
	RequeueAfter time.Duration
}

// invitationExpiring reports whether a sent invitation's link ran out at now.
func invitationExpiring(st *rosterv1.InvitationStatus, now time.Time) bool {
	return st.Phase == rosterv1.InvitationSent && st.ExpiresAt != nil &&
		linkFacts{Issued: true, ExpiresAt: st.ExpiresAt}.stage(now) == linkExpired
}

// invitationResendWait is how long the next resend must wait for the window to allow it:
// at most maxResendsPerWindow resends (not the first send, not failed ones) in resendWindow.
func invitationResendWait(deliveries []rosterv1.Delivery, now time.Time) time.Duration {
	var recent []time.Time
	cutoff := now.Add(-resendWindow)
	for _, d := range deliveries {
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
	return oldest.Add(resendWindow).Sub(now)
}

func invitationSendKey(uid string, gen int32) string {
	return fmt.Sprintf("%s/invitation/%d", uid, gen)
}

// decideInvitation decides an invitation's phase, stamps, summary, events and next step
// from the gathered facts: member, link, delivery, expiry, resend, acceptance.
func decideInvitation(f invitationFacts, now time.Time) invitationDecision {
	st := f.Status
	d := invitationDecision{
		Phase: st.Phase, Reason: st.Reason, ResendsHandled: st.ResendsHandled,
		ExpiresAt: st.ExpiresAt, SentAt: st.SentAt, AcceptedAt: st.AcceptedAt,
		MemberRef: st.MemberRef, RequiresApproval: st.RequiresApproval,
	}
	if d.Phase == "" {
		d.Phase = rosterv1.InvitationPending
	}
	if d.Reason == rosterv1.ReasonDeliveryFailed && f.Spec.ResendRequests > d.ResendsHandled {
		// A resend after a failed delivery tries again with whatever was fixed.
		d.Phase, d.Reason = rosterv1.InvitationPending, ""
		d.ResendsHandled = f.Spec.ResendRequests
	}
	if d.Phase == rosterv1.InvitationFailed || d.Phase == rosterv1.InvitationAccepted {
		// Resends of a finished invitation are handled by saying why they do nothing.
		if f.Spec.ResendRequests > d.ResendsHandled {
			d.ResendsHandled = f.Spec.ResendRequests
			d.event(corev1.EventTypeWarning, "ResendIgnored", "Resend", fmt.Sprintf("The invitation is %s; a resend changes nothing", d.Phase), nil)
		}
		return d
	}

	if f.Org == nil {
		d.Need = needOrganization
		return d
	}
	if !f.Org.Found {
		d.conclude(stalled, false, rosterv1.ReasonOrganizationNotFound, fmt.Sprintf("Organization %q does not exist in namespace %s; create it or fix spec.organizationRef",
			f.Spec.OrganizationRef.Name, f.Namespace))
		return d
	}
	if f.Org.Deleting {
		// Nothing more goes out for an organization that is going away.
		d.conclude(working, false, rosterv1.ReasonOrganizationDeleting, fmt.Sprintf("Organization %q is being deleted; this invitation is deleted with it",
			f.Spec.OrganizationRef.Name))
		return d
	}

	m := d.member(f)
	if m == nil {
		return d
	}
	if m.Spec.Username != "" {
		// The person signed up with the link: the link is used up, and the Member no
		// longer belongs to the invitation, so deleting the invitation keeps the member.
		if !f.Released {
			d.Need = needRelease
			return d
		}
		d.Phase = rosterv1.InvitationAccepted
		d.AcceptedAt = m.Status.SignedUpAt
		if d.AcceptedAt == nil {
			d.AcceptedAt = stamp(now)
		}
		d.ExpiresAt = nil
		d.conclude(settled, true, rosterv1.ReasonAccepted, fmt.Sprintf("Accepted: the person signed up as Member %s", m.Name))
		d.event(corev1.EventTypeNormal, "Accepted", "Accept", fmt.Sprintf("The person signed up as Member %s", m.Name), m)
		return d
	}

	if invitationExpiring(&st, now) {
		// The Expired event happens once: act only on what the API server has.
		if !f.CurrentChecked {
			d.Need = needCurrent
			return d
		}
		if !f.Current {
			d.RequeueAfter = notCurrent.RequeueAfter
			return d
		}
		// The link ran out (F8); a resend revives it.
		d.Phase = rosterv1.InvitationExpired
		d.event(corev1.EventTypeNormal, "Expired", "Expire", "The invitation link expired unused", nil)
	}

	// The next requested resend starts unless this invitation already had
	// maxResendsPerWindow resends in the window; the request then waits.
	deliveries := st.Deliveries
	if f.Spec.ResendRequests > d.ResendsHandled && invitationResendWait(deliveries, now) <= 0 {
		switch d.Phase {
		case rosterv1.InvitationPending:
			if d.SentAt == nil {
				// Nothing went out yet: the first send, still under way, becomes the resend.
				// (With a resend under way, the next one waits for it.)
				d.ResendsHandled = f.Spec.ResendRequests
				d.DropSending = true
				deliveries = slices.DeleteFunc(slices.Clone(deliveries), func(x rosterv1.Delivery) bool { return x.State == DeliverySending })
			}
		case rosterv1.InvitationSent, rosterv1.InvitationExpired:
			d.ResendsHandled++
			d.Phase = rosterv1.InvitationPending
		}
	}
	if d.Phase == rosterv1.InvitationSent && st.Phase == rosterv1.InvitationSent && !f.TokenDropped {
		// The token kept for the delivered message goes once the status that says it was
		// delivered is written, not before: a pass that dropped it and then failed to write
		// the status (the API server gone, the manager killed) would send the message again
		// with a new token, and the link in the mail that arrived would be dead.
		d.Need = needDropToken
		return d
	}
	if d.Phase != rosterv1.InvitationPending {
		d.settle(f, deliveries, now)
		return d
	}

	// Pending: a fresh link for the current send, handed to the person's channel.
	d.Gen = d.ResendsHandled
	d.Channel, d.Recipient = channelFor(&rosterv1.Invitation{Spec: f.Spec}, m)
	if d.Channel == "" {
		// A Link invitation: the admin copies the link from its Secret.
		if !f.LinkIssued {
			d.Need = needLink
			return d
		}
		d.sent(f, now)
		secret := tokenSecretName(&rosterv1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: f.Name}})
		d.conclude(settled, true, rosterv1.ReasonLinkReady, fmt.Sprintf("The link is ready in Secret %s (key %q); pass it on to the person",
			secret, linktoken.SecretKeyLink))
		d.event(corev1.EventTypeNormal, rosterv1.ReasonLinkReady, "Issue", fmt.Sprintf("The link is ready in Secret %s (send %d)", secret, d.Gen+1), nil)
		d.settle(f, deliveries, now)
		return d
	}
	d.SendKey = invitationSendKey(f.UID, d.Gen)
	i := slices.IndexFunc(deliveries, func(x rosterv1.Delivery) bool { return x.Key == d.SendKey })
	if i < 0 {
		// Recorded first, sent once the record is written.
		d.RecordDelivery = true
		d.conclude(working, false, rosterv1.ReasonSending, "The invitation is being sent")
		d.RequeueAfter = time.Second
		return d
	}
	if deliveries[i].State == DeliveryFailed {
		return d
	}
	s := f.Send
	switch {
	case s == nil:
		d.Need = needSend
		return d
	case s.SettingsError != "":
		d.conclude(stalled, false, rosterv1.ReasonNotificationsMisconfigured, s.SettingsError)
		d.RequeueAfter = time.Minute
		return d
	case s.Retry > 0 && !s.Attempted:
		// The channel was busy and nothing was attempted; the same link goes next time.
		d.RequeueAfter = s.Retry
		return d
	case s.Permanent != nil:
		d.fail(rosterv1.ReasonDeliveryFailed, "The invitation could not be delivered: "+deliveryAdvice(s.Permanent, d.Channel)+
			". Fix it, then raise spec.resendRequests to send it again")
		return d
	case s.Retry > 0:
		d.conclude(working, false, rosterv1.ReasonDeliveryRetrying, fmt.Sprintf("Delivery failed (%s); retrying in %s", s.Error, s.Retry))
		d.event(corev1.EventTypeWarning, "DeliveryRetrying", "Send", fmt.Sprintf("Delivery attempt %d failed; retrying in %s", s.Attempts, s.Retry), nil)
		d.RequeueAfter = s.Retry
		return d
	}
	// Delivered. The token stays kept until the status says so (see needDropToken above).
	d.sent(f, now)
	d.conclude(settled, true, rosterv1.ReasonSent, fmt.Sprintf("Sent by %s to %s; the link works until %s", d.Channel, recipientAddress(d.Recipient, d.Channel),
		d.ExpiresAt.UTC().Format(time.RFC3339)))
	d.event(corev1.EventTypeNormal, "Sent", "Send", fmt.Sprintf("Invitation sent by %s (send %d)", d.Channel, d.Gen+1), nil)
	d.settle(f, s.Deliveries, now)
	return d
}

// member decides on the invitation's Member, Inactivated from the start: it holds the work
// details the admin gave and tells the Member controller how the person joins. Before it
// exists, an invitation for someone who already is in the organization fails with the
// reason (F7): the webhook refuses those, this catches what came past it. It returns the
// Member when the decision goes on.
func (d *invitationDecision) member(f invitationFacts) *rosterv1.Member {
	mf := f.Member
	if mf == nil {
		d.Need = needMember
		return nil
	}
	if m := mf.Member; m != nil {
		if mf.Created {
			// No Event: status.memberRef names it, and the invitation's next Event (Sent, or
			// why not) follows within the pass; every Event is a write to the API server.
			d.MemberRef = &rosterv1.LocalObjectReference{Name: m.Name}
			return m
		}
		if !mf.Owned && f.Status.MemberRef == nil {
			d.fail("", fmt.Sprintf("a Member named %s already exists and does not belong to this invitation; use another name for the Invitation", f.Name))
			return nil
		}
		d.MemberRef = &rosterv1.LocalObjectReference{Name: m.Name}
		d.RequiresApproval = m.Status.RequiresApproval
		return m
	}
	if ref := f.Status.MemberRef; ref != nil {
		if mf.InAPIServer {
			return nil // the watch brings the Member into the cache, and us back
		}
		// The member went away after the invitation made it: an admin deleted it. Nothing
		// can be accepted any more.
		d.fail("", fmt.Sprintf("Member %s of this invitation was deleted; delete the invitation and invite again", ref.Name))
		return nil
	}
	switch {
	case !f.CurrentChecked:
		d.Need = needCurrent
	case !f.Current:
		// A stale copy; the pending write brings the invitation back.
	case !f.ConflictChecked:
		d.Need = needConflict
	case f.Conflict != "" || f.ConflictMessage != "":
		d.fail(f.Conflict, f.ConflictMessage)
	case f.Spec.Method == rosterv1.InvitationMethodContact && !f.AccountChecked:
		d.Need = needAccount
	case f.Spec.Method == rosterv1.InvitationMethodContact && f.Account == nil:
		d.conclude(stalled, false, rosterv1.ReasonAccountNotFound, fmt.Sprintf("No account with username %q in namespace %s; invite them by email or phone instead",
			f.Spec.Invitee.Username, f.Namespace))
	default:
		d.Need = needCreateMember
	}
	return nil
}

// sent stamps a (re)sent invitation.
func (d *invitationDecision) sent(f invitationFacts, now time.Time) {
	d.Phase = rosterv1.InvitationSent
	d.SentAt = stamp(now)
	d.ExpiresAt = linkExpiry(now, f.Org.TTL)
}

// settle says what a sent or expired invitation waits for, and when to look again: at
// expiry, or when a waiting resend may go.
func (d *invitationDecision) settle(f invitationFacts, deliveries []rosterv1.Delivery, now time.Time) {
	var after time.Duration
	if d.Phase == rosterv1.InvitationExpired {
		d.conclude(stalled, false, rosterv1.ReasonExpired, "The link expired unused; raise spec.resendRequests to send a new one")
	}
	d.Settled = true
	if f.Spec.ResendRequests > d.ResendsHandled {
		after = invitationResendWait(deliveries, now)
		d.ResendWaiting = fmt.Sprintf("At most %d resends in %s; the next resend goes out in %s", maxResendsPerWindow, resendWindow, after.Round(time.Second))
	}
	if d.Phase == rosterv1.InvitationSent {
		if until := d.ExpiresAt.Sub(now); after == 0 || until < after {
			after = until
		}
	}
	if after > 0 {
		d.RequeueAfter = after + time.Second
	}
}

// fail ends the invitation with a reason and a message that says what to do instead.
func (d *invitationDecision) fail(reason rosterv1.InvitationFailureReason, msg string) {
	d.Phase = rosterv1.InvitationFailed
	d.Reason = reason
	d.ExpiresAt = nil
	condReason := string(reason)
	if condReason == "" {
		condReason = rosterv1.ReasonMemberConflict
	}
	d.conclude(stalled, false, condReason, msg)
	d.event(corev1.EventTypeWarning, condReason, "Invite", msg, nil)
}

func (d *invitationDecision) conclude(p progress, ok bool, reason, msg string) {
	d.Conclude, d.Progress, d.Ready, d.CondReason, d.Message = true, p, ok, reason, msg
}

func (d *invitationDecision) event(typ, reason, action, note string, related *rosterv1.Member) {
	d.Events = append(d.Events, invitationEvent{Type: typ, Reason: reason, Action: action, Note: note, Related: related})
}

// stamp is a status time: UTC, whole seconds.
func stamp(t time.Time) *metav1.Time {
	m := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &m
}
