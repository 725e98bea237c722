package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// The manager is killed with SIGKILL at random moments while invitations are in flight, and a
// new one started each time, as when a pod is OOM-killed and replaced. Afterwards every
// invitation is Sent, every Member exists once, nobody got more than one extra mail per kill,
// and every mail anybody got carries a link that works.
func TestManagerCrashes(t *testing.T) {
	ensureManager(t)
	ctx := context.Background()
	n, kills := pick(100, 500), pick(2, 10)
	o := newOrg(t, ctx, "crash")

	// All invitations exist before the first kill: while the manager is down its webhooks are
	// too, and creates are refused (failurePolicy Fail), which is not what this test is about.
	names := o.invite(t, ctx, "crash", n)

	// Kill number k comes once the sink has received about k/(kills+1) of the mails, plus a
	// random share, so every kill lands while work is left and at a different point of a
	// reconcile each run: before a send, between a send and its status write, after.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	t.Logf("%d invitations, %d kills", n, kills)
	for k := 1; k <= kills; k++ {
		target := n*k/(kills+1) + rng.IntN(n/(2*(kills+1))+1)
		waitFor(t, ctx, 3*time.Minute, fmt.Sprintf("%d mails before kill %d", target, k), func() error {
			if got := len(o.sink.Messages()); got < target {
				return fmt.Errorf("%d mails", got)
			}
			return nil
		})
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
		before := len(o.sink.Messages())
		mgr.Kill()
		t.Logf("kill %d: after %d mails", k, before)
		if before >= n {
			// A kill after the last mail tests nothing; this run would pass for the wrong reason.
			t.Errorf("kill %d came after all %d invitations were mailed; the kill points are wrong", k, n)
		}
		must(t, mgr.Start())
	}

	o.waitAllSent(t, ctx, names, pick(3*time.Minute, 10*time.Minute))

	// The last status writes may reach the API server before the sink has recorded the
	// mail's end of the SMTP conversation; wait for one mail per person.
	waitFor(t, ctx, time.Minute, "a mail for every invitation", func() error {
		got := byRecipient(o.sink)
		for _, name := range names {
			if len(got[email(name)]) == 0 {
				return fmt.Errorf("no mail to %s", email(name))
			}
		}
		return nil
	})

	t.Run("every Member exists once", func(t *testing.T) {
		members := &rosterv1.MemberList{}
		must(t, cluster.List(ctx, members, client.InNamespace(o.ns)))
		byEmail := map[string][]string{}
		for _, m := range members.Items {
			byEmail[strings.ToLower(m.Spec.Email)] = append(byEmail[strings.ToLower(m.Spec.Email)], m.Name)
		}
		for _, name := range names {
			if got := byEmail[email(name)]; len(got) != 1 {
				t.Errorf("%s has %d Members: %v", email(name), len(got), got)
			}
		}
		if len(members.Items) != n {
			t.Errorf("%d Members for %d invitations", len(members.Items), n)
		}
		invs := &rosterv1.InvitationList{}
		must(t, cluster.List(ctx, invs, client.InNamespace(o.ns)))
		for _, inv := range invs.Items {
			if inv.Status.MemberRef == nil || inv.Status.MemberRef.Name != inv.Name {
				t.Errorf("invitation %s records member %v", inv.Name, inv.Status.MemberRef)
			}
			if len(inv.Status.Deliveries) != 1 || inv.Status.Deliveries[0].State != "Sent" {
				t.Errorf("invitation %s has deliveries %+v, want one Sent", inv.Name, inv.Status.Deliveries)
			}
		}
	})

	t.Run("at most one extra mail per kill, each with a link that works", func(t *testing.T) {
		got := byRecipient(o.sink)
		extra := 0
		for _, name := range names {
			mails := got[email(name)]
			extra += len(mails) - 1
			if len(mails) > 1+kills {
				t.Errorf("%s got %d mails with %d kills: %v", email(name), len(mails), kills, idempotencyKeys(mails))
			}
			for _, m := range mails {
				if err := linkWorks(ctx, m); err != nil {
					t.Error(err)
				}
			}
		}
		t.Logf("%d mails for %d invitations: %d duplicates over %d kills", len(o.sink.Messages()), n, extra, kills)
	})
}
