package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// The API server is stopped (etcd keeps running, as when the control plane's API servers
// restart during an upgrade) and started again on the same address with the same
// certificates. The manager recovers without a restart of its own, and nothing is lost: the
// invitations created before the outage and those created after it are all Sent.
func TestAPIServerOutage(t *testing.T) {
	ensureManager(t)
	ctx := context.Background()
	n, outage := pick(20, 100), pick(5*time.Second, 20*time.Second)
	o := newOrg(t, ctx, "apiserver")
	pid := mgr.Pid()

	before := o.invite(t, ctx, "before", n)
	// Stop while the manager is working on them: some are mailed, some not yet.
	waitFor(t, ctx, time.Minute, "the first mail", func() error {
		if len(o.sink.Messages()) == 0 {
			return fmt.Errorf("no mail yet")
		}
		return nil
	})
	restart := stopAPIServer(t, ctx)
	t.Logf("API server stopped after %d of %d mails; down for %s", len(o.sink.Messages()), n, outage)
	time.Sleep(outage) // the fault itself, not a wait for anything
	restart()
	t.Logf("API server started again")

	after := o.invite(t, ctx, "after", n)
	o.waitAllSent(t, ctx, append(before, after...), pick(3*time.Minute, 5*time.Minute))

	if mgr.Exited() || mgr.Pid() != pid {
		t.Fatalf("the manager did not survive the outage (exited %v, pid %d, was %d)", mgr.Exited(), mgr.Pid(), pid)
	}
	waitFor(t, ctx, time.Minute, "a mail for every invitation", func() error {
		got := byRecipient(o.sink)
		for _, name := range append(before, after...) {
			if len(got[email(name)]) == 0 {
				return fmt.Errorf("no mail to %s", email(name))
			}
		}
		return nil
	})
	got := byRecipient(o.sink)
	for _, name := range append(before, after...) {
		mails := got[email(name)]
		// A send whose status write failed when the API server went is sent once more, with
		// the same link; anything beyond that is a loop.
		if len(mails) > 2 {
			t.Errorf("%s got %d mails: %v", email(name), len(mails), idempotencyKeys(mails))
		}
		for _, m := range mails {
			if err := linkWorks(ctx, m); err != nil {
				t.Errorf("%v; %d mails %v; invitation: %s", err, len(mails), idempotencyKeys(mails), describeInvitation(ctx, o.ns, name))
			}
		}
	}
}

// stopAPIServer stops the API server (etcd keeps running) and checks that it is gone. The
// function it returns starts it again on the same address with the same certificates; should
// the test fail before calling it, a cleanup does, since the tests after it need an API
// server.
func stopAPIServer(t *testing.T, ctx context.Context) (restart func()) {
	t.Helper()
	apiserver := env.ControlPlane.GetAPIServer()
	// Stop reports that it had to kill the API server (see ControlPlaneStopTimeout); the
	// check below is what matters: the API server is gone.
	if err := apiserver.Stop(); err != nil {
		t.Logf("stop the API server: %v", err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = apiserver.Start()
		}
	})
	if err := cluster.Get(ctx, client.ObjectKey{Name: "default"}, &corev1.Namespace{}); err == nil || !isConnection(err) {
		t.Fatalf("the API server still answers after Stop: %v", err)
	}
	return func() {
		t.Helper()
		restarted = true
		must(t, apiserver.Start())
	}
}

// describeInvitation is what a failure message needs of an invitation: its status and link Secret.
func describeInvitation(ctx context.Context, ns, name string) string {
	inv := &rosterv1.Invitation{}
	if err := cluster.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, inv); err != nil {
		return err.Error()
	}
	out := fmt.Sprintf("phase %s, resends %d, deliveries %+v, token secret %v", inv.Status.Phase, inv.Status.ResendsHandled, inv.Status.Deliveries, inv.Status.TokenSecretRef)
	secrets := &corev1.SecretList{}
	if err := cluster.List(ctx, secrets, client.InNamespace(ns)); err == nil {
		for _, s := range secrets.Items {
			if strings.HasPrefix(s.Name, name+"-") {
				keys := []string{}
				for k := range s.Data {
					keys = append(keys, k)
				}
				out += fmt.Sprintf("; secret %s rv %s labels %v keys %v", s.Name, s.ResourceVersion, s.Labels, keys)
			}
		}
	}
	return out
}

// The SMTP server is down for a while: deliveries are retried, and once it is back every
// message arrives, in order per person.
func TestSMTPOutage(t *testing.T) {
	ensureManager(t)
	ctx := context.Background()
	n, outage := pick(10, 50), pick(5*time.Second, 30*time.Second)
	o := newOrg(t, ctx, "smtp")

	// Ned asked to join through the public link and waits for approval; he will be approved,
	// removed and restored during the outage, and must hear of it in that order.
	ned := &rosterv1.Member{}
	ned.Name, ned.Namespace = "ned", o.ns
	ned.Spec = rosterv1.MemberSpec{
		OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
		Username:        "ned", DisplayName: "Ned", Email: email("ned"), Role: rosterv1.RoleMember,
	}
	// Only Roster records how someone joined; the webhook records anyone else's Member as
	// added directly.
	ned.Spec.Provenance.JoinMethod = rosterv1.JoinMethodPublicLink
	must(t, createRetrying(ctx, asManager, ned))
	waitMember(t, ctx, o.ns, "ned", rosterv1.MemberPending)
	// Nothing is in flight to the sink when it goes down, so every mail below is one the
	// controllers had to hold and retry.
	time.Sleep(time.Second)
	mailsBefore := len(o.sink.Messages())

	must(t, o.sink.Down())
	down := time.Now()
	names := o.invite(t, ctx, "smtp", n)
	for _, p := range []struct {
		patch string
		phase rosterv1.MemberPhase
	}{
		{`{"approval":"Approved"}`, rosterv1.MemberActive},
		{`{"access":"Terminated"}`, rosterv1.MemberTerminated},
		{`{"access":"Active"}`, rosterv1.MemberActive},
	} {
		must(t, admin.Patch(ctx, ned, client.RawPatch("application/merge-patch+json", []byte(`{"spec":`+p.patch+`}`))))
		waitMember(t, ctx, o.ns, "ned", p.phase)
	}
	// The outage is real: the controllers have tried and been refused.
	waitFor(t, ctx, time.Minute, "a delivery retrying", func() error {
		inv := &rosterv1.Invitation{}
		if err := cluster.Get(ctx, client.ObjectKey{Namespace: o.ns, Name: names[0]}, inv); err != nil {
			return err
		}
		for _, c := range inv.Status.Conditions {
			if c.Type == rosterv1.ConditionReady && c.Reason == "DeliveryRetrying" {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", inv.Status.Conditions)
	})
	time.Sleep(time.Until(down.Add(outage))) // the rest of the outage
	if got := len(o.sink.Messages()); got != mailsBefore {
		t.Fatalf("the sink received %d mails while down", got-mailsBefore)
	}
	must(t, o.sink.Up())
	t.Logf("SMTP server up again after %s", outage)

	waitFor(t, ctx, pick(2*time.Minute, 4*time.Minute), "every message", func() error {
		got := byRecipient(o.sink)
		for _, name := range names {
			if len(got[email(name)]) == 0 {
				return fmt.Errorf("no mail to %s", email(name))
			}
		}
		if len(got[email("ned")]) < 3 {
			return fmt.Errorf("ned got %v", idempotencyKeys(got[email("ned")]))
		}
		return nil
	})
	o.waitAllSent(t, ctx, names, time.Minute)

	got := byRecipient(o.sink)
	keys := idempotencyKeys(got[email("ned")])
	want := []string{"/member-approved/", "/member-removed/", "/member-restored/"}
	if len(keys) != len(want) {
		t.Errorf("ned got %d mails, want %d: %v", len(keys), len(want), keys)
	} else {
		for i := range want {
			if !strings.Contains(keys[i], want[i]) {
				t.Errorf("ned's mails came in the order %v, want approved, removed, restored", keys)
				break
			}
		}
	}
	for _, name := range names {
		mails := got[email(name)]
		if len(mails) != 1 {
			t.Errorf("%s got %d mails: %v", email(name), len(mails), idempotencyKeys(mails))
		}
		for _, m := range mails {
			if err := linkWorks(ctx, m); err != nil {
				t.Error(err)
			}
		}
	}
}

func waitMember(t *testing.T, ctx context.Context, ns, name string, phase rosterv1.MemberPhase) {
	t.Helper()
	waitFor(t, ctx, time.Minute, fmt.Sprintf("member %s %s", name, phase), func() error {
		m := &rosterv1.Member{}
		if err := cluster.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
			return err
		}
		if m.Status.Phase != phase {
			return fmt.Errorf("%s: %v", m.Status.Phase, m.Status.Conditions)
		}
		return nil
	})
}
