package controllers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/patch"
)

// MemberReconciler keeps a Member's phase, the facts behind it, its selection labels and its
// Ready condition in step with its spec and its Organization's join rules.
type MemberReconciler struct {
	// Shard is the part of the organizations this manager reconciles; empty for all.
	Shard Shard
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Notifications tell the person about decisions on their membership, and admins about
	// members waiting for approval.
	Notifications
}

// Reconcile derives the member's phase from the facts: signed up, needs approval, an
// admin's decision, removed.
func (r *MemberReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	m := &rosterv1.Member{}
	if err := r.Get(ctx, req.NamespacedName, m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.Shard.Has(m) {
		return ctrl.Result{}, nil // another shard's
	}
	if !m.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	helper, err := patch.NewHelper(m, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	defer func() { reterr = finish(ctx, helper, m, reterr) }()

	org, err := organization(ctx, r.Client, m, m.Spec.OrganizationRef.Name)
	if err != nil || org == nil {
		return ctrl.Result{}, err
	}
	if taken, err := r.claimUsername(ctx, m); err != nil || taken {
		return ctrl.Result{}, err
	}
	r.recordJoinFacts(m, org)
	if to := membership.Phase(m); to != m.Status.Phase {
		if reason, _ := transition(m, m.Status.Phase, to); reason == reasonCreated {
			// A first phase records no Event and sends nothing, so a stale copy may try:
			// its write carries the resourceVersion read and fails, which saves a read
			// past the cache for every member created.
			helper.Lock()
		} else if ok, err := current(ctx, r.APIReader, m); err != nil || !ok {
			// A transition happens once: act only on what the API server has.
			return notCurrent, err
		}
	}
	r.updatePhase(m, org)
	syncLabels(m, m.Status.Phase)
	res, err := r.notify(ctx, m, org)
	setMemberReady(m)
	return res, err
}

// claimUsername makes sure the member holds the Claim of its username, once: the sign-up
// pages claim it before they write it, and this catches a Member an admin created with a
// username. A member whose username another holds is Stalled and has no role (see
// membership.RoleIn); taken reports that.
func (r *MemberReconciler) claimUsername(ctx context.Context, m *rosterv1.Member) (taken bool, err error) {
	if m.Spec.Username == "" || m.Status.UsernameClaimed {
		return false, nil
	}
	err = membership.Claims{Client: r.Client, Reader: r.APIReader}.TakeUsername(ctx, m, m.Spec.Username)
	var t *membership.ErrTaken
	if errors.As(err, &t) {
		conclude(m, stalled, false, rosterv1.ReasonUsernameTaken, fmt.Sprintf(
			"Username %q is Member %s's in Organization %s; each person has one Member. Delete this one: kubectl delete mem %s -n %s",
			m.Spec.Username, t.Holder.Name, m.Spec.OrganizationRef.Name, m.Name, m.Namespace))
		return true, nil
	}
	if err != nil {
		return false, err
	}
	m.Status.UsernameClaimed = true
	return false, nil
}

// recordJoinFacts copies into status how the member joined and, until they sign up, whether
// they will need approval. It reads only spec.provenance, which the admission webhook wrote
// from the requests themselves: nothing a client writes decides approval. Once they signed up the answer is kept: changing the join rules
// later does not move members who already are past that point.
func (r *MemberReconciler) recordJoinFacts(m *rosterv1.Member, org *rosterv1.Organization) {
	p := m.Spec.Provenance
	m.Status.JoinMethod = p.JoinMethod
	m.Status.InvitedBy = p.InvitedBy
	if m.Status.SignedUpAt == nil {
		m.Status.RequiresApproval = membership.RequiresApproval(p.JoinMethod, p.InviterRole, org.Spec.JoinRules)
	}
	if m.Spec.Username != "" && m.Status.SignedUpAt == nil {
		m.Status.SignedUpAt = r.now()
	}
}

// updatePhase moves the member to the phase its facts say, stamps the transition, tells the
// admin with an Event and queues the message for whoever must hear of it.
func (r *MemberReconciler) updatePhase(m *rosterv1.Member, org *rosterv1.Organization) {
	from, to := m.Status.Phase, membership.Phase(m)
	if from == to {
		return
	}
	m.Status.Phase = to
	if (to == rosterv1.MemberActive || to == rosterv1.MemberRejected) && m.Spec.Approval != rosterv1.ApprovalNone &&
		from != "" && from != rosterv1.MemberInactivated {
		m.Status.ApprovedBy = m.Spec.Provenance.ApprovalBy
		m.Status.ApprovedAt = r.now()
	}
	switch {
	case to == rosterv1.MemberTerminated:
		m.Status.TerminatedAt = r.now()
	case from == rosterv1.MemberTerminated:
		m.Status.TerminatedAt = nil
	}
	reason, note := transition(m, from, to)
	if reason != reasonCreated {
		// A member's first phase is not a transition: its creation is on record already,
		// and an Event for each of ten thousand invited members is as many writes.
		r.Recorder.Eventf(m, nil, corev1.EventTypeNormal, reason, "Reconcile", note)
	}
	if tmpl, ch := messageFor(m, org, reason); tmpl != "" {
		r.outbox(r.Clock).queue(m, fmt.Sprintf("%s/%s/%d", m.UID, tmpl, m.Generation), ch)
	}
}

// messageFor picks the message a transition sends and its channel: the person hears of
// decisions on their membership, the organization's webhook of members awaiting approval.
func messageFor(m *rosterv1.Member, org *rosterv1.Organization, reason string) (notify.TemplateName, notify.Channel) {
	if reason == "AwaitingApproval" {
		if org.Spec.Notifications.Webhook == nil {
			return "", ""
		}
		return notify.TemplateApprovalNeeded, notify.ChannelWebhook
	}
	tmpl := map[string]notify.TemplateName{
		"Approved":   notify.TemplateMemberApproved,
		"Rejected":   notify.TemplateMemberRejected,
		"Terminated": notify.TemplateMemberRemoved,
		"Restored":   notify.TemplateMemberRestored,
	}[reason]
	switch {
	case tmpl == "":
		return "", ""
	case m.Spec.Email != "" && org.Spec.Notifications.Email != nil:
		return tmpl, notify.ChannelEmail
	case m.Spec.Phone != "" && org.Spec.Notifications.SMS != nil:
		return tmpl, notify.ChannelSMS
	}
	return "", ""
}

// notify sends the member's waiting messages in order.
func (r *MemberReconciler) notify(ctx context.Context, m *rosterv1.Member, org *rosterv1.Organization) (ctrl.Result, error) {
	if !hasPending(m.Status.Deliveries) {
		return ctrl.Result{}, nil
	}
	settings, err := notificationSettings(ctx, r.Client, org)
	if err != nil {
		setCondition(m, "Notified", metav1.ConditionFalse, "NotificationsMisconfigured", err.Error())
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	build := func(d rosterv1.Delivery) notify.Message {
		return notify.Message{
			Key:      d.Key,
			Template: notify.TemplateName(keyPurpose(d.Key)),
			To:       notify.Recipient{Name: m.Spec.DisplayName, Email: m.Spec.Email, Phone: m.Spec.Phone},
			Data: map[string]any{
				"OrganizationName": org.Spec.DisplayName,
				"MemberName":       m.Spec.DisplayName,
				"InviteeName":      m.Spec.DisplayName,
				"PortalURL":        org.Spec.PortalURL,
			},
		}
	}
	failed := func(d rosterv1.Delivery, err error) {
		setCondition(m, "Notified", metav1.ConditionFalse, "DeliveryFailed", fmt.Sprintf("%s could not be delivered: %s", keyPurpose(d.Key), d.Error))
		r.Recorder.Eventf(m, nil, corev1.EventTypeWarning, "DeliveryFailed", "Send", "%s could not be delivered: %s", keyPurpose(d.Key), d.Error)
	}
	retry, err := r.outbox(r.Clock).flush(ctx, m, settings, build, failed)
	if err != nil || retry > 0 {
		return ctrl.Result{RequeueAfter: retry}, err
	}
	if c := meta.FindStatusCondition(m.Status.Conditions, "Notified"); c == nil || c.Reason != "DeliveryFailed" {
		setCondition(m, "Notified", metav1.ConditionTrue, "Delivered", "Every message about this membership was delivered")
	}
	return ctrl.Result{}, nil
}

func hasPending(ds []rosterv1.Delivery) bool {
	for _, d := range ds {
		if d.State == DeliverySending {
			return true
		}
	}
	return false
}

// reasonCreated names a member's first phase, unless it is Pending (which an admin hears of).
const reasonCreated = "Created"

// transition names a phase change for an Event.
func transition(m *rosterv1.Member, from, to rosterv1.MemberPhase) (reason, note string) {
	who := m.Spec.DisplayName
	if who == "" {
		who = m.Name
	}
	switch {
	case from == "" && to != rosterv1.MemberPending:
		return reasonCreated, fmt.Sprintf("%s is %s", who, to)
	case to == rosterv1.MemberTerminated:
		return "Terminated", fmt.Sprintf("%s was removed; the record is kept and can be restored with spec.access: Active", who)
	case from == rosterv1.MemberTerminated:
		return "Restored", fmt.Sprintf("%s was restored and is %s", who, to)
	case to == rosterv1.MemberPending:
		return "AwaitingApproval", fmt.Sprintf("%s signed up and waits for an admin's approval", who)
	case to == rosterv1.MemberRejected:
		return "Rejected", fmt.Sprintf("%s was rejected", who)
	case to == rosterv1.MemberActive && from == rosterv1.MemberInactivated:
		return "Activated", fmt.Sprintf("%s signed up and is active", who)
	case to == rosterv1.MemberActive:
		return "Approved", fmt.Sprintf("%s was approved and is active", who)
	}
	return "PhaseChanged", fmt.Sprintf("%s moved from %s to %s", who, from, to)
}

var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// labelValue turns free text into a label value: runs of other characters become '-', and
// it starts and ends with an alphanumeric, at most 63 long. "People Operations" selects as
// People-Operations.
func labelValue(s string) string {
	v := labelUnsafe.ReplaceAllString(s, "-")
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "-_.")
}

// syncLabels mirrors department and phase into labels so `kubectl get mem -l` selects them.
func syncLabels(m *rosterv1.Member, phase rosterv1.MemberPhase) {
	setLabels(m, map[string]string{
		rosterv1.LabelDepartment: labelValue(m.Spec.Department),
		rosterv1.LabelPhase:      string(phase),
	})
}

// setLabels sets the object's labels to the values given, removing those whose value is empty.
func setLabels(obj client.Object, values map[string]string) {
	labels := obj.GetLabels()
	for key, value := range values {
		if value == "" {
			delete(labels, key)
			continue
		}
		if labels == nil {
			labels = map[string]string{}
		}
		labels[key] = value
	}
	obj.SetLabels(labels)
}

// setMemberReady says whether the spec's decision is in force and, when not, what a person
// can do. Ready is True for Active, and for Rejected and Terminated too, which are what an
// admin decided (kstatus reads them as Current); Inactivated and Pending wait for the person
// or an admin and read as InProgress; so does any phase while its messages are delivered.
func setMemberReady(m *rosterv1.Member) {
	p := settled
	if hasPending(m.Status.Deliveries) {
		p = working
	}
	patchCmd := func(field, value string) string {
		return fmt.Sprintf(`kubectl patch mem %s -n %s --type=merge -p '{"spec":{"%s":"%s"}}'`, m.Name, m.Namespace, field, value)
	}
	switch m.Status.Phase {
	case rosterv1.MemberActive:
		conclude(m, p, true, rosterv1.ReasonActive, "The member is active.")
	case rosterv1.MemberInactivated:
		conclude(m, p, false, rosterv1.ReasonAwaitingSignUp, "Invited; waiting for the person to open the invitation link and sign up. "+
			"To send it again, raise spec.resendRequests on the Invitation.")
	case rosterv1.MemberPending:
		conclude(m, p, false, rosterv1.ReasonWaitingForApproval, "Signed up and waiting for an admin's approval: "+patchCmd("approval", "Approved")+
			" (or Rejected).")
	case rosterv1.MemberRejected:
		conclude(m, p, true, rosterv1.ReasonRejected, "Rejected by "+orSomeone(m.Status.ApprovedBy)+"; to re-approve: "+patchCmd("approval", "Approved"))
	case rosterv1.MemberTerminated:
		conclude(m, p, true, rosterv1.ReasonTerminated, "Removed; the record is kept. To restore: "+patchCmd("access", "Active"))
	}
}

func orSomeone(s string) string {
	if s == "" {
		return "an admin"
	}
	return s
}

func (r *MemberReconciler) now() *metav1.Time {
	t := metav1.NewTime(r.Clock.Now().UTC().Truncate(1e9))
	return &t
}

// SetupWithManager watches Members, and Organizations for their join rules.
func (r *MemberReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&rosterv1.Member{}).
		Watches(&rosterv1.Organization{},
			handler.EnqueueRequestsFromMapFunc(requestsForOrganization(mgr.GetClient(), &rosterv1.MemberList{})),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("member").
		Complete(r)
}
