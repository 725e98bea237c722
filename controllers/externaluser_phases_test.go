package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/notify"
)

func TestDecideExternalUser(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	app := &rosterv1.Application{Name: "support", License: rosterv1.License{Seats: 2}}
	approvalApp := &rosterv1.Application{Name: "support", Portal: rosterv1.Portal{SelfRegistration: true, ApprovalRequired: true}, License: rosterv1.License{Seats: 2}}
	teamApp := &rosterv1.Application{Name: "support", Portal: rosterv1.Portal{SelfRegistration: true}, RequireTeam: true, License: rosterv1.License{Seats: 2}}
	linked := rosterv1.ExternalUserStatus{LinkSecretRef: &rosterv1.LocalObjectReference{Name: "erin-portal-link"}}
	with := func(st rosterv1.ExternalUserStatus, f func(*rosterv1.ExternalUserStatus)) rosterv1.ExternalUserStatus {
		f(&st)
		return st
	}
	registeredAt := metav1.NewTime(now.Add(-time.Hour))
	cases := []struct {
		name      string
		facts     externalUserFacts
		phase     rosterv1.ExternalUserPhase
		progress  progress
		ready     bool
		reason    string
		issueLink bool
		queue     []notify.TemplateName
		regAt     *metav1.Time
	}{
		{name: "new, no email: a link is made", facts: externalUserFacts{App: app, LicenseActive: true},
			phase: rosterv1.ExternalUserInvited, progress: working, reason: rosterv1.ReasonIssuingLink, issueLink: true},
		{name: "new with email: link and invitation", facts: externalUserFacts{App: app, LicenseActive: true, Spec: rosterv1.ExternalUserSpec{Email: "e@x"}},
			phase: rosterv1.ExternalUserInvited, progress: working, reason: rosterv1.ReasonIssuingLink, issueLink: true, queue: []notify.TemplateName{notify.TemplateExternalInvitation}},
		{name: "invited, link made, invitation sent: settled", facts: externalUserFacts{UID: "u", App: app, LicenseActive: true, Spec: rosterv1.ExternalUserSpec{Email: "e@x"},
			Status: with(linked, func(s *rosterv1.ExternalUserStatus) {
				s.Deliveries = []rosterv1.Delivery{{Key: "u/external-invitation/0", State: DeliverySent}}
			})},
			phase: rosterv1.ExternalUserInvited, progress: settled, reason: rosterv1.ReasonInvited},
		{name: "link generation raised: a new link and a new invitation", facts: externalUserFacts{UID: "u", App: app, LicenseActive: true,
			Spec: rosterv1.ExternalUserSpec{Email: "e@x", Invitation: rosterv1.ExternalUserInvitation{LinkGeneration: 1}},
			Status: with(linked, func(s *rosterv1.ExternalUserStatus) {
				s.Deliveries = []rosterv1.Delivery{{Key: "u/external-invitation/0", State: DeliverySent}}
			})},
			phase: rosterv1.ExternalUserInvited, progress: working, reason: rosterv1.ReasonIssuingLink, issueLink: true, queue: []notify.TemplateName{notify.TemplateExternalInvitation}},
		{name: "a message under way: reconciling", facts: externalUserFacts{UID: "u", App: app, LicenseActive: true, Spec: rosterv1.ExternalUserSpec{Email: "e@x"},
			Status: with(linked, func(s *rosterv1.ExternalUserStatus) {
				s.Deliveries = []rosterv1.Delivery{{Key: "u/external-invitation/0", State: DeliverySending}}
			})},
			phase: rosterv1.ExternalUserInvited, progress: working, reason: rosterv1.ReasonSending},
		{name: "the newest message failed: stalled", facts: externalUserFacts{UID: "u", App: app, LicenseActive: true, Spec: rosterv1.ExternalUserSpec{Email: "e@x"},
			Status: with(linked, func(s *rosterv1.ExternalUserStatus) {
				s.Deliveries = []rosterv1.Delivery{{Key: "u/external-invitation/0", State: DeliveryFailed, Error: "no such mailbox"}}
			})},
			phase: rosterv1.ExternalUserInvited, progress: stalled, reason: string(rosterv1.ReasonDeliveryFailed)},
		{name: "verified with a seat: active, registered now", facts: externalUserFacts{App: app, LicenseActive: true, SeatGranted: true,
			Status: with(linked, func(s *rosterv1.ExternalUserStatus) { s.EmailVerified = true })},
			phase: rosterv1.ExternalUserActive, progress: settled, ready: true, reason: rosterv1.ReasonActive, regAt: &metav1.Time{Time: now}},
		{name: "registration time is kept", facts: externalUserFacts{App: app, LicenseActive: true, SeatGranted: true,
			Status: with(linked, func(s *rosterv1.ExternalUserStatus) { s.EmailVerified, s.RegisteredAt = true, &registeredAt })},
			phase: rosterv1.ExternalUserActive, progress: settled, ready: true, reason: rosterv1.ReasonActive, regAt: &registeredAt},
		{name: "approved by an admin without a seat: waiting", facts: externalUserFacts{App: app, LicenseActive: true,
			Spec: rosterv1.ExternalUserSpec{Approval: rosterv1.ApprovalApproved}, Status: linked},
			phase: rosterv1.ExternalUserWaitingForSeat, progress: settled, reason: rosterv1.ReasonWaitingForSeat, regAt: &metav1.Time{Time: now}},
		{name: "a seat label without an active license gives no seat: stalled", facts: externalUserFacts{App: app, SeatGranted: true,
			Spec: rosterv1.ExternalUserSpec{Approval: rosterv1.ApprovalApproved}, Status: linked},
			phase: rosterv1.ExternalUserWaitingForSeat, progress: stalled, reason: rosterv1.ReasonLicenseExpired, regAt: &metav1.Time{Time: now}},
		{name: "self-registered where approval is required", facts: externalUserFacts{App: approvalApp, LicenseActive: true, SeatGranted: true,
			Status: with(linked, func(s *rosterv1.ExternalUserStatus) { s.SelfRegistered = true })},
			phase: rosterv1.ExternalUserPendingApproval, progress: settled, reason: rosterv1.ReasonPendingApproval, regAt: &metav1.Time{Time: now}},
		{name: "self-registered where no approval is required", facts: externalUserFacts{App: app, LicenseActive: true, SeatGranted: true,
			Status: with(linked, func(s *rosterv1.ExternalUserStatus) { s.SelfRegistered = true })},
			phase: rosterv1.ExternalUserActive, progress: settled, ready: true, reason: rosterv1.ReasonActive, regAt: &metav1.Time{Time: now}},
		{name: "self-registered where a team is required: waits for an admin to give one", facts: externalUserFacts{App: teamApp, LicenseActive: true, SeatGranted: true,
			Status: with(linked, func(s *rosterv1.ExternalUserStatus) { s.SelfRegistered = true })},
			phase: rosterv1.ExternalUserPendingApproval, progress: settled, reason: rosterv1.ReasonPendingApproval, regAt: &metav1.Time{Time: now}},
		{name: "self-registered where a team is required, and given one: active", facts: externalUserFacts{App: teamApp, LicenseActive: true, SeatGranted: true,
			Spec:   rosterv1.ExternalUserSpec{Team: []rosterv1.TeamMember{{Member: "bob", Lead: true}}},
			Status: with(linked, func(s *rosterv1.ExternalUserStatus) { s.SelfRegistered = true })},
			phase: rosterv1.ExternalUserActive, progress: settled, ready: true, reason: rosterv1.ReasonActive, regAt: &metav1.Time{Time: now}},
		{name: "rejected", facts: externalUserFacts{App: approvalApp, LicenseActive: true,
			Spec: rosterv1.ExternalUserSpec{Approval: rosterv1.ApprovalRejected}, Status: with(linked, func(s *rosterv1.ExternalUserStatus) { s.SelfRegistered = true })},
			phase: rosterv1.ExternalUserRejected, progress: settled, ready: true, reason: rosterv1.ReasonRejected, regAt: &metav1.Time{Time: now}},
		{name: "locked wins over everything", facts: externalUserFacts{App: app, LicenseActive: true, SeatGranted: true,
			Spec: rosterv1.ExternalUserSpec{Access: rosterv1.ExternalAccessLocked, Approval: rosterv1.ApprovalApproved}, Status: linked},
			phase: rosterv1.ExternalUserLocked, progress: settled, ready: true, reason: rosterv1.ReasonLocked, regAt: &metav1.Time{Time: now}},
		{name: "no such application: stalled", facts: externalUserFacts{Status: linked},
			phase: rosterv1.ExternalUserInvited, progress: stalled, reason: rosterv1.ReasonApplicationNotFound},
		{name: "resend counters queue confirmation and welcome", facts: externalUserFacts{UID: "u", App: app, LicenseActive: true, SeatGranted: true,
			Spec: rosterv1.ExternalUserSpec{Email: "e@x", Approval: rosterv1.ApprovalApproved, ResendConfirmationRequests: 2, ResendWelcomeRequests: 1},
			Status: with(linked, func(s *rosterv1.ExternalUserStatus) {
				s.RegisteredAt, s.ConfirmationResendsHandled = &registeredAt, 1
			})},
			phase: rosterv1.ExternalUserActive, progress: working, reason: rosterv1.ReasonSending, regAt: &registeredAt,
			queue: []notify.TemplateName{notify.TemplateRegistrationConfirmation, notify.TemplateWelcome}},
		{name: "a confirmation resend for a confirmed address sends nothing", facts: externalUserFacts{UID: "u", App: app, LicenseActive: true, SeatGranted: true,
			Spec:   rosterv1.ExternalUserSpec{Email: "e@x", ResendConfirmationRequests: 1},
			Status: rosterv1.ExternalUserStatus{EmailVerified: true, RegisteredAt: &registeredAt}},
			phase: rosterv1.ExternalUserActive, progress: settled, ready: true, reason: rosterv1.ReasonActive, regAt: &registeredAt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.facts.Name, c.facts.Namespace = "erin", "ns"
			c.facts.TTL = 168 * time.Hour
			d := decideExternalUser(c.facts, now)
			if d.Phase != c.phase || d.Progress != c.progress || d.Ready != c.ready || d.Reason != c.reason || d.IssueLink != c.issueLink {
				t.Fatalf("got phase %s progress %d ready %v reason %s issueLink %v (%s); want %s %d %v %s %v",
					d.Phase, d.Progress, d.Ready, d.Reason, d.IssueLink, d.Message, c.phase, c.progress, c.ready, c.reason, c.issueLink)
			}
			var got []notify.TemplateName
			for _, q := range d.Queue {
				got = append(got, q.Template)
			}
			if len(got) != len(c.queue) || (len(got) > 0 && !equalTemplates(got, c.queue)) {
				t.Fatalf("queued %v, want %v", got, c.queue)
			}
			if (d.RegisteredAt == nil) != (c.regAt == nil) || (d.RegisteredAt != nil && !d.RegisteredAt.Equal(c.regAt)) {
				t.Fatalf("registeredAt %v, want %v", d.RegisteredAt, c.regAt)
			}
			if len(d.Groups) == 0 || d.Groups[len(d.Groups)-1] != rosterv1.SystemGroupExternalUsers {
				t.Fatalf("groups %v lack %s", d.Groups, rosterv1.SystemGroupExternalUsers)
			}
			if d.ConfirmationResendsHandled != c.facts.Spec.ResendConfirmationRequests && c.facts.Spec.ResendConfirmationRequests > c.facts.Status.ConfirmationResendsHandled {
				t.Fatalf("confirmation resends handled %d", d.ConfirmationResendsHandled)
			}
			if d.Message == "" {
				t.Fatal("no message")
			}
		})
	}
}

func equalTemplates(a, b []notify.TemplateName) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPlanSeats(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	past := metav1.NewTime(now.Add(-time.Hour))
	org := &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: rosterv1.OrganizationSpec{
		Applications: []rosterv1.Application{{Name: "a", License: rosterv1.License{Seats: 2}}, {Name: "b", License: rosterv1.License{Seats: 5, ExpiresAt: &past}}}}}
	xu := func(name, app string, age time.Duration, granted bool, phase rosterv1.ExternalUserPhase, mut ...func(*rosterv1.ExternalUser)) rosterv1.ExternalUser {
		x := rosterv1.ExternalUser{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-age))},
			Spec:   rosterv1.ExternalUserSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Application: app, Approval: rosterv1.ApprovalApproved},
			Status: rosterv1.ExternalUserStatus{Phase: phase}}
		if granted {
			x.Labels = map[string]string{rosterv1.LabelSeat: rosterv1.SeatGranted}
		}
		for _, m := range mut {
			m(&x)
		}
		return x
	}
	locked := func(x *rosterv1.ExternalUser) { x.Spec.Access = rosterv1.ExternalAccessLocked }
	names := func(xs []*rosterv1.ExternalUser) []string {
		var out []string
		for _, x := range xs {
			out = append(out, x.Name)
		}
		return out
	}
	cases := []struct {
		name          string
		users         []rosterv1.ExternalUser
		grant, revoke []string
	}{
		{"oldest first, then by name", []rosterv1.ExternalUser{xu("c", "a", time.Minute, false, ""), xu("b", "a", time.Hour, false, ""), xu("a", "a", time.Minute, false, "")},
			[]string{"b", "a"}, nil},
		{"holders keep their seats", []rosterv1.ExternalUser{xu("old", "a", time.Hour, false, ""), xu("x", "a", time.Minute, true, rosterv1.ExternalUserActive), xu("y", "a", time.Minute, true, rosterv1.ExternalUserActive)},
			nil, nil},
		{"a seat taken back still counts while its user is Active", []rosterv1.ExternalUser{xu("old", "a", time.Hour, false, ""), xu("x", "a", time.Minute, true, rosterv1.ExternalUserActive),
			xu("y", "a", time.Minute, false, rosterv1.ExternalUserActive, locked)}, nil, nil},
		{"a locked holder gives the seat back", []rosterv1.ExternalUser{xu("old", "a", time.Hour, false, ""), xu("x", "a", time.Minute, true, rosterv1.ExternalUserWaitingForSeat, locked)},
			[]string{"old"}, []string{"x"}},
		{"an unregistered user wants no seat", []rosterv1.ExternalUser{xu("n", "a", time.Hour, false, "", func(x *rosterv1.ExternalUser) { x.Spec.Approval = "" })}, nil, nil},
		{"more holders than seats: the newest give theirs back", []rosterv1.ExternalUser{xu("p", "a", 3*time.Hour, true, ""), xu("q", "a", 2*time.Hour, true, ""), xu("r", "a", time.Hour, true, "")},
			nil, []string{"r"}},
		{"an expired license takes every seat back", []rosterv1.ExternalUser{xu("e", "b", time.Hour, true, rosterv1.ExternalUserActive), xu("f", "b", time.Hour, false, "")}, nil, []string{"e"}},
		{"an unknown application takes the seat back", []rosterv1.ExternalUser{xu("g", "gone", time.Hour, true, "")}, nil, []string{"g"}},
		{"another organization's users are left alone", []rosterv1.ExternalUser{xu("h", "a", time.Hour, false, "", func(x *rosterv1.ExternalUser) { x.Spec.OrganizationRef.Name = "other" })}, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := planSeats(org, c.users, now)
			if g, r := names(p.grant), names(p.revoke); !equalStrings(g, c.grant) || !equalStrings(r, c.revoke) {
				t.Fatalf("grant %v revoke %v; want %v %v", g, r, c.grant, c.revoke)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestExternalUserLinkAndInactivity walks the individual link (issued with an expiry, expired
// at the exact instant, retired once used) and the inactivity policy (disabled and told at
// the edge, deleted later, reactivated) through decideExternalUser.
func TestExternalUserLinkAndInactivity(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	day := 24 * time.Hour
	app := &rosterv1.Application{Name: "support", License: rosterv1.License{Seats: 2}}
	idle := &rosterv1.Application{Name: "support", License: rosterv1.License{Seats: 2},
		Inactivity: &rosterv1.Inactivity{DisableAfter: &metav1.Duration{Duration: 90 * day}, DeleteAfter: &metav1.Duration{Duration: 180 * day}}}
	ref := &rosterv1.LocalObjectReference{Name: "erin-portal-link"}
	active := func(lastLogin time.Duration) rosterv1.ExternalUserStatus {
		return rosterv1.ExternalUserStatus{EmailVerified: true, RegisteredAt: at(-400 * day), SeatSince: at(-400 * day), LastLoginAt: at(-lastLogin)}
	}
	cases := []struct {
		name          string
		facts         externalUserFacts
		phase         rosterv1.ExternalUserPhase
		reason        string
		issue, retire bool
		expiresAt     *metav1.Time
		disabled      bool
		deleteUser    bool
		queue         []notify.TemplateName
		requeue       time.Duration
	}{
		{name: "a new link works for the TTL", facts: externalUserFacts{App: app},
			phase: rosterv1.ExternalUserInvited, reason: rosterv1.ReasonIssuingLink, issue: true, expiresAt: at(168 * time.Hour)},
		{name: "a live link is looked at again when it expires", facts: externalUserFacts{App: app,
			Status: rosterv1.ExternalUserStatus{LinkSecretRef: ref, LinkExpiresAt: at(time.Hour)}},
			phase: rosterv1.ExternalUserInvited, reason: rosterv1.ReasonInvited, expiresAt: at(time.Hour), requeue: time.Hour},
		{name: "a link expires at the exact instant", facts: externalUserFacts{App: app,
			Status: rosterv1.ExternalUserStatus{LinkSecretRef: ref, LinkExpiresAt: at(0)}},
			phase: rosterv1.ExternalUserInvited, reason: rosterv1.ReasonLinkExpired, expiresAt: at(0)},
		{name: "one second before, it still works", facts: externalUserFacts{App: app,
			Status: rosterv1.ExternalUserStatus{LinkSecretRef: ref, LinkExpiresAt: at(time.Second)}},
			phase: rosterv1.ExternalUserInvited, reason: rosterv1.ReasonInvited, expiresAt: at(time.Second), requeue: time.Second},
		{name: "an expired link is replaced when the generation is raised", facts: externalUserFacts{App: app,
			Spec:   rosterv1.ExternalUserSpec{Invitation: rosterv1.ExternalUserInvitation{LinkGeneration: 1}},
			Status: rosterv1.ExternalUserStatus{LinkSecretRef: ref, LinkExpiresAt: at(-time.Hour)}},
			phase: rosterv1.ExternalUserInvited, reason: rosterv1.ReasonIssuingLink, issue: true, expiresAt: at(168 * time.Hour)},
		{name: "a link made before links expired gets an expiry", facts: externalUserFacts{App: app,
			Status: rosterv1.ExternalUserStatus{LinkSecretRef: ref}},
			phase: rosterv1.ExternalUserInvited, reason: rosterv1.ReasonInvited, expiresAt: at(168 * time.Hour), requeue: 168 * time.Hour},
		{name: "a used link is retired", facts: externalUserFacts{App: app, SeatGranted: true, LicenseActive: true,
			Status: rosterv1.ExternalUserStatus{EmailVerified: true, LinkSecretRef: ref, LinkExpiresAt: at(time.Hour)}},
			phase: rosterv1.ExternalUserActive, reason: rosterv1.ReasonActive, retire: true},
		{name: "a used link is not made again when the generation is raised", facts: externalUserFacts{App: app, SeatGranted: true, LicenseActive: true,
			Spec:   rosterv1.ExternalUserSpec{Invitation: rosterv1.ExternalUserInvitation{LinkGeneration: 3}},
			Status: rosterv1.ExternalUserStatus{EmailVerified: true}},
			phase: rosterv1.ExternalUserActive, reason: rosterv1.ReasonActive},

		{name: "without an inactivity setting nobody is disabled", facts: externalUserFacts{App: app, SeatGranted: true, LicenseActive: true, Status: active(1000 * day)},
			phase: rosterv1.ExternalUserActive, reason: rosterv1.ReasonActive},
		{name: "inactive for a second less than disableAfter: still active", facts: externalUserFacts{App: idle, SeatGranted: true, LicenseActive: true, Status: active(90*day - time.Second)},
			phase: rosterv1.ExternalUserActive, reason: rosterv1.ReasonActive, requeue: time.Second},
		{name: "inactive for exactly disableAfter: disabled and told", facts: externalUserFacts{UID: "u", App: idle, SeatGranted: true, LicenseActive: true,
			Spec: rosterv1.ExternalUserSpec{Email: "e@x"}, Status: active(90 * day)},
			phase: rosterv1.ExternalUserDisabled, reason: rosterv1.ReasonSending, disabled: true, queue: []notify.TemplateName{notify.TemplateExternalDisabled}, requeue: 90 * day},
		{name: "a user who just got a seat after waiting is judged from now", facts: externalUserFacts{App: idle, SeatGranted: true, LicenseActive: true,
			Status: func() rosterv1.ExternalUserStatus { s := active(1000 * day); s.SeatSince = nil; return s }()},
			phase: rosterv1.ExternalUserActive, reason: rosterv1.ReasonActive, requeue: 90 * day},
		{name: "a user waiting for a seat is not judged by not signing in", facts: externalUserFacts{App: idle, LicenseActive: true, Status: active(1000 * day)},
			phase: rosterv1.ExternalUserWaitingForSeat, reason: rosterv1.ReasonWaitingForSeat},
		{name: "a disabled user is told once", facts: externalUserFacts{UID: "u", App: idle, SeatGranted: true, LicenseActive: true,
			Spec: rosterv1.ExternalUserSpec{Email: "e@x"},
			Status: func() rosterv1.ExternalUserStatus {
				s := active(100 * day)
				s.DisabledAt = at(-10 * day)
				s.Deliveries = []rosterv1.Delivery{{Key: "u/external-disabled/1", State: DeliverySent}}
				return s
			}()},
			phase: rosterv1.ExternalUserDisabled, reason: rosterv1.ReasonDisabledForInactivity, disabled: true, requeue: 80 * day},
		{name: "past deleteAfter a disabled user is deleted", facts: externalUserFacts{App: idle, SeatGranted: true, LicenseActive: true,
			Status: func() rosterv1.ExternalUserStatus { s := active(180 * day); s.DisabledAt = at(-90 * day); return s }()},
			phase: rosterv1.ExternalUserDisabled, reason: rosterv1.ReasonDisabledForInactivity, disabled: true, deleteUser: true},
		{name: "not deleted while the message telling them is under way", facts: externalUserFacts{App: idle,
			Status: func() rosterv1.ExternalUserStatus {
				s := active(200 * day)
				s.DisabledAt = at(-time.Minute)
				s.Deliveries = []rosterv1.Delivery{{Key: "u/external-disabled/1", State: DeliverySending}}
				return s
			}()},
			phase: rosterv1.ExternalUserDisabled, reason: rosterv1.ReasonSending, disabled: true},
		{name: "reactivation lets them in and the count starts over", facts: externalUserFacts{App: idle, SeatGranted: true, LicenseActive: true,
			Spec:   rosterv1.ExternalUserSpec{ReactivateRequests: 1},
			Status: func() rosterv1.ExternalUserStatus { s := active(100 * day); s.DisabledAt = at(-10 * day); return s }()},
			phase: rosterv1.ExternalUserActive, reason: rosterv1.ReasonActive, requeue: 90 * day},
		{name: "turning the setting off lets disabled users in", facts: externalUserFacts{App: app, SeatGranted: true, LicenseActive: true,
			Status: func() rosterv1.ExternalUserStatus { s := active(100 * day); s.DisabledAt = at(-10 * day); return s }()},
			phase: rosterv1.ExternalUserActive, reason: rosterv1.ReasonActive},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.facts.Name, c.facts.Namespace, c.facts.TTL = "erin", "ns", 168*time.Hour
			d := decideExternalUser(c.facts, now)
			if d.Phase != c.phase || d.Reason != c.reason {
				t.Fatalf("phase %s reason %s (%s); want %s %s", d.Phase, d.Reason, d.Message, c.phase, c.reason)
			}
			if d.IssueLink != c.issue || d.RetireLink != c.retire || d.Delete != c.deleteUser || (d.DisabledAt != nil) != c.disabled {
				t.Fatalf("issue %v retire %v delete %v disabled %v; want %v %v %v %v", d.IssueLink, d.RetireLink, d.Delete, d.DisabledAt != nil,
					c.issue, c.retire, c.deleteUser, c.disabled)
			}
			if c.expiresAt != nil && (d.LinkExpiresAt == nil || !d.LinkExpiresAt.Equal(c.expiresAt)) {
				t.Fatalf("link expires at %v, want %v", d.LinkExpiresAt, c.expiresAt)
			}
			var got []notify.TemplateName
			for _, q := range d.Queue {
				got = append(got, q.Template)
			}
			if len(got) != len(c.queue) || (len(got) > 0 && !equalTemplates(got, c.queue)) {
				t.Fatalf("queued %v, want %v", got, c.queue)
			}
			if d.RequeueAfter != c.requeue {
				t.Fatalf("requeue after %s, want %s", d.RequeueAfter, c.requeue)
			}
			if d.Message == "" {
				t.Fatal("no message")
			}
		})
	}
}
