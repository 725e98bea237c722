package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// The Invitation's clock edges, without a server: a link expires at the exact instant of
// status.expiresAt, and a resend waits until the oldest of the window's resends is a full
// window old.
func TestInvitationClockEdges(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { m := metav1.NewTime(t0.Add(d)); return &m }

	expiry := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"a nanosecond before", t0.Add(-time.Nanosecond), false},
		{"at the exact instant", t0, true},
		{"after", t0.Add(time.Second), true},
	}
	for _, c := range expiry {
		r := &InvitationReconciler{Clock: clocktesting.NewFakePassiveClock(c.now)}
		inv := &rosterv1.Invitation{Status: rosterv1.InvitationStatus{Phase: rosterv1.InvitationSent, ExpiresAt: at(0)}}
		if got := r.expiring(inv); got != c.want {
			t.Errorf("expiry %s: expiring = %v, want %v", c.name, got, c.want)
		}
	}

	// Three resends at t0, t0+1m, t0+2m fill the window; the first send (key /0) never counts.
	deliveries := []rosterv1.Delivery{
		{Key: "uid/invitation/0", State: DeliverySent, At: at(-time.Minute)},
		{Key: "uid/invitation/1", State: DeliverySent, At: at(0)},
		{Key: "uid/invitation/2", State: DeliverySent, At: at(time.Minute)},
		{Key: "uid/invitation/3", State: DeliverySent, At: at(2 * time.Minute)},
	}
	window := []struct {
		name string
		now  time.Time
		want time.Duration
	}{
		{"a second before the window's edge", t0.Add(resendWindow - time.Second), time.Second},
		{"at the window's edge the oldest falls out", t0.Add(resendWindow), 0},
		{"long after", t0.Add(time.Hour), 0},
	}
	for _, c := range window {
		r := &InvitationReconciler{Clock: clocktesting.NewFakePassiveClock(c.now)}
		inv := &rosterv1.Invitation{Status: rosterv1.InvitationStatus{Deliveries: deliveries}}
		if got := r.resendWait(inv); got != c.want {
			t.Errorf("resend %s: wait %s, want %s", c.name, got, c.want)
		}
	}
	failed := append([]rosterv1.Delivery(nil), deliveries...)
	failed[3].State = DeliveryFailed
	r := &InvitationReconciler{Clock: clocktesting.NewFakePassiveClock(t0.Add(5 * time.Minute))}
	if got := r.resendWait(&rosterv1.Invitation{Status: rosterv1.InvitationStatus{Deliveries: failed}}); got != 0 {
		t.Errorf("a failed resend counted against the window: wait %s", got)
	}
}
