package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// The seat allocator.
//
// Each application's licensed seats are handed out by one writer: the Organization
// controller, which already reconciles one organization at a time (controller-runtime never
// runs two passes for one key at once, and one manager leads). Its decision is the label
// org.roster.dev/seat=granted on each ExternalUser that holds a seat; nothing else writes
// that label (the admission webhook refuses it from anyone but Roster). The ExternalUser
// controller only reads it: a user whose facts make them Active becomes Active only with
// the label, and writes that phase with the resourceVersion of the copy it read the label
// on, so a seat taken back in the meantime makes the write fail rather than count twice.
//
// A label on each user, rather than a list of holders in the Organization's status, keeps
// the Organization's size independent of its users, lets `kubectl get xu -l
// org.roster.dev/seat=granted` show the holders, and leaves every status with one writer.
//
// The invariant, at every moment: Active users <= seats. The allocator counts a seat as
// taken while its user has the label or is still Active (a seat taken back stays taken until
// its user's status says so), grants only into seats not taken so, and decides on a list
// read past the cache, so its own earlier grants are never missed. Holders keep their seats
// (no one is thrown out because someone older comes back from Locked); free seats go to the
// oldest waiting users (creationTimestamp, then name); when seats shrink the newest holders
// give theirs back; an expired license or one without seats takes every seat back. Raising
// seats or renewing the license makes the Organization change, which brings the allocator
// back to admit the waiting.

// seatPlan is what the allocator changes: the users to grant a seat and to take it from.
type seatPlan struct {
	grant, revoke []*rosterv1.ExternalUser
}

// planSeats decides who holds the seats of an organization's applications, from the
// organization's external users as they are now.
func planSeats(org *rosterv1.Organization, users []rosterv1.ExternalUser, now time.Time) seatPlan {
	var plan seatPlan
	byApp := map[string][]*rosterv1.ExternalUser{}
	for i := range users {
		x := &users[i]
		if x.Spec.OrganizationRef.Name != org.Name {
			continue
		}
		if application(org, x.Spec.Application) == nil {
			if holdsLabel(x) {
				plan.revoke = append(plan.revoke, x)
			}
			continue
		}
		byApp[x.Spec.Application] = append(byApp[x.Spec.Application], x)
	}
	for _, a := range org.Spec.Applications {
		app := a
		xs := byApp[a.Name]
		slices.SortFunc(xs, func(p, q *rosterv1.ExternalUser) int {
			return cmp.Or(p.CreationTimestamp.Compare(q.CreationTimestamp.Time), cmp.Compare(p.Name, q.Name))
		})
		seats := 0
		if licenseActive(&app, now) {
			seats = int(a.License.Seats)
		}
		var keep, waiting []*rosterv1.ExternalUser
		for _, x := range xs {
			switch {
			case holdsLabel(x) && wantsSeat(x, &app) && x.DeletionTimestamp.IsZero():
				keep = append(keep, x)
			case holdsLabel(x):
				plan.revoke = append(plan.revoke, x)
			case wantsSeat(x, &app) && x.DeletionTimestamp.IsZero():
				waiting = append(waiting, x)
			}
		}
		if len(keep) > seats {
			plan.revoke = append(plan.revoke, keep[seats:]...)
			keep = keep[:seats]
		}
		taken := len(keep)
		for _, x := range xs {
			// A user still Active without a kept label holds their seat until their status
			// says otherwise.
			if x.Status.Phase == rosterv1.ExternalUserActive && !slices.Contains(keep, x) {
				taken++
			}
		}
		for _, x := range waiting {
			if taken >= seats {
				break
			}
			plan.grant = append(plan.grant, x)
			taken++
		}
	}
	return plan
}

func holdsLabel(x *rosterv1.ExternalUser) bool {
	return x.Labels[rosterv1.LabelSeat] == rosterv1.SeatGranted
}

// allocateSeats decides the seats of the organization's applications and shows their use in
// status.applications. The cached list says whether anything is to change; only then is the
// decision made again on a list read past the cache, and carried out.
func (r *OrganizationReconciler) allocateSeats(ctx context.Context, org *rosterv1.Organization) (time.Duration, error) {
	// The cache's own objects, read and never changed here (the seats are set on the live
	// list): a deep copy of every external user on each pass would cost as much as the cache.
	list := &rosterv1.ExternalUserList{}
	if err := r.List(ctx, list, client.InNamespace(org.Namespace), client.MatchingFields{IndexOrganization: org.Name},
		client.UnsafeDisableDeepCopy); err != nil {
		return 0, err
	}
	now := r.Clock.Now()
	if plan := planSeats(org, list.Items, now); len(plan.grant)+len(plan.revoke) > 0 {
		live := &rosterv1.ExternalUserList{}
		if err := r.APIReader.List(ctx, live, client.InNamespace(org.Namespace)); err != nil {
			return 0, err
		}
		list = live
		plan = planSeats(org, live.Items, now)
		// Seats are given back before any is given out.
		for _, x := range plan.revoke {
			if err := r.setSeat(ctx, x, false); err != nil {
				return 0, err
			}
		}
		for _, x := range plan.grant {
			if err := r.setSeat(ctx, x, true); err != nil {
				return 0, err
			}
		}
	}
	r.countSeats(org, list.Items, now)
	var next time.Duration
	for _, a := range org.Spec.Applications {
		if a.License.ExpiresAt != nil && now.Before(a.License.ExpiresAt.Time) {
			if d := a.License.ExpiresAt.Sub(now) + time.Second; next == 0 || d < next {
				next = d
			}
		}
	}
	return next, nil
}

// setSeat grants or takes back a user's seat.
func (r *OrganizationReconciler) setSeat(ctx context.Context, x *rosterv1.ExternalUser, granted bool) error {
	v := "null"
	if granted {
		v = `"` + rosterv1.SeatGranted + `"`
	}
	p := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, rosterv1.LabelSeat, v)
	err := r.Patch(ctx, x, client.RawPatch(types.MergePatchType, []byte(p)))
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("seat of external user %s: %w", x.Name, err)
	}
	return nil
}

// countSeats shows, per application, the licensed seats and how many external users hold or
// wait for one.
func (r *OrganizationReconciler) countSeats(org *rosterv1.Organization, users []rosterv1.ExternalUser, now time.Time) {
	var apps []rosterv1.ApplicationStatus
	for _, a := range org.Spec.Applications {
		s := rosterv1.ApplicationStatus{Name: a.Name, Seats: a.License.Seats,
			LicenseExpired: a.License.ExpiresAt != nil && !now.Before(a.License.ExpiresAt.Time)}
		for _, x := range users {
			if x.Spec.Application != a.Name || x.Spec.OrganizationRef.Name != org.Name {
				continue
			}
			switch x.Status.Phase {
			case rosterv1.ExternalUserActive:
				s.SeatsUsed++
			case rosterv1.ExternalUserWaitingForSeat:
				s.Waiting++
			}
		}
		apps = append(apps, s)
	}
	org.Status.Applications = apps
}
