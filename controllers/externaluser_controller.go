package controllers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/patch"
)

// ExternalUserReconciler keeps an external user's phase, individual invitation link,
// messages, labels and groups in step with its spec, its application and the seat the
// Organization controller's allocator gave it.
type ExternalUserReconciler struct {
	// Shard is the part of the organizations this manager reconciles; empty for all.
	Shard Shard
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Notifications send the invitation, confirmation and welcome mails.
	Notifications
	// PortalURL is where links point when the Organization sets no spec.portalURL.
	PortalURL string
}

// Reconcile gathers the facts about one external user, decides with decideExternalUser, and
// acts: link, messages, status and labels.
func (r *ExternalUserReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, reterr error) {
	x := &rosterv1.ExternalUser{}
	if err := r.Get(ctx, req.NamespacedName, x); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.Shard.Has(x) {
		return ctrl.Result{}, nil // another shard's
	}
	if !x.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	helper, err := patch.NewHelper(x, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	defer func() {
		reterr = finish(ctx, helper, x, reterr)
		if apierrors.IsConflict(reterr) {
			// The object changed since it was read (a seat was taken back, say): look again.
			res, reterr = notCurrent, nil
		}
	}()

	org, err := organization(ctx, r.Client, x, x.Spec.OrganizationRef.Name)
	if err != nil || org == nil {
		return ctrl.Result{}, err
	}
	app := application(org, x.Spec.Application)
	now := r.Clock.Now()
	d := decideExternalUser(externalUserFacts{
		Name: x.Name, Namespace: x.Namespace, UID: string(x.UID),
		Spec: x.Spec, Status: x.Status, App: app,
		LicenseActive: licenseActive(app, now),
		SeatGranted:   x.Labels[rosterv1.LabelSeat] == rosterv1.SeatGranted,
		TTL:           org.Spec.InvitationTTL.Duration,
	}, now)

	if d.IssueLink || d.RetireLink || d.Delete || d.Phase != x.Status.Phase || len(d.Queue) > 0 || len(d.Events) > 0 {
		// A link, an Event and a message happen once: act only on what the API server has.
		if ok, err := current(ctx, r.APIReader, x); err != nil || !ok {
			return notCurrent, err
		}
	}
	if d.Phase == rosterv1.ExternalUserActive && x.Status.Phase != rosterv1.ExternalUserActive {
		// Active rests on the seat label read with this copy; if the allocator took the seat
		// back since, the write fails and the next pass sees it.
		helper.Lock()
	}
	if d.Delete {
		return ctrl.Result{}, r.deleteInactive(ctx, x, org)
	}
	if d.IssueLink {
		if err := r.issueLink(ctx, x, org); err != nil {
			return ctrl.Result{}, err
		}
	}
	if d.RetireLink {
		if err := r.retireLink(ctx, x); err != nil {
			return ctrl.Result{}, err
		}
	}
	r.apply(x, d)
	res.RequeueAfter = d.RequeueAfter
	if app != nil && app.License.ExpiresAt != nil && d.Phase == rosterv1.ExternalUserActive {
		if at := app.License.ExpiresAt.Sub(now) + time.Second; res.RequeueAfter == 0 || at < res.RequeueAfter {
			res.RequeueAfter = at
		}
	}
	if err := r.checkTeam(ctx, x); err != nil {
		return ctrl.Result{}, err
	}
	retry, err := r.notify(ctx, x, org, app)
	if retry > 0 && (res.RequeueAfter == 0 || retry < res.RequeueAfter) {
		res.RequeueAfter = retry
	}
	return res, err
}

// checkTeam says, in the Team condition, whether every Member on the user's team is still an
// active member, naming those who left (removed or deleted), so an admin knows whom to
// reassign. One read per team member, from the cache.
func (r *ExternalUserReconciler) checkTeam(ctx context.Context, x *rosterv1.ExternalUser) error {
	if len(x.Spec.Team) == 0 {
		meta.RemoveStatusCondition(&x.Status.Conditions, rosterv1.ConditionTeam)
		return nil
	}
	var left []string
	for _, t := range x.Spec.Team {
		m := &rosterv1.Member{}
		err := r.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: t.Member}, m)
		switch {
		case apierrors.IsNotFound(err):
			left = append(left, t.Member+" (deleted)")
		case err != nil:
			return err
		case m.Spec.Access == rosterv1.AccessTerminated || m.Status.Phase == rosterv1.MemberTerminated:
			left = append(left, t.Member+" (removed)")
		}
	}
	if len(left) == 0 {
		setCondition(x, rosterv1.ConditionTeam, metav1.ConditionTrue, rosterv1.ReasonTeamActive, "Every team member is an active member")
		return nil
	}
	setCondition(x, rosterv1.ConditionTeam, metav1.ConditionFalse, rosterv1.ReasonTeamMemberLeft, fmt.Sprintf(
		"%s left the organization and no longer serve this client; reassign them: kubectl edit xu %s -n %s (spec.team)",
		strings.Join(left, ", "), x.Name, x.Namespace))
	return nil
}

// externalUsersServedBy maps a Member to the external users whose teams name it.
func externalUsersServedBy(c client.Reader) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		list := &rosterv1.ExternalUserList{}
		if err := c.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{rosterv1.IndexTeamMember: o.GetName()}); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, x := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: x.Namespace, Name: x.Name}})
		}
		return reqs
	}
}

// application is the Organization's application of that name, or nil.
func application(org *rosterv1.Organization, name string) *rosterv1.Application {
	for i := range org.Spec.Applications {
		if org.Spec.Applications[i].Name == name {
			return &org.Spec.Applications[i]
		}
	}
	return nil
}

// apply writes a decision into the external user's status, labels and outbox.
func (r *ExternalUserReconciler) apply(x *rosterv1.ExternalUser, d externalUserDecision) {
	if from := x.Status.Phase; from != d.Phase {
		x.Status.Phase = d.Phase
		who := x.Spec.DisplayName
		if from == "" {
			r.Recorder.Eventf(x, nil, corev1.EventTypeNormal, d.Reason, "Reconcile", "%s is %s", who, d.Phase)
		} else {
			r.Recorder.Eventf(x, nil, corev1.EventTypeNormal, string(d.Phase), "Reconcile", "%s moved from %s to %s", who, from, d.Phase)
		}
	}
	for _, e := range d.Events {
		r.Recorder.Eventf(x, nil, corev1.EventTypeNormal, e.Reason, "Reconcile", "%s", e.Note)
	}
	x.Status.RegisteredAt = d.RegisteredAt
	x.Status.LinkExpiresAt = d.LinkExpiresAt
	x.Status.SeatSince = d.SeatSince
	x.Status.DisabledAt = d.DisabledAt
	x.Status.ReactivatedAt = d.ReactivatedAt
	x.Status.ReactivationsHandled = d.ReactivationsHandled
	x.Status.Groups = d.Groups
	x.Status.ConfirmationResendsHandled = d.ConfirmationResendsHandled
	x.Status.WelcomeResendsHandled = d.WelcomeResendsHandled
	box := r.outbox(r.Clock)
	for _, q := range d.Queue {
		box.queue(x, q.Key, notify.ChannelEmail)
	}
	if d.Seat {
		setCondition(x, rosterv1.ConditionSeat, metav1.ConditionTrue, rosterv1.ReasonSeatGranted, "The user holds one of the application's licensed seats")
	} else {
		setCondition(x, rosterv1.ConditionSeat, metav1.ConditionFalse, rosterv1.ReasonNoSeat, "The user holds no seat")
	}
	conclude(x, d.Progress, d.Ready, d.Reason, d.Message)
	syncExternalUserLabels(x)
}

// syncExternalUserLabels mirrors application, company and phase into labels, so that
// `kubectl get xu -l org.roster.dev/company=Partner-GmbH` selects them.
func syncExternalUserLabels(x *rosterv1.ExternalUser) {
	setLabels(x, map[string]string{
		rosterv1.LabelApplication: labelValue(x.Spec.Application),
		rosterv1.LabelCompany:     labelValue(x.Spec.Company),
		rosterv1.LabelPhase:       string(x.Status.Phase),
	})
}

// portalLinkSecretName is the Secret that holds an external user's individual link.
func portalLinkSecretName(x *rosterv1.ExternalUser) string { return x.Name + "-portal-link" }

// issueLink makes the external user's individual link for spec.invitation.linkGeneration,
// replacing the one before, which stops working. The link is kept in the Secret, since an
// admin copies it from there to pass it on.
func (r *ExternalUserReconciler) issueLink(ctx context.Context, x *rosterv1.ExternalUser, org *rosterv1.Organization) error {
	gen := x.Spec.Invitation.LinkGeneration
	s := linkSecret{owner: x, name: portalLinkSecretName(x), labels: map[string]string{rosterv1.LabelExternalUser: x.Name},
		generation: strconv.FormatInt(gen, 10)}
	made, err := s.ensure(ctx, r.Client, func(token string) string {
		return linktoken.Link(portalURL(org, r.PortalURL), "portal", token)
	})
	if err != nil {
		return fmt.Errorf("portal link: %w", err)
	}
	rotated := x.Status.LinkSecretRef != nil
	x.Status.LinkSecretRef = &rosterv1.LocalObjectReference{Name: s.name}
	x.Status.LinkGeneration = gen
	if made && rotated {
		r.Recorder.Eventf(x, nil, corev1.EventTypeNormal, "LinkRotated", "Rotate", "A new invitation link was made; the old one no longer works")
	}
	return nil
}

// retireLink deletes a used link's Secret: the person confirmed their address with it, so
// it opens nothing any more, and no copy of it is left to leak.
func (r *ExternalUserReconciler) retireLink(ctx context.Context, x *rosterv1.ExternalUser) error {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: x.Namespace, Name: x.Status.LinkSecretRef.Name}}
	if err := r.Delete(ctx, sec); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("retire used portal link: %w", err)
	}
	x.Status.LinkSecretRef = nil
	return nil
}

// deleteInactive deletes a user the application's inactivity setting gave up on. The Event
// goes on the Organization, which outlives them, so an admin can see who went and why.
func (r *ExternalUserReconciler) deleteInactive(ctx context.Context, x *rosterv1.ExternalUser, org *rosterv1.Organization) error {
	err := r.Delete(ctx, x, client.Preconditions{UID: &x.UID, ResourceVersion: &x.ResourceVersion})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone already, or changed since: the next pass decides again
	}
	if err != nil {
		return fmt.Errorf("delete inactive external user: %w", err)
	}
	r.Recorder.Eventf(org, x, corev1.EventTypeNormal, "ExternalUserDeleted", "Delete",
		"ExternalUser %s (%s) was deleted after the application's inactivity.deleteAfter without signing in", x.Name, x.Spec.Application)
	return nil
}

// notify sends the messages waiting in status.deliveries, oldest first.
func (r *ExternalUserReconciler) notify(ctx context.Context, x *rosterv1.ExternalUser, org *rosterv1.Organization, app *rosterv1.Application) (time.Duration, error) {
	if !hasPending(x.Status.Deliveries) {
		return 0, nil
	}
	settings, err := notificationSettings(ctx, r.Client, org)
	if err != nil {
		setCondition(x, rosterv1.ConditionNotified, metav1.ConditionFalse, "NotificationsMisconfigured", err.Error())
		return time.Minute, nil
	}
	link, err := r.currentLink(ctx, x)
	if err != nil {
		return 0, err
	}
	appName := x.Spec.Application
	if app != nil && app.DisplayName != "" {
		appName = app.DisplayName
	}
	build := func(d rosterv1.Delivery) notify.Message {
		return notify.Message{
			Key:      d.Key,
			Template: notify.TemplateName(keyPurpose(d.Key)),
			To:       notify.Recipient{Name: x.Spec.DisplayName, Email: x.Spec.Email},
			Data: map[string]any{
				"OrganizationName":        org.Spec.DisplayName,
				"InviteeName":             x.Spec.DisplayName,
				"MemberName":              x.Spec.DisplayName,
				"Link":                    link,
				"ApplicationName":         appName,
				"ExpiresAt":               x.Status.LinkExpiresAt,
				"DeleteAt":                deleteAt(externalUserFacts{App: app, Status: x.Status}, &externalUserDecision{RegisteredAt: x.Status.RegisteredAt, ReactivatedAt: x.Status.ReactivatedAt, SeatSince: x.Status.SeatSince}),
				"SkipContactConfirmation": x.Spec.Invitation.SkipContactConfirmation,
				"PortalURL":               strings.TrimRight(portalURL(org, r.PortalURL), "/") + "/portal",
			},
		}
	}
	failed := func(d rosterv1.Delivery, _ error) {
		setCondition(x, rosterv1.ConditionNotified, metav1.ConditionFalse, string(rosterv1.ReasonDeliveryFailed),
			fmt.Sprintf("%s could not be delivered: %s", keyPurpose(d.Key), d.Error))
		r.Recorder.Eventf(x, nil, corev1.EventTypeWarning, string(rosterv1.ReasonDeliveryFailed), "Send", "%s could not be delivered: %s", keyPurpose(d.Key), d.Error)
	}
	retry, err := r.outbox(r.Clock).flush(ctx, x, settings, build, failed)
	if err != nil || retry > 0 {
		return retry, err
	}
	setCondition(x, rosterv1.ConditionNotified, metav1.ConditionTrue, rosterv1.ReasonDelivered, "Every message to the user was delivered")
	return 0, nil
}

// currentLink reads the link from the user's Secret past the cache, so that a message
// carries the link that works now; "" once the link was used and retired.
func (r *ExternalUserReconciler) currentLink(ctx context.Context, x *rosterv1.ExternalUser) (string, error) {
	sec := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: x.Namespace, Name: portalLinkSecretName(x)}, sec); err != nil {
		if apierrors.IsNotFound(err) && x.Status.LinkSecretRef == nil {
			return "", nil
		}
		return "", fmt.Errorf("read portal link: %w", err)
	}
	return string(sec.Data[linktoken.SecretKeyLink]), nil
}

// SetupWithManager watches ExternalUsers, their link Secrets, and Organizations for their
// applications and licenses.
func (r *ExternalUserReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&rosterv1.ExternalUser{}).
		Owns(&corev1.Secret{}).
		Watches(&rosterv1.Organization{},
			handler.EnqueueRequestsFromMapFunc(requestsForOrganization(mgr.GetClient(), &rosterv1.ExternalUserList{})),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// A team member who leaves (removed or deleted) changes the Team condition of the
		// clients they served.
		Watches(&rosterv1.Member{}, handler.EnqueueRequestsFromMapFunc(externalUsersServedBy(mgr.GetClient())),
			builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
				return e.ObjectOld.(*rosterv1.Member).Status.Phase != e.ObjectNew.(*rosterv1.Member).Status.Phase
			}})).
		Named("externaluser").
		Complete(r)
}
