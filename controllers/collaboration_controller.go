package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/notify"
	"github.com/roster-dev/roster/internal/patch"
)

// CollaborationReconciler keeps a Collaboration's phase and module count in step with its
// modules, tells the person about every module they are added to or removed from, expires
// modules, and cleans up a collaboration that is in no module any more.
type CollaborationReconciler struct {
	// Shard is the part of the organizations this manager reconciles; empty for all.
	Shard Shard
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Notifications tell the person about their modules.
	Notifications
}

// Reconcile gathers the facts, decides with decideCollaboration, and acts on the decision:
// status, Events, messages, deletion.
func (r *CollaborationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	c := &rosterv1.Collaboration{}
	if err := r.Get(ctx, req.NamespacedName, c); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.Shard.Has(c) {
		return ctrl.Result{}, nil // another shard's
	}
	if !c.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	helper, err := patch.NewHelper(c, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	deleted := false
	defer func() {
		if !deleted {
			reterr = finish(ctx, helper, c, reterr)
		}
	}()

	org, err := organization(ctx, r.Client, c, c.Spec.OrganizationRef.Name)
	if err != nil || org == nil {
		// Missing, or being deleted and the collaboration with it: the conditions say so, and
		// nobody is told anything.
		return ctrl.Result{}, err
	}
	d := decideCollaboration(collaborationFacts{Collaboration: c, Organization: org}, r.Clock.Now())
	if d.changes(c) {
		if ok, err := current(ctx, r.APIReader, c); err != nil || !ok {
			return notCurrent, err
		}
	}
	if d.Delete {
		deleted, err = r.delete(ctx, c, d)
		return ctrl.Result{}, err
	}
	r.apply(c, d)
	res, err := r.notify(ctx, c, org)
	if d.RequeueAfter > 0 && (res.RequeueAfter == 0 || d.RequeueAfter < res.RequeueAfter) {
		// Look again when the next module expires.
		res.RequeueAfter = d.RequeueAfter + time.Second
	}
	return res, err
}

// apply writes the decision into the collaboration's status, records its Events and queues
// its messages.
func (r *CollaborationReconciler) apply(c *rosterv1.Collaboration, d collaborationDecision) {
	c.Status.Phase = d.Phase
	c.Status.ActiveModules = d.ActiveModules
	c.Status.PendingModules = d.PendingModules
	c.Status.NotifiedModules = d.NotifiedModules
	for _, m := range d.Queue {
		r.outbox(r.Clock).queue(c, m.Key, m.Channel)
	}
	for _, e := range d.Events {
		r.Recorder.Eventf(c, nil, e.Type, e.Reason, "Reconcile", "%s", e.Note)
	}
	if d.Notified != nil {
		setCondition(c, rosterv1.ConditionNotified, d.Notified.Status, d.Notified.Reason, d.Notified.Message)
	}
	conclude(c, d.Progress, d.Ready, d.Reason, d.Message)
}

// delete removes a collaboration that is in no module any more and whose person was told.
// The preconditions make it fail when the object changed since it was read, such as a
// module added back a moment ago; the change brings it back for another look.
func (r *CollaborationReconciler) delete(ctx context.Context, c *rosterv1.Collaboration, d collaborationDecision) (bool, error) {
	for _, e := range d.Events {
		r.Recorder.Eventf(c, nil, e.Type, e.Reason, "Reconcile", "%s", e.Note)
	}
	err := r.Delete(ctx, c, client.Preconditions{UID: &c.UID, ResourceVersion: &c.ResourceVersion})
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case apierrors.IsConflict(err):
		return false, fmt.Errorf("the collaboration changed while being deleted; looking again")
	case err != nil:
		return false, fmt.Errorf("delete collaboration: %w", err)
	}
	r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, rosterv1.EventCollaborationDeleted, "Delete",
		"%s is in no module any more and was told; the Collaboration was deleted (cleanupPolicy Delete)", c.Spec.Collaborator.DisplayName)
	return true, nil
}

// notify sends the collaboration's waiting messages in order.
func (r *CollaborationReconciler) notify(ctx context.Context, c *rosterv1.Collaboration, org *rosterv1.Organization) (ctrl.Result, error) {
	if !hasPending(c.Status.Deliveries) {
		return ctrl.Result{}, nil
	}
	settings, err := notificationSettings(ctx, r.Client, org)
	if err != nil {
		msg := fmt.Sprintf("The Organization's notification channel cannot be used: %s. Fix it (kubectl edit org %s -n %s); "+
			"the messages are sent once it works", err, org.Name, org.Namespace)
		setCondition(c, rosterv1.ConditionNotified, metav1.ConditionFalse, rosterv1.ReasonNotificationsMisconfigured, msg)
		conclude(c, stalled, c.Status.Phase == rosterv1.CollaborationActive, rosterv1.ReasonNotificationsMisconfigured, msg)
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	build := func(d rosterv1.Delivery) notify.Message {
		return collaborationMessageFor(c, org, d.Key, r.Clock.Now())
	}
	failed := func(d rosterv1.Delivery, err error) {
		r.Recorder.Eventf(c, nil, corev1.EventTypeWarning, rosterv1.ReasonMessageFailed, "Send", "%s could not be delivered: %s", keyTemplate(d.Key), d.Error)
	}
	retry, err := r.outbox(r.Clock).flush(ctx, c, settings, build, failed)
	return ctrl.Result{RequeueAfter: retry}, err
}

// collaborationMessageFor renders the message a delivery key names.
func collaborationMessageFor(c *rosterv1.Collaboration, org *rosterv1.Organization, key string, now time.Time) notify.Message {
	tmpl, id, _ := parseCollaborationKey(key)
	kind, name, _ := strings.Cut(id, "/")
	var reason string
	for _, m := range c.Spec.Modules {
		if keyModule(c, m.Kind, m.Name) != id {
			continue
		}
		name = m.Name
		if tmpl == notify.TemplateCollaboratorRemoved && m.ExpiresAt != nil && !now.Before(m.ExpiresAt.Time) {
			reason = "your access ended on " + m.ExpiresAt.UTC().Format(time.RFC1123)
		}
	}
	p := c.Spec.Collaborator
	return notify.Message{
		Key:      key,
		Template: tmpl,
		To:       notify.Recipient{Name: p.DisplayName, Email: p.Email, Phone: p.Phone},
		Data: map[string]any{
			"OrganizationName": org.Spec.DisplayName,
			"InviteeName":      p.DisplayName,
			"ModuleKind":       kind,
			"ModuleName":       name,
			"Reason":           reason,
			"PortalURL":        org.Spec.PortalURL,
		},
	}
}

// SetupWithManager watches Collaborations, and Organizations for their channels.
func (r *CollaborationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&rosterv1.Collaboration{}).
		Watches(&rosterv1.Organization{},
			handler.EnqueueRequestsFromMapFunc(requestsForOrganization(mgr.GetClient(), &rosterv1.CollaborationList{})),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("collaboration").
		Complete(r)
}
