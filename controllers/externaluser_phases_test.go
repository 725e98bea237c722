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
		{name: "rejected", facts: externalUserFacts{App: approvalApp, LicenseActive: true,
			Spec: rosterv1.ExternalUserSpec{Approval: rosterv1.ApprovalRejected}, Status: with(linked, func(s *rosterv1.ExternalUserStatus) { s.SelfRegistered = true })},
			phase: rosterv1.ExternalUserRejected, progress: settled, ready: true, reason: rosterv1.ReasonRejected, regAt: &metav1.Time{Time: now}},
		{name: "locked wins over everything", facts: externalUserFacts{App: app, LicenseActive: true, SeatGranted: true,
			Spec: rosterv1.ExternalUserSpec{Access: rosterv1.ExternalAccessLocked, Approval: rosterv1.ApprovalApproved}, Status: linked},
			phase: rosterv1.ExternalUserLocked, progress: settled, ready: true, reason: rosterv1.ReasonLocked, regAt: &metav1.Time{Time: now}},
		{name: "no such application: stalled", facts: externalUserFacts{Status: linked},
			phase: rosterv1.ExternalUserInvited, progress: stalled, reason: rosterv1.ReasonApplicationNotFound},
		{name: "resend counters queue confirmation and welcome", facts: externalUserFacts{UID: "u", App: app, LicenseActive: true, SeatGranted: true,
			Spec: rosterv1.ExternalUserSpec{Email: "e@x", ResendConfirmationRequests: 2, ResendWelcomeRequests: 1},
			Status: with(linked, func(s *rosterv1.ExternalUserStatus) {
				s.EmailVerified, s.RegisteredAt, s.ConfirmationResendsHandled = true, &registeredAt, 1
			})},
			phase: rosterv1.ExternalUserActive, progress: working, reason: rosterv1.ReasonSending, regAt: &registeredAt,
			queue: []notify.TemplateName{notify.TemplateRegistrationConfirmation, notify.TemplateWelcome}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.facts.Name, c.facts.Namespace = "erin", "ns"
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
