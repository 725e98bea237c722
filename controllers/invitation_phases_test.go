package controllers

import (
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/notify"
)

func TestDecideInvitation(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { m := metav1.NewTime(now.Add(d)); return &m }
	ttl := 72 * time.Hour
	org := &invitationOrg{Found: true, TTL: ttl}
	email := rosterv1.InvitationSpec{Method: rosterv1.InvitationMethodEmail, OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}}
	link := rosterv1.InvitationSpec{Method: rosterv1.InvitationMethodLink}
	contact := rosterv1.InvitationSpec{Method: rosterv1.InvitationMethodContact, Invitee: rosterv1.Invitee{Username: "ann"}}
	resend := func(s rosterv1.InvitationSpec, n int32) rosterv1.InvitationSpec { s.ResendRequests = n; return s }
	ref := &rosterv1.LocalObjectReference{Name: "ann"}
	member := &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "ann"}, Spec: rosterv1.MemberSpec{Email: "ann@x", DisplayName: "Ann"}}
	owned := &invitationMember{Member: member, Owned: true}
	signedUp := &invitationMember{Member: &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "ann"}, Spec: rosterv1.MemberSpec{Username: "ann"},
		Status: rosterv1.MemberStatus{SignedUpAt: at(-time.Minute)}}, Owned: true}
	sending := func(gen string) []rosterv1.Delivery {
		return []rosterv1.Delivery{{Key: "uid/invitation/" + gen, State: DeliverySending, Channel: "email", At: at(0)}}
	}
	sentStatus := rosterv1.InvitationStatus{Phase: rosterv1.InvitationSent, MemberRef: ref, SentAt: at(-time.Hour), ExpiresAt: at(time.Hour)}
	expiredAtNow := rosterv1.InvitationStatus{Phase: rosterv1.InvitationSent, MemberRef: ref, SentAt: at(-ttl), ExpiresAt: at(0)}
	// Three resends in the window (the first send, /0, never counts).
	full := []rosterv1.Delivery{
		{Key: "uid/invitation/1", State: DeliverySent, At: at(-5 * time.Minute)},
		{Key: "uid/invitation/2", State: DeliverySent, At: at(-4 * time.Minute)},
		{Key: "uid/invitation/3", State: DeliverySent, At: at(-3 * time.Minute)},
	}
	withStatus := func(st rosterv1.InvitationStatus, f func(*rosterv1.InvitationStatus)) rosterv1.InvitationStatus {
		f(&st)
		return st
	}
	base := func(spec rosterv1.InvitationSpec, st rosterv1.InvitationStatus) invitationFacts {
		return invitationFacts{Name: "ann", Namespace: "ns", UID: "uid", Spec: spec, Status: st, Org: org, Member: owned,
			CurrentChecked: true, Current: true, TokenDropped: true}
	}
	with := func(f invitationFacts, g func(*invitationFacts)) invitationFacts { g(&f); return f }

	cases := []struct {
		name     string
		facts    invitationFacts
		now      time.Time
		need     invitationNeed
		phase    rosterv1.InvitationPhase
		reason   string // the conditions' reason; "" when the decision leaves them alone
		progress progress
		ready    bool
		handled  int32
		events   []string
		requeue  time.Duration
		record   bool
		drop     bool
		waiting  bool // a resend waits for the window
	}{
		{name: "new: the Organization is looked up first", facts: invitationFacts{Spec: email},
			need: needOrganization, phase: rosterv1.InvitationPending},
		{name: "no Organization: stalled", facts: invitationFacts{Spec: email, Org: &invitationOrg{}},
			phase: rosterv1.InvitationPending, reason: rosterv1.ReasonOrganizationNotFound, progress: stalled},
		{name: "the Organization being deleted: nothing more is done or sent", facts: invitationFacts{Spec: email, Org: &invitationOrg{Found: true, Deleting: true, TTL: time.Hour}},
			phase: rosterv1.InvitationPending, reason: rosterv1.ReasonOrganizationDeleting, progress: working},
		{name: "then the Member", facts: invitationFacts{Spec: email, Org: org},
			need: needMember, phase: rosterv1.InvitationPending},
		{name: "no Member yet: a fresh read before making one", facts: invitationFacts{Spec: email, Org: org, Member: &invitationMember{}},
			need: needCurrent, phase: rosterv1.InvitationPending},
		{name: "a stale copy makes nothing", facts: invitationFacts{Spec: email, Org: org, Member: &invitationMember{}, CurrentChecked: true},
			phase: rosterv1.InvitationPending},
		{name: "current: conflicts are looked for", facts: invitationFacts{Spec: email, Org: org, Member: &invitationMember{}, CurrentChecked: true, Current: true},
			need: needConflict, phase: rosterv1.InvitationPending},
		{name: "a conflict fails the invitation (F7)", facts: invitationFacts{Spec: email, Org: org, Member: &invitationMember{}, CurrentChecked: true, Current: true,
			ConflictChecked: true, Conflict: rosterv1.ReasonAlreadyMember, ConflictMessage: "already a member"},
			phase: rosterv1.InvitationFailed, reason: string(rosterv1.ReasonAlreadyMember), progress: stalled, events: []string{string(rosterv1.ReasonAlreadyMember)}},
		{name: "no conflict: the Member is made", facts: invitationFacts{Spec: email, Org: org, Member: &invitationMember{}, CurrentChecked: true, Current: true, ConflictChecked: true},
			need: needCreateMember, phase: rosterv1.InvitationPending},
		{name: "Contact: the account is looked for", facts: invitationFacts{Spec: contact, Org: org, Member: &invitationMember{}, CurrentChecked: true, Current: true, ConflictChecked: true},
			need: needAccount, phase: rosterv1.InvitationPending},
		{name: "Contact without an account: stalled", facts: invitationFacts{Spec: contact, Org: org, Member: &invitationMember{}, CurrentChecked: true, Current: true,
			ConflictChecked: true, AccountChecked: true},
			phase: rosterv1.InvitationPending, reason: rosterv1.ReasonAccountNotFound, progress: stalled},
		{name: "a Member of the name that is someone else's", facts: with(base(email, rosterv1.InvitationStatus{}), func(f *invitationFacts) {
			f.Member = &invitationMember{Member: member}
		}), phase: rosterv1.InvitationFailed, reason: rosterv1.ReasonMemberConflict, progress: stalled, events: []string{rosterv1.ReasonMemberConflict}},
		{name: "the invitation's Member not yet in the cache: wait", facts: with(base(email, rosterv1.InvitationStatus{MemberRef: ref}), func(f *invitationFacts) {
			f.Member = &invitationMember{InAPIServer: true}
		}), phase: rosterv1.InvitationPending},
		{name: "the invitation's Member was deleted", facts: with(base(email, rosterv1.InvitationStatus{MemberRef: ref}), func(f *invitationFacts) {
			f.Member = &invitationMember{}
		}), phase: rosterv1.InvitationFailed, reason: rosterv1.ReasonMemberConflict, progress: stalled, events: []string{rosterv1.ReasonMemberConflict}},
		{name: "Member created: the send is recorded first", facts: with(base(email, rosterv1.InvitationStatus{}), func(f *invitationFacts) {
			f.Member = &invitationMember{Member: member, Owned: true, Created: true}
		}), phase: rosterv1.InvitationPending, reason: rosterv1.ReasonSending, progress: working, requeue: time.Second, record: true},
		{name: "recorded: sent once due", facts: base(email, rosterv1.InvitationStatus{MemberRef: ref, Deliveries: sending("0")}),
			need: needSend, phase: rosterv1.InvitationPending},
		{name: "a failed record waits for a resend", facts: base(email, rosterv1.InvitationStatus{MemberRef: ref,
			Deliveries: []rosterv1.Delivery{{Key: "uid/invitation/0", State: DeliveryFailed}}}),
			phase: rosterv1.InvitationPending},
		{name: "notification settings unusable", facts: with(base(email, rosterv1.InvitationStatus{MemberRef: ref, Deliveries: sending("0")}), func(f *invitationFacts) {
			f.Send = &invitationSend{SettingsError: "bad"}
		}), phase: rosterv1.InvitationPending, reason: rosterv1.ReasonNotificationsMisconfigured, progress: stalled, requeue: time.Minute},
		{name: "a busy channel: the same link goes later", facts: with(base(email, rosterv1.InvitationStatus{MemberRef: ref, Deliveries: sending("0")}), func(f *invitationFacts) {
			f.Send = &invitationSend{Retry: 3 * time.Second}
		}), phase: rosterv1.InvitationPending, requeue: 3 * time.Second},
		{name: "a transient failure is retried", facts: with(base(email, rosterv1.InvitationStatus{MemberRef: ref, Deliveries: sending("0")}), func(f *invitationFacts) {
			f.Send = &invitationSend{Attempted: true, Retry: 5 * time.Second, Attempts: 1, Error: "timeout"}
		}), phase: rosterv1.InvitationPending, reason: rosterv1.ReasonDeliveryRetrying, progress: working, events: []string{"DeliveryRetrying"}, requeue: 5 * time.Second},
		{name: "a permanent failure fails it", facts: with(base(email, rosterv1.InvitationStatus{MemberRef: ref, Deliveries: sending("0")}), func(f *invitationFacts) {
			f.Send = &invitationSend{Attempted: true, Permanent: notify.ErrNotConfigured}
		}), phase: rosterv1.InvitationFailed, reason: string(rosterv1.ReasonDeliveryFailed), progress: stalled, events: []string{string(rosterv1.ReasonDeliveryFailed)}},
		{name: "delivered: Sent until the link expires, the kept token still kept", facts: with(base(email, rosterv1.InvitationStatus{MemberRef: ref, Deliveries: sending("0")}), func(f *invitationFacts) {
			f.Send = &invitationSend{Attempted: true}
		}), phase: rosterv1.InvitationSent, reason: rosterv1.ReasonSent, ready: true, events: []string{"Sent"}, requeue: ttl + time.Second},
		{name: "sent: the kept token goes once the status says Sent", facts: with(base(email, sentStatus), func(f *invitationFacts) { f.TokenDropped = false }),
			need: needDropToken, phase: rosterv1.InvitationSent},
		{name: "Link: the link is made", facts: base(link, rosterv1.InvitationStatus{MemberRef: ref}),
			need: needLink, phase: rosterv1.InvitationPending},
		{name: "Link: ready", facts: with(base(link, rosterv1.InvitationStatus{MemberRef: ref}), func(f *invitationFacts) { f.LinkIssued = true }),
			phase: rosterv1.InvitationSent, reason: rosterv1.ReasonLinkReady, ready: true, events: []string{rosterv1.ReasonLinkReady}, requeue: ttl + time.Second},
		{name: "sent, before expiry: look again at expiry", facts: base(email, sentStatus),
			phase: rosterv1.InvitationSent, requeue: time.Hour + time.Second},
		{name: "expiry at the exact instant of expiresAt needs a fresh read", facts: with(base(email, expiredAtNow), func(f *invitationFacts) { f.CurrentChecked = false }),
			need: needCurrent, phase: rosterv1.InvitationSent},
		{name: "expiry on a stale copy waits", facts: with(base(email, expiredAtNow), func(f *invitationFacts) { f.Current = false }),
			phase: rosterv1.InvitationSent, requeue: time.Second},
		{name: "expired at the exact instant of expiresAt (F8)", facts: base(email, expiredAtNow),
			phase: rosterv1.InvitationExpired, reason: rosterv1.ReasonExpired, progress: stalled, events: []string{"Expired"}},
		{name: "a nanosecond before expiresAt it is still sent", facts: base(email, expiredAtNow), now: now.Add(-time.Nanosecond),
			phase: rosterv1.InvitationSent, requeue: time.Nanosecond + time.Second},
		{name: "a resend revives an expired invitation", facts: base(resend(email, 1), expiredAtNow),
			phase: rosterv1.InvitationPending, reason: rosterv1.ReasonSending, progress: working, handled: 1, events: []string{"Expired"}, requeue: time.Second, record: true},
		{name: "a resend of a sent invitation", facts: base(resend(email, 1), sentStatus),
			phase: rosterv1.InvitationPending, reason: rosterv1.ReasonSending, progress: working, handled: 1, requeue: time.Second, record: true},
		{name: "a resend beyond the window's limit waits", facts: base(resend(email, 4), withStatus(sentStatus, func(s *rosterv1.InvitationStatus) {
			s.ResendsHandled, s.Deliveries = 3, full
		})), phase: rosterv1.InvitationSent, reason: rosterv1.ReasonResendLimit, handled: 3, requeue: 5*time.Minute + time.Second, waiting: true},
		{name: "expired, its resend waiting for the window", facts: base(resend(email, 4), withStatus(expiredAtNow, func(s *rosterv1.InvitationStatus) {
			s.ResendsHandled, s.Deliveries = 3, full
		})), phase: rosterv1.InvitationExpired, reason: rosterv1.ReasonExpired, progress: stalled, handled: 3, events: []string{"Expired"},
			requeue: 5*time.Minute + time.Second, waiting: true},
		{name: "a resend at the window's edge goes", facts: base(resend(email, 4), withStatus(sentStatus, func(s *rosterv1.InvitationStatus) {
			s.ResendsHandled, s.Deliveries = 3, full
		})), now: now.Add(5 * time.Minute),
			phase: rosterv1.InvitationPending, reason: rosterv1.ReasonSending, progress: working, handled: 4, requeue: time.Second, record: true},
		{name: "a resend before the first send went out takes its place", facts: base(resend(email, 1), rosterv1.InvitationStatus{MemberRef: ref, Deliveries: sending("0")}),
			phase: rosterv1.InvitationPending, reason: rosterv1.ReasonSending, progress: working, handled: 1, requeue: time.Second, record: true, drop: true},
		{name: "a resend while a resend is under way waits for it", facts: base(resend(email, 2), rosterv1.InvitationStatus{MemberRef: ref, SentAt: at(-time.Hour),
			ResendsHandled: 1, Deliveries: sending("1")}),
			need: needSend, phase: rosterv1.InvitationPending, handled: 1},
		{name: "a resend revives a failed delivery", facts: base(resend(email, 1), rosterv1.InvitationStatus{Phase: rosterv1.InvitationFailed, Reason: rosterv1.ReasonDeliveryFailed,
			MemberRef: ref, Deliveries: []rosterv1.Delivery{{Key: "uid/invitation/0", State: DeliveryFailed}}}),
			phase: rosterv1.InvitationPending, reason: rosterv1.ReasonSending, progress: working, handled: 1, requeue: time.Second, record: true},
		{name: "a resend of an otherwise failed invitation is ignored", facts: invitationFacts{Spec: resend(email, 2), Status: rosterv1.InvitationStatus{Phase: rosterv1.InvitationFailed}},
			phase: rosterv1.InvitationFailed, handled: 2, events: []string{"ResendIgnored"}},
		{name: "a resend of an accepted invitation is ignored", facts: invitationFacts{Spec: resend(email, 1), Status: rosterv1.InvitationStatus{Phase: rosterv1.InvitationAccepted}},
			phase: rosterv1.InvitationAccepted, handled: 1, events: []string{"ResendIgnored"}},
		{name: "signed up: the Member is released", facts: with(base(email, sentStatus), func(f *invitationFacts) { f.Member = signedUp }),
			need: needRelease, phase: rosterv1.InvitationSent},
		{name: "accepted", facts: with(base(email, sentStatus), func(f *invitationFacts) { f.Member, f.Released = signedUp, true }),
			phase: rosterv1.InvitationAccepted, reason: rosterv1.ReasonAccepted, ready: true, events: []string{"Accepted"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			when := now
			if !c.now.IsZero() {
				when = c.now
			}
			d := decideInvitation(c.facts, when)
			var events []string
			for _, e := range d.Events {
				events = append(events, e.Reason)
			}
			reason := ""
			if d.Conclude {
				reason = d.CondReason
			}
			if d.ResendWaiting != "" && reason == "" {
				reason = rosterv1.ReasonResendLimit
			}
			type view struct {
				Need     invitationNeed
				Phase    rosterv1.InvitationPhase
				Reason   string
				Progress progress
				Ready    bool
				Handled  int32
				Events   string
				Requeue  time.Duration
				Record   bool
				Drop     bool
				Waiting  bool
			}
			got := view{d.Need, d.Phase, reason, d.Progress, d.Ready, d.ResendsHandled, fmtList(events), d.RequeueAfter, d.RecordDelivery, d.DropSending, d.ResendWaiting != ""}
			want := view{c.need, c.phase, c.reason, c.progress, c.ready, c.handled, fmtList(c.events), c.requeue, c.record, c.drop, c.waiting}
			if got != want {
				t.Errorf("\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// The stamps and messages a decision writes.
func TestDecideInvitationStamps(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	ttl := time.Hour
	f := invitationFacts{Name: "ann", Namespace: "ns", UID: "uid", Spec: rosterv1.InvitationSpec{Method: rosterv1.InvitationMethodEmail},
		Status: rosterv1.InvitationStatus{Deliveries: []rosterv1.Delivery{{Key: "uid/invitation/0", State: DeliverySending}}},
		Org:    &invitationOrg{Found: true, TTL: ttl}, Member: &invitationMember{Member: &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "ann"},
			Spec: rosterv1.MemberSpec{Email: "ann@x"}}, Owned: true},
		CurrentChecked: true, Current: true, Send: &invitationSend{Attempted: true}, TokenDropped: true}
	d := decideInvitation(f, now)
	sentAt := now.Truncate(time.Second)
	if !d.SentAt.Equal(&metav1.Time{Time: sentAt}) || !d.ExpiresAt.Time.Equal(sentAt.Add(ttl)) {
		t.Errorf("stamps: sentAt %v expiresAt %v", d.SentAt, d.ExpiresAt)
	}
	if want := "Sent by email to ann@x; the link works until 2030-01-02T04:04:05Z"; d.Message != want {
		t.Errorf("message %q, want %q", d.Message, want)
	}
	if d.MemberRef == nil || d.MemberRef.Name != "ann" {
		t.Errorf("memberRef %v", d.MemberRef)
	}

	f.Spec.Method, f.Send, f.LinkIssued = rosterv1.InvitationMethodLink, nil, true
	d = decideInvitation(f, now)
	if want := `The link is ready in Secret ann-invitation-link (key "link"); pass it on to the person`; d.Message != want {
		t.Errorf("link message %q, want %q", d.Message, want)
	}

	f.Spec.Method = rosterv1.InvitationMethodEmail
	f.Send = &invitationSend{Attempted: true, Permanent: errors.New("no such mailbox")}
	d = decideInvitation(f, now)
	if want := "The invitation could not be delivered: no such mailbox. Fix it, then raise spec.resendRequests to send it again"; d.Message != want || d.ExpiresAt != nil {
		t.Errorf("failed: message %q expiresAt %v", d.Message, d.ExpiresAt)
	}

	f.Send, f.Member = nil, &invitationMember{Member: &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "ann"}, Spec: rosterv1.MemberSpec{Username: "ann"}}, Owned: true}
	f.Released = true
	f.Status.ExpiresAt = &metav1.Time{Time: now.Add(time.Hour)}
	d = decideInvitation(f, now)
	if d.AcceptedAt == nil || !d.AcceptedAt.Time.Equal(now.Truncate(time.Second)) || d.ExpiresAt != nil {
		t.Errorf("accepted without signedUpAt: acceptedAt %v expiresAt %v", d.AcceptedAt, d.ExpiresAt)
	}
}

func fmtList(s []string) string {
	out := ""
	for _, x := range s {
		out += x + ","
	}
	return out
}
