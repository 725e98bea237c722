package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/patch"
)

// object is what every Roster kind offers its reconciler.
type object interface {
	client.Object
	GetConditions() *[]metav1.Condition
	SetObservedGeneration(int64)
}

// finish is deferred by every reconciler: after a pass that succeeded it records the
// generation it acted on, and either way it writes the object's changes with one patch.
func finish(ctx context.Context, h *patch.Helper, obj object, reterr error) error {
	if reterr == nil {
		obj.SetObservedGeneration(obj.GetGeneration())
	}
	if err := h.Patch(ctx, obj); err != nil {
		return errors.Join(reterr, err)
	}
	return reterr
}

// setCondition sets a condition for the object's current generation.
func setCondition(obj object, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(obj.GetConditions(), metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: obj.GetGeneration(),
	})
}

// ready sets the Ready condition.
func ready(obj object, ok bool, reason, message string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	setCondition(obj, rosterv1.ConditionReady, status, reason, message)
}

// progress is where a pass left an object, as kstatus and GitOps dashboards read it.
type progress int

const (
	// settled: nothing left for Roster to do (kstatus Current), whether or not the object
	// is Ready; a member awaiting an admin's approval is settled and not Ready.
	settled progress = iota
	// working: Roster is still on it (kstatus InProgress): Reconciling is True.
	working
	// stalled: nothing moves without a person (kstatus Failed): Stalled is True.
	stalled
)

// conclude sets Ready and, per kstatus, Reconciling or Stalled with the same reason and
// message, removing whichever does not apply.
func conclude(obj object, p progress, isReady bool, reason, message string) {
	ready(obj, isReady, reason, message)
	for typ, on := range map[string]bool{rosterv1.ConditionReconciling: p == working, rosterv1.ConditionStalled: p == stalled} {
		if on {
			setCondition(obj, typ, metav1.ConditionTrue, reason, message)
		} else {
			meta.RemoveStatusCondition(obj.GetConditions(), typ)
		}
	}
}

// organization returns the Organization an object names, or nil with the Ready condition
// saying so when there is none (the Organization watch brings the object back once it exists).
func organization(ctx context.Context, c client.Reader, obj object, name string) (*rosterv1.Organization, error) {
	org := &rosterv1.Organization{}
	err := c.Get(ctx, client.ObjectKey{Namespace: obj.GetNamespace(), Name: name}, org)
	if client.IgnoreNotFound(err) != nil {
		return nil, fmt.Errorf("get organization %s: %w", name, err)
	}
	if err != nil {
		conclude(obj, stalled, false, rosterv1.ReasonOrganizationNotFound,
			fmt.Sprintf("Organization %q does not exist in namespace %s; create it or fix spec.organizationRef", name, obj.GetNamespace()))
		return nil, nil
	}
	if followShard(obj, org) {
		return nil, nil // the Organization's shard takes it from here
	}
	if !org.DeletionTimestamp.IsZero() {
		// It goes with its Organization, which deletes it in turn; nothing more is sent.
		conclude(obj, working, false, rosterv1.ReasonOrganizationDeleting,
			fmt.Sprintf("Organization %q is being deleted; this object is deleted with it", name))
		return nil, nil
	}
	return org, nil
}

// current reports whether obj, as read from the cache, is what the API server has now. A
// pass about to do what must happen once (an Event, a generated value, a message) checks
// first: the cache can lag behind the previous pass's own writes, and a pass that acted on
// the lagging copy would do it again. When it is not current, the write that is on its way
// triggers another pass.
func current(ctx context.Context, reader client.Reader, obj client.Object) (bool, error) {
	_, ok, err := latest(ctx, reader, obj)
	return ok, err
}

// latest reads obj past the cache and reports whether the cached copy is that version.
func latest[T client.Object](ctx context.Context, reader client.Reader, obj T) (T, bool, error) {
	fresh := obj.DeepCopyObject().(T)
	if err := reader.Get(ctx, client.ObjectKeyFromObject(obj), fresh); err != nil {
		return fresh, false, err
	}
	return fresh, fresh.GetResourceVersion() == obj.GetResourceVersion(), nil
}

// notCurrent is the result of a pass that stopped because its copy was stale.
var notCurrent = ctrl.Result{RequeueAfter: time.Second}
