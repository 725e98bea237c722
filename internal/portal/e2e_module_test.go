package portal

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
)

// withModuleLink offers a link for asking to join Project apollo, as a viewer.
func withModuleLink(o *rosterv1.Organization) {
	o.Spec.ModuleLinks = []rosterv1.ModuleLink{{Kind: "Project", Name: "apollo", Role: "viewer"}}
}

// moduleLink waits until the organization's link for module name is made for generation,
// and reads it from its Secret, as an admin copies it.
func moduleLink(t *testing.T, org *rosterv1.Organization, name string, generation int64) string {
	t.Helper()
	var secret string
	eventually(t, "the link of "+name+" is ready", func() bool {
		if err := e2e.k8s.Get(context.Background(), client.ObjectKeyFromObject(org), org); err != nil {
			return false
		}
		for _, l := range org.Status.ModuleLinks {
			if l.Name == name && l.LinkGeneration == generation {
				secret = l.SecretRef.Name
				return true
			}
		}
		return false
	})
	sec := &corev1.Secret{}
	must(t, e2e.k8s.Get(context.Background(), client.ObjectKey{Namespace: org.Namespace, Name: secret}, sec))
	link := string(sec.Data["link"])
	if !strings.HasPrefix(link, e2e.url+"/module/") {
		t.Fatalf("the module link is %q", link)
	}
	// A person is slower than the portal's cache; a test is not.
	eventually(t, "the portal sees the link", func() bool {
		a := &membership.Acceptor{Client: e2e.portalCfg.Client, APIReader: e2e.portalCfg.APIReader}
		_, err := a.ModuleForLink(context.Background(), link[strings.LastIndex(link, "/")+1:])
		return err == nil
	})
	return link
}

// TestModuleLinkAskToJoin: the module's link, a name and an email, the emailed code, and
// the done page; the API server then holds the person's Collaboration, PendingApproval with
// the module Pending, and the person got no mail but the code.
func TestModuleLinkAskToJoin(t *testing.T) {
	needE2E(t)
	org := newOrg(t, withModuleLink)
	link := moduleLink(t, org, "apollo", 0)
	ctx := tab(t)

	open(t, ctx, link)
	if l := location(t, ctx); l != e2e.url+"/signup" {
		t.Fatalf("after the first hop the address is %q, want the clean %s/signup", l, e2e.url)
	}
	expectPage(t, ctx, "Ask to join Project apollo", "Acme Corporation works on Project apollo with people from outside the organization")
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#username, #password, .qr').length`)); err != nil || n != 0 {
		t.Fatalf("the page asks for a username or password, or shows a QR code (%d, %v): a collaborator has no account", n, err)
	}
	shot(t, ctx, "module-ask")
	const addr = "paula@partner.example"
	fill(t, ctx, map[string]string{"displayName": "Paula Partner", "email": "Paula@Partner.example"})
	submit(t, ctx, "details")
	expectPage(t, ctx, "Check your messages", "pa•••@partner.example")
	fill(t, ctx, map[string]string{"code": codeIn(t, nextMail(t, addr))})
	submit(t, ctx, "verify")
	expectPage(t, ctx, "Done", "Your request to join Project apollo was sent. An admin of Acme Corporation will look at it; once they let you in, we will tell you.")
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#next').length`)); err != nil || n != 0 {
		t.Errorf("the done page offers to sign in (%d, %v); asking to join makes no account", n, err)
	}
	shot(t, ctx, "module-done")

	list := &rosterv1.CollaborationList{}
	must(t, e2e.k8s.List(context.Background(), list, client.InNamespace(org.Namespace)))
	if len(list.Items) != 1 {
		t.Fatalf("%d collaborations, want 1", len(list.Items))
	}
	c := &list.Items[0]
	if want := membership.CollaborationName(org, rosterv1.Collaborator{Email: addr}); c.Name != want {
		t.Errorf("the collaboration is %s, want %s", c.Name, want)
	}
	eventually(t, "the collaboration is PendingApproval", func() bool {
		return e2e.k8s.Get(context.Background(), client.ObjectKeyFromObject(c), c) == nil && c.Status.Phase == rosterv1.CollaborationPendingApproval
	})
	want := rosterv1.Module{Kind: "Project", Name: "apollo", Role: "viewer", Approval: rosterv1.ModulePending}
	if p := c.Spec.Collaborator; p.DisplayName != "Paula Partner" || p.Email != addr || len(c.Spec.Modules) != 1 || c.Spec.Modules[0] != want {
		t.Fatalf("the collaboration is %+v", c.Spec)
	}
	if c.Status.ActiveModules != 0 || c.Status.PendingModules != 1 {
		t.Errorf("status %+v", c.Status)
	}
	if n := mailsTo(addr); n != 1 {
		t.Errorf("%d mails to the person, want only the code: nobody is told they are in before an admin approves", n)
	}
}

// TestModuleLinkRefused: a rotated module link opens nothing, and a request started on it
// before the rotation cannot go on; a module link is no public join link, nor the other
// way round.
func TestModuleLinkRefused(t *testing.T) {
	needE2E(t)
	org := newOrg(t, withModuleLink)
	old := moduleLink(t, org, "apollo", 0)
	started := tab(t)
	open(t, started, old)
	expectPage(t, started, "Ask to join Project apollo")

	must(t, e2e.admin.Patch(context.Background(), org, client.RawPatch("application/merge-patch+json",
		[]byte(`{"spec":{"moduleLinks":[{"kind":"Project","name":"apollo","role":"viewer","linkGeneration":1}]}}`))))
	fresh := moduleLink(t, org, "apollo", 1)
	if fresh == old {
		t.Fatal("rotating did not make a new link")
	}
	other := tab(t)
	if status := open(t, other, old); status != 404 {
		t.Errorf("a rotated module link answers %d, want 404", status)
	}
	expectPage(t, other, "This link does not work", "replaced by a newer one")
	shot(t, other, "refused-module-link")

	fill(t, started, map[string]string{"displayName": "Rita", "email": "rita@partner.example"})
	if status := submit(t, started, "details"); status != 404 {
		t.Errorf("a request started on the old link goes on with %d, want 404", status)
	}
	expectPage(t, started, "This link does not work")
	if n := mailsTo("rita@partner.example"); n != 0 {
		t.Errorf("%d codes were sent for a rotated link", n)
	}

	token := func(link string) string { return link[strings.LastIndex(link, "/")+1:] }
	sec := &corev1.Secret{}
	must(t, e2e.k8s.Get(context.Background(), client.ObjectKey{Namespace: org.Namespace, Name: org.Status.PublicLinkSecretRef.Name}, sec))
	for _, path := range []string{"/join/" + token(fresh), "/module/" + token(string(sec.Data["link"]))} {
		if status := open(t, other, e2e.url+path); status != 404 {
			t.Errorf("%s answers %d, want 404", strings.SplitN(path, "/", 3)[1], status)
		}
	}
	list := &rosterv1.CollaborationList{}
	must(t, e2e.k8s.List(context.Background(), list, client.InNamespace(org.Namespace)))
	if len(list.Items) != 0 {
		t.Errorf("%d collaborations after refused requests", len(list.Items))
	}
}

// TestModuleLinkAddsToExistingCollaboration: someone an admin already brought into a module
// asks for another on its link; the portal, under its own RBAC, adds the module as Pending
// to their Collaboration rather than making a second one, and they stay in the first.
func TestModuleLinkAddsToExistingCollaboration(t *testing.T) {
	needE2E(t)
	org := newOrg(t, withModuleLink)
	link := moduleLink(t, org, "apollo", 0)
	const addr = "quinn@partner.example"
	c := &rosterv1.Collaboration{ObjectMeta: metav1.ObjectMeta{Name: "quinn", Namespace: org.Namespace},
		Spec: rosterv1.CollaborationSpec{OrganizationRef: rosterv1.OrganizationReference{Name: org.Name},
			Collaborator: rosterv1.Collaborator{DisplayName: "Quinn", Email: addr},
			Modules:      []rosterv1.Module{{Kind: "Task", Name: "copy", Role: "editor"}}}}
	must(t, e2e.admin.Create(context.Background(), c))
	if m := nextMail(t, addr); !strings.Contains(m.Text, "copy") {
		t.Fatalf("the first mail is not about the task: %q", m.Subject)
	}

	ctx := tab(t)
	open(t, ctx, link)
	fill(t, ctx, map[string]string{"displayName": "Quinn Q.", "email": addr})
	submit(t, ctx, "details")
	fill(t, ctx, map[string]string{"code": codeIn(t, nextMail(t, addr))})
	submit(t, ctx, "verify")
	expectPage(t, ctx, "Done", "Your request to join Project apollo was sent.")

	list := &rosterv1.CollaborationList{}
	must(t, e2e.k8s.List(context.Background(), list, client.InNamespace(org.Namespace)))
	if len(list.Items) != 1 || list.Items[0].Name != "quinn" {
		t.Fatalf("collaborations %d (want only the admin's quinn)", len(list.Items))
	}
	eventually(t, "the request is counted", func() bool {
		return e2e.k8s.Get(context.Background(), client.ObjectKeyFromObject(c), c) == nil && c.Status.PendingModules == 1 &&
			c.Status.ObservedGeneration == c.Generation
	})
	want := []rosterv1.Module{{Kind: "Task", Name: "copy", Role: "editor", Approval: rosterv1.ModuleApproved},
		{Kind: "Project", Name: "apollo", Role: "viewer", Approval: rosterv1.ModulePending}}
	if len(c.Spec.Modules) != 2 || c.Spec.Modules[0] != want[0] || c.Spec.Modules[1] != want[1] || c.Spec.Collaborator.DisplayName != "Quinn" {
		t.Fatalf("the collaboration is %+v", c.Spec)
	}
	if c.Status.Phase != rosterv1.CollaborationActive || c.Status.ActiveModules != 1 {
		t.Errorf("status %+v; the person stays in the task", c.Status)
	}
}
