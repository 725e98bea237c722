package controllers

import (
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/notify"
)

// The ExternalUser controller gathers facts, decides on them with a pure function, then acts.
// decideExternalUser reads no clock and no cluster, so every rule here is table-tested
// without a server.

// externalUserFacts is everything decideExternalUser looks at.
type externalUserFacts struct {
	// Name, Namespace and UID identify the ExternalUser (for messages and delivery keys).
	Name, Namespace, UID string
	Spec                 rosterv1.ExternalUserSpec
	Status               rosterv1.ExternalUserStatus
	// App is the Organization's application the user belongs to; nil when it has none of
	// that name.
	App *rosterv1.Application
	// LicenseActive is true when the application's license has seats and has not expired.
	LicenseActive bool
	// SeatGranted is the seat allocator's decision (the LabelSeat label).
	SeatGranted bool
	// TTL is how long a new individual link works: the Organization's invitationTTL.
	TTL time.Duration
}

// queuedMessage is a message the decision asks to record in status.deliveries.
type queuedMessage struct {
	Key      string
	Template notify.TemplateName
}

// externalUserDecision is what the controller does and writes.
type externalUserDecision struct {
	Phase rosterv1.ExternalUserPhase
	// RegisteredAt is status.registeredAt after this pass.
	RegisteredAt *metav1.Time
	// Groups is status.groups after this pass.
	Groups []string
	// Seat says whether the user holds a seat, for the Seat condition; SeatSince since when.
	Seat      bool
	SeatSince *metav1.Time

	// The kstatus summary, for conclude.
	Progress progress
	Ready    bool
	Reason   string
	Message  string

	// IssueLink asks for a new invitation link for spec.invitation.linkGeneration.
	IssueLink bool
	// LinkExpiresAt is status.linkExpiresAt after this pass.
	LinkExpiresAt *metav1.Time
	// RetireLink asks to delete the used link's Secret: it opens nothing any more.
	RetireLink bool
	// DisabledAt, ReactivationsHandled and ReactivatedAt are the inactivity bookkeeping
	// after this pass.
	DisabledAt, ReactivatedAt *metav1.Time
	ReactivationsHandled      int32
	// Delete asks to delete the user: disabled, told, and inactive past deleteAfter.
	Delete bool
	// Events are the Events this decision makes, beside the phase's own.
	Events []externalUserEvent
	// RequeueAfter is when the next edge comes: the link's expiry, or inactivity's.
	RequeueAfter time.Duration
	// Queue are the messages to record for sending.
	Queue []queuedMessage
	// ConfirmationResendsHandled and WelcomeResendsHandled are the counters after this pass.
	ConfirmationResendsHandled, WelcomeResendsHandled int32
}

// externalUserEvent is a Normal Event the decision records.
type externalUserEvent struct{ Reason, Note string }

// registered reports whether the person completed registration. Until the portal records
// registration itself, these facts count: a confirmed email address, a registration the
// person made themselves, or an admin's approval.
func registered(spec *rosterv1.ExternalUserSpec, st *rosterv1.ExternalUserStatus) bool {
	return st.EmailVerified || st.SelfRegistered || spec.Approval == rosterv1.ApprovalApproved
}

// phaseWithoutSeat is the phase an external user's facts give, with ExternalUserActive
// meaning "would be Active with a seat". It is shared by the ExternalUser controller and the
// seat allocator, so both agree on who wants a seat.
func phaseWithoutSeat(spec *rosterv1.ExternalUserSpec, st *rosterv1.ExternalUserStatus, app *rosterv1.Application) rosterv1.ExternalUserPhase {
	switch {
	case spec.Access == rosterv1.ExternalAccessLocked:
		return rosterv1.ExternalUserLocked
	case spec.Approval == rosterv1.ApprovalRejected:
		return rosterv1.ExternalUserRejected
	case !registered(spec, st):
		return rosterv1.ExternalUserInvited
	case st.DisabledAt != nil:
		return rosterv1.ExternalUserDisabled
	case st.SelfRegistered && spec.Approval == rosterv1.ApprovalNone && app != nil && app.HoldsSelfRegistration(spec):
		return rosterv1.ExternalUserPendingApproval
	}
	return rosterv1.ExternalUserActive
}

// wantsSeat reports whether an external user would be Active if they held a seat.
func wantsSeat(x *rosterv1.ExternalUser, app *rosterv1.Application) bool {
	return app != nil && phaseWithoutSeat(&x.Spec, &x.Status, app) == rosterv1.ExternalUserActive
}

// licenseActive reports whether an application's license gives seats at now.
func licenseActive(app *rosterv1.Application, now time.Time) bool {
	return app != nil && app.License.Seats > 0 && (app.License.ExpiresAt == nil || now.Before(app.License.ExpiresAt.Time))
}

// deliveryKey is the idempotency key of one message to an external user.
func deliveryKey(uid string, tmpl notify.TemplateName, n int64) string {
	return fmt.Sprintf("%s/%s/%d", uid, tmpl, n)
}

// decideExternalUser decides an external user's phase, what to send and how to summarise
// it, from the gathered facts.
func decideExternalUser(f externalUserFacts, now time.Time) externalUserDecision {
	d := externalUserDecision{
		RegisteredAt:               f.Status.RegisteredAt,
		ConfirmationResendsHandled: f.Status.ConfirmationResendsHandled,
		WelcomeResendsHandled:      f.Status.WelcomeResendsHandled,
		Groups:                     f.Status.Groups,
		LinkExpiresAt:              f.Status.LinkExpiresAt,
		DisabledAt:                 f.Status.DisabledAt,
		ReactivatedAt:              f.Status.ReactivatedAt,
		ReactivationsHandled:       f.Status.ReactivationsHandled,
	}
	if !slices.Contains(d.Groups, rosterv1.SystemGroupExternalUsers) {
		d.Groups = append(slices.Clone(d.Groups), rosterv1.SystemGroupExternalUsers)
	}
	if registered(&f.Spec, &f.Status) && d.RegisteredAt == nil {
		t := metav1.NewTime(now.UTC().Truncate(time.Second))
		d.RegisteredAt = &t
	}

	d.Seat = f.SeatGranted && f.LicenseActive && f.App != nil
	if d.Seat {
		d.SeatSince = f.Status.SeatSince
		if d.SeatSince == nil {
			d.SeatSince = stamp(now)
		}
	}
	d.inactivity(f, now)
	st := f.Status
	st.DisabledAt = d.DisabledAt
	d.Phase = phaseWithoutSeat(&f.Spec, &st, f.App)
	if d.Phase == rosterv1.ExternalUserActive && !d.Seat {
		// Only the seat allocator's grant makes a user Active, so no moment has more Active
		// users than seats.
		d.Phase = rosterv1.ExternalUserWaitingForSeat
	}

	gen := f.Spec.Invitation.LinkGeneration
	d.link(f, now)
	if f.Spec.Email != "" {
		if key := deliveryKey(f.UID, notify.TemplateExternalInvitation, gen); d.Phase == rosterv1.ExternalUserInvited && !hasDelivery(f.Status.Deliveries, key) {
			d.Queue = append(d.Queue, queuedMessage{Key: key, Template: notify.TemplateExternalInvitation})
		}
	}
	if n := f.Spec.ResendConfirmationRequests; n > d.ConfirmationResendsHandled {
		d.ConfirmationResendsHandled = n
		if f.Status.EmailVerified {
			d.Events = append(d.Events, externalUserEvent{"ConfirmationNotSent", "The email address is already confirmed; no confirmation mail was sent"})
		} else if f.Spec.Email != "" {
			d.Queue = append(d.Queue, queuedMessage{Key: deliveryKey(f.UID, notify.TemplateRegistrationConfirmation, int64(n)), Template: notify.TemplateRegistrationConfirmation})
		}
	}
	if n := f.Spec.ResendWelcomeRequests; n > d.WelcomeResendsHandled {
		d.WelcomeResendsHandled = n
		if f.Spec.Email != "" {
			d.Queue = append(d.Queue, queuedMessage{Key: deliveryKey(f.UID, notify.TemplateWelcome, int64(n)), Template: notify.TemplateWelcome})
		}
	}
	d.summarise(f, now)
	return d
}

// link follows the individual link through its life: issued while the person has not
// confirmed their address with it, expiring after the Organization's invitationTTL, and
// retired once used.
func (d *externalUserDecision) link(f externalUserFacts, now time.Time) {
	st := &f.Status
	l := linkFacts{
		Used:      st.EmailVerified,
		Issued:    st.LinkSecretRef != nil && st.LinkGeneration == f.Spec.Invitation.LinkGeneration,
		ExpiresAt: st.LinkExpiresAt,
	}
	switch l.stage(now) {
	case linkWanted:
		d.IssueLink = true
		d.LinkExpiresAt = linkExpiry(now, f.TTL)
	case linkUsed:
		d.RetireLink = st.LinkSecretRef != nil
		d.LinkExpiresAt = nil
	case linkLive:
		if d.LinkExpiresAt == nil {
			// Issued before links expired: it works for a TTL from now.
			d.LinkExpiresAt = linkExpiry(now, f.TTL)
		}
		d.requeue(d.LinkExpiresAt.Sub(now))
	}
}

// inactivity disables a user who has not signed in for the application's disableAfter,
// telling them once, and deletes them after deleteAfter. An admin's reactivation lets them
// in again and starts the count over.
func (d *externalUserDecision) inactivity(f externalUserFacts, now time.Time) {
	if n := f.Spec.ReactivateRequests; n > d.ReactivationsHandled {
		d.ReactivationsHandled = n
		d.ReactivatedAt = stamp(now)
		if d.DisabledAt != nil {
			d.DisabledAt = nil
			d.Events = append(d.Events, externalUserEvent{"Reactivated", "Reactivated by an admin; inactivity counts from now"})
		}
	}
	in := inactivityOf(f.App)
	if in == nil || in.DisableAfter == nil {
		d.DisabledAt = nil
		return
	}
	last := lastSeen(&f.Status, d.RegisteredAt, d.ReactivatedAt, d.SeatSince)
	if last == nil {
		return
	}
	if d.DisabledAt == nil {
		// Only a user who could sign in is judged by not signing in.
		st := f.Status
		st.DisabledAt = nil
		if phaseWithoutSeat(&f.Spec, &st, f.App) != rosterv1.ExternalUserActive || !d.Seat {
			return
		}
		at := last.Add(in.DisableAfter.Duration)
		if now.Before(at) {
			d.requeue(at.Sub(now))
			return
		}
		d.DisabledAt = stamp(now)
		d.Events = append(d.Events, externalUserEvent{rosterv1.ReasonDisabledForInactivity, fmt.Sprintf("Not signed in since %s: disabled after %s without signing in",
			last.UTC().Format(time.RFC3339), in.DisableAfter.Duration)})
		if f.Spec.Email != "" {
			d.Queue = append(d.Queue, queuedMessage{Key: deliveryKey(f.UID, notify.TemplateExternalDisabled, d.DisabledAt.Unix()), Template: notify.TemplateExternalDisabled})
		}
	}
	if in.DeleteAfter == nil {
		return
	}
	at := last.Add(in.DeleteAfter.Duration)
	switch {
	case now.Before(at):
		d.requeue(at.Sub(now))
	case len(d.Queue) > 0 || hasPending(f.Status.Deliveries):
		// Told first, then deleted.
	default:
		d.Delete = true
	}
}

// inactivityOf is the application's inactivity setting, or nil.
func inactivityOf(app *rosterv1.Application) *rosterv1.Inactivity {
	if app == nil {
		return nil
	}
	return app.Inactivity
}

// lastSeen is when the user was last known to be around, or could first be: their last
// sign-in, registration, reactivation or getting a seat, whichever is latest; nil before
// they registered.
func lastSeen(st *rosterv1.ExternalUserStatus, registeredAt, reactivatedAt, seatSince *metav1.Time) *metav1.Time {
	if registeredAt == nil {
		return nil
	}
	var last *metav1.Time
	for _, t := range []*metav1.Time{st.LastLoginAt, registeredAt, reactivatedAt, seatSince} {
		if t != nil && (last == nil || t.After(last.Time)) {
			last = t
		}
	}
	return last
}

// deleteAt is when an inactive user is deleted, or nil when they are not going to be.
func deleteAt(f externalUserFacts, d *externalUserDecision) *metav1.Time {
	in := inactivityOf(f.App)
	last := lastSeen(&f.Status, d.RegisteredAt, d.ReactivatedAt, d.SeatSince)
	if in == nil || in.DeleteAfter == nil || last == nil {
		return nil
	}
	t := metav1.NewTime(last.Add(in.DeleteAfter.Duration))
	return &t
}

// requeue asks to look again after wait, or sooner if already asked.
func (d *externalUserDecision) requeue(wait time.Duration) {
	if wait <= 0 {
		wait = time.Second
	}
	if d.RequeueAfter == 0 || wait < d.RequeueAfter {
		d.RequeueAfter = wait
	}
}

// summarise sets the kstatus summary: Reconciling while a link or a message is under way,
// Stalled only where nothing moves until a person acts, settled otherwise.
func (d *externalUserDecision) summarise(f externalUserFacts, now time.Time) {
	set := func(p progress, ok bool, reason, msg string) {
		d.Progress, d.Ready, d.Reason, d.Message = p, ok, reason, msg
	}
	patchCmd := func(field, value string) string {
		return fmt.Sprintf(`kubectl patch xu %s -n %s --type=merge -p '{"spec":{"%s":"%s"}}'`, f.Name, f.Namespace, field, value)
	}
	app := f.Spec.Application
	newest := newestDelivery(f.Status.Deliveries)
	switch {
	case f.App == nil:
		set(stalled, false, rosterv1.ReasonApplicationNotFound, fmt.Sprintf(
			"The Organization has no application %q; add it to the Organization's spec.applications, or delete this ExternalUser and create one for an existing application", app))
		return
	case d.IssueLink:
		set(working, false, rosterv1.ReasonIssuingLink, "A new invitation link is being made")
		return
	case len(d.Queue) > 0 || hasPending(f.Status.Deliveries):
		set(working, false, rosterv1.ReasonSending, "A message to the user is being sent")
		return
	case newest != nil && newest.State == DeliveryFailed:
		set(stalled, false, string(rosterv1.ReasonDeliveryFailed), fmt.Sprintf(
			"The %s message could not be delivered (%s); fix the address or the Organization's notification settings, then raise the matching resend counter or spec.invitation.linkGeneration",
			keyPurpose(newest.Key), newest.Error))
		return
	}
	switch d.Phase {
	case rosterv1.ExternalUserActive:
		set(settled, true, rosterv1.ReasonActive, fmt.Sprintf("Active in %s", app))
	case rosterv1.ExternalUserInvited:
		if d.LinkExpiresAt != nil && !now.Before(d.LinkExpiresAt.Time) {
			set(stalled, false, rosterv1.ReasonLinkExpired, fmt.Sprintf(
				"The invitation link expired on %s before the person registered; to make a new one: kubectl patch xu %s -n %s --type=merge -p '{\"spec\":{\"invitation\":{\"linkGeneration\":%d}}}'",
				d.LinkExpiresAt.UTC().Format(time.RFC3339), f.Name, f.Namespace, f.Spec.Invitation.LinkGeneration+1))
			return
		}
		link := "their personal link"
		if f.Status.LinkSecretRef != nil {
			link = fmt.Sprintf("their personal link (Secret %s, key %q)", f.Status.LinkSecretRef.Name, "link")
		}
		set(settled, false, rosterv1.ReasonInvited, fmt.Sprintf(
			"Waiting for the person to register through %s, which works until %s; to make a new link and invalidate the old one, raise spec.invitation.linkGeneration",
			link, d.LinkExpiresAt.UTC().Format(time.RFC3339)))
	case rosterv1.ExternalUserPendingApproval:
		if f.App != nil && f.App.RequireTeam && len(f.Spec.Team) == 0 {
			set(settled, false, rosterv1.ReasonPendingApproval, fmt.Sprintf(
				"Registered and waiting for an admin: %s requires a team, so give them one as you approve: kubectl patch xu %s -n %s --type=merge -p '{\"spec\":{\"approval\":\"Approved\",\"team\":[{\"member\":\"<member-name>\",\"lead\":true}]}}' (or set approval Rejected)",
				app, f.Name, f.Namespace))
			return
		}
		set(settled, false, rosterv1.ReasonPendingApproval, "Registered and waiting for an admin's approval: "+patchCmd("approval", "Approved")+" (or Rejected)")
	case rosterv1.ExternalUserLocked:
		// An admin's decision in force: Ready, and Current to kstatus, as for members.
		set(settled, true, rosterv1.ReasonLocked, "Locked out by an admin; to let them in again: "+patchCmd("access", "Enabled"))
	case rosterv1.ExternalUserRejected:
		set(settled, true, rosterv1.ReasonRejected, "The registration was rejected; to approve it after all: "+patchCmd("approval", "Approved"))
	case rosterv1.ExternalUserDisabled:
		// The application's policy in force: Ready, like an admin's lock.
		msg := fmt.Sprintf("Disabled on %s after %s without signing in", d.DisabledAt.UTC().Format(time.RFC3339), inactivityOf(f.App).DisableAfter.Duration)
		if at := deleteAt(f, d); at != nil {
			msg += fmt.Sprintf("; deleted on %s unless reactivated", at.UTC().Format(time.RFC3339))
		}
		set(settled, true, rosterv1.ReasonDisabledForInactivity, fmt.Sprintf(
			`%s. To let them in again: kubectl patch xu %s -n %s --type=merge -p '{"spec":{"reactivateRequests":%d}}'`,
			msg, f.Name, f.Namespace, f.Spec.ReactivateRequests+1))
	case rosterv1.ExternalUserWaitingForSeat:
		if !f.LicenseActive {
			set(stalled, false, rosterv1.ReasonLicenseExpired, fmt.Sprintf(
				"The license of %s has expired or has no seats; renew it in the Organization's spec.applications (license.seats, license.expiresAt) and the user gets a seat", app))
			return
		}
		set(settled, false, rosterv1.ReasonWaitingForSeat, fmt.Sprintf(
			"All %d seats of %s are taken; the user gets one, oldest first, when a seat is freed or the Organization's license.seats for %s is raised",
			f.App.License.Seats, app, app))
	}
}

func hasDelivery(ds []rosterv1.Delivery, key string) bool {
	return slices.ContainsFunc(ds, func(d rosterv1.Delivery) bool { return d.Key == key })
}

// newestDelivery is the delivery recorded last, or nil.
func newestDelivery(ds []rosterv1.Delivery) *rosterv1.Delivery {
	if len(ds) == 0 {
		return nil
	}
	return &ds[len(ds)-1]
}
