package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// An admin writes while the controllers write: resend requests on the invitations (merge
// patches, as `kubectl roster resend` does) and the members' work details (read, change,
// update with the resourceVersion read, as `kubectl edit` does), while the invitation
// controller sends and records the resends and the member controller mirrors the department
// into a label. Nothing either side wrote is lost.
func TestConflicts(t *testing.T) {
	ensureManager(t)
	ctx := context.Background()
	n, rounds := pick(20, 100), pick(5, 10)
	o := newOrg(t, ctx, "conflicts")
	names := o.invite(t, ctx, "conflict", n)
	o.waitAllSent(t, ctx, names, pick(2*time.Minute, 5*time.Minute))

	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	sem := make(chan struct{}, 8)
	for i, name := range names {
		wg.Add(2)
		// Two resends, each while the controllers are busy with the one before or with the
		// member edits.
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for r := 1; r <= 2; r++ {
				time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
				inv := &rosterv1.Invitation{}
				inv.Name, inv.Namespace = name, o.ns
				patch := fmt.Sprintf(`{"spec":{"resendRequests":%d}}`, r)
				if err := admin.Patch(ctx, inv, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
					errs <- fmt.Errorf("resend %s: %w", name, err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rng := rand.New(rand.NewPCG(uint64(i), 2))
			for r := 0; r < rounds; r++ {
				time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
				err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
					m := &rosterv1.Member{}
					if err := admin.Get(ctx, client.ObjectKey{Namespace: o.ns, Name: name}, m); err != nil {
						return err
					}
					m.Spec.Department, m.Spec.Position = fmt.Sprintf("Dept %d", r), fmt.Sprintf("Position %d", r)
					return admin.Update(ctx, m)
				})
				if err != nil {
					errs <- fmt.Errorf("edit member %s: %w", name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	wantDept := fmt.Sprintf("Dept %d", rounds-1)
	wantLabel := regexp.MustCompile(`[^-A-Za-z0-9_.]`).ReplaceAllString(wantDept, "-")
	waitFor(t, ctx, pick(2*time.Minute, 5*time.Minute), "every resend handled and every label current", func() error {
		invs := &rosterv1.InvitationList{}
		if err := cluster.List(ctx, invs, client.InNamespace(o.ns)); err != nil {
			return err
		}
		for _, inv := range invs.Items {
			if inv.Spec.ResendRequests != 2 {
				return fmt.Errorf("invitation %s: resendRequests %d, the admin wrote 2", inv.Name, inv.Spec.ResendRequests)
			}
			if inv.Status.ResendsHandled != 2 || inv.Status.Phase != rosterv1.InvitationSent || inv.Status.ObservedGeneration != inv.Generation {
				return fmt.Errorf("invitation %s: %s, %d resends handled, generation %d observed %d: %v", inv.Name, inv.Status.Phase,
					inv.Status.ResendsHandled, inv.Generation, inv.Status.ObservedGeneration, inv.Status.Conditions)
			}
		}
		members := &rosterv1.MemberList{}
		if err := cluster.List(ctx, members, client.InNamespace(o.ns)); err != nil {
			return err
		}
		for _, m := range members.Items {
			if m.Spec.Department != wantDept || m.Spec.Position != fmt.Sprintf("Position %d", rounds-1) {
				return fmt.Errorf("member %s: department %q position %q; the admin's last write was %q", m.Name, m.Spec.Department, m.Spec.Position, wantDept)
			}
			if got := m.Labels[rosterv1.LabelDepartment]; got != wantLabel {
				return fmt.Errorf("member %s: department label %q, want %q", m.Name, got, wantLabel)
			}
		}
		if len(members.Items) != n {
			return fmt.Errorf("%d members for %d invitations", len(members.Items), n)
		}
		return nil
	})

	// Each resend is a mail with a new link (a resend waits for the one before it to go
	// out), so three mails per person; the newest link works.
	waitFor(t, ctx, time.Minute, "the resent mails", func() error {
		got := byRecipient(o.sink)
		for _, name := range names {
			mails := got[email(name)]
			if len(mails) != 3 {
				return fmt.Errorf("%s got %d mails: %v", email(name), len(mails), idempotencyKeys(mails))
			}
			if err := linkWorks(ctx, mails[len(mails)-1]); err != nil {
				return err
			}
		}
		return nil
	})
}
