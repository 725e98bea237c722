package controllers

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// memberTally counts each organization's members by phase as their events arrive, so that
// keeping the counts in status never lists an organization's members: one event costs the
// same in an organization of ten and of a hundred thousand. It lives in memory and is rebuilt
// from the informer's initial events when the manager starts.
type memberTally struct {
	mu sync.Mutex
	// seen is where each member was last counted.
	seen map[types.NamespacedName]tallied
	// counts are by organization.
	counts map[types.NamespacedName]rosterv1.MemberCounts
}

type tallied struct {
	org   types.NamespacedName
	phase rosterv1.MemberPhase
}

func newMemberTally() *memberTally {
	return &memberTally{seen: map[types.NamespacedName]tallied{}, counts: map[types.NamespacedName]rosterv1.MemberCounts{}}
}

// observe counts a member's current phase (or its deletion) and reports the organizations
// whose counts changed.
func (t *memberTally) observe(m *rosterv1.Member, deleted bool) []types.NamespacedName {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := types.NamespacedName{Namespace: m.Namespace, Name: m.Name}
	now := tallied{org: types.NamespacedName{Namespace: m.Namespace, Name: m.Spec.OrganizationRef.Name}, phase: m.Status.Phase}
	before, had := t.seen[key]
	if had && !deleted && before == now {
		return nil
	}
	var changed []types.NamespacedName
	if had {
		t.add(before, -1)
		delete(t.seen, key)
		changed = append(changed, before.org)
	}
	if !deleted {
		t.add(now, 1)
		t.seen[key] = now
		if !had || before.org != now.org {
			changed = append(changed, now.org)
		}
	}
	return changed
}

func (t *memberTally) add(at tallied, n int32) {
	c := t.counts[at.org]
	switch at.phase {
	case rosterv1.MemberInactivated:
		c.Inactivated += n
	case rosterv1.MemberPending:
		c.Pending += n
	case rosterv1.MemberActive:
		c.Active += n
	case rosterv1.MemberRejected:
		c.Rejected += n
	case rosterv1.MemberTerminated:
		c.Terminated += n
	}
	t.counts[at.org] = c
}

// of returns an organization's counts.
func (t *memberTally) of(org types.NamespacedName) rosterv1.MemberCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[org]
}

// handler counts each Member event, then queues the organizations whose counts changed: in
// that order, so the pass it triggers reads the new count. They are queued childBatch later,
// so that one pass writes the counts of many changes.
func (t *memberTally) handler() handler.Funcs {
	enqueue := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], orgs []types.NamespacedName) {
		for _, o := range orgs {
			q.AddAfter(reconcile.Request{NamespacedName: o}, childBatch)
		}
	}
	member := func(o client.Object) *rosterv1.Member { m, _ := o.(*rosterv1.Member); return m }
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if m := member(e.Object); m != nil {
				enqueue(q, t.observe(m, false))
			}
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if m := member(e.ObjectNew); m != nil {
				enqueue(q, t.observe(m, false))
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if m := member(e.Object); m != nil {
				enqueue(q, t.observe(m, true))
			}
		},
	}
}
