package membership_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/testenv"
	"github.com/roster-dev/roster/internal/testenv/rig"
)

// Asking to join a module on its link, against a real API server: its field selectors on
// the Collaboration's selectable fields, its AlreadyExists and its optimistic locking are
// what keep one person to one object. No controllers and no webhooks run here; the API
// server alone decides.
func TestAskToJoin(t *testing.T) {
	if testing.Short() || os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("needs a control plane: run with KUBEBUILDER_ASSETS=$(hack/setup-envtest.sh)")
	}
	env := testenv.New(false)
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start the control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: rig.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a := &membership.Acceptor{Client: c, APIReader: c}

	newOrg := func(t *testing.T) *rosterv1.Organization {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ask-"}}
		must(t, c.Create(ctx, ns))
		org := &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns.Name},
			Spec: rosterv1.OrganizationSpec{DisplayName: "Acme"}}
		must(t, c.Create(ctx, org))
		return org
	}
	collaborations := func(t *testing.T, ns string) []rosterv1.Collaboration {
		list := &rosterv1.CollaborationList{}
		must(t, c.List(ctx, list, client.InNamespace(ns)))
		return list.Items
	}
	link := func(i int) rosterv1.ModuleLink {
		return rosterv1.ModuleLink{Kind: "Project", Name: fmt.Sprintf("p%02d", i), Role: "viewer"}
	}

	t.Run("parallel asks of one person make one Collaboration with every module Pending", func(t *testing.T) {
		org := newOrg(t)
		const asks = 24
		var wg sync.WaitGroup
		errs := make(chan error, asks)
		for i := range asks {
			wg.Go(func() {
				// Two asks for each module, with the address in any case: the same person.
				email := "Frank@Freelance.example"
				if i%2 == 0 {
					email = "frank@freelance.example"
				}
				_, err := a.AskToJoin(ctx, org, link(i/2), rosterv1.Collaborator{DisplayName: "Frank", Email: email})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("ask: %v", err)
			}
		}
		items := collaborations(t, org.Namespace)
		if len(items) != 1 {
			t.Fatalf("%d Collaborations, want exactly one", len(items))
		}
		got := items[0]
		if got.Name != membership.CollaborationName(org, rosterv1.Collaborator{Email: "frank@freelance.example"}) ||
			got.Spec.Collaborator.Email != "frank@freelance.example" {
			t.Errorf("the collaboration is %s for %+v", got.Name, got.Spec.Collaborator)
		}
		if len(got.Spec.Modules) != asks/2 {
			t.Fatalf("%d modules, want %d: %+v", len(got.Spec.Modules), asks/2, got.Spec.Modules)
		}
		for _, m := range got.Spec.Modules {
			if m.Approval != rosterv1.ModulePending || m.Role != "viewer" {
				t.Errorf("module %+v; want Pending with the link's role", m)
			}
		}

		before := got.ResourceVersion
		if _, err := a.AskToJoin(ctx, org, link(0), rosterv1.Collaborator{DisplayName: "Someone Else", Email: "frank@freelance.example"}); err != nil {
			t.Fatal(err)
		}
		after := collaborations(t, org.Namespace)[0]
		if after.ResourceVersion != before || after.Spec.Collaborator.DisplayName != "Frank" {
			t.Errorf("asking again for a module already there changed the object (rv %s -> %s, name %q)",
				before, after.ResourceVersion, after.Spec.Collaborator.DisplayName)
		}
	})

	t.Run("an admin's Collaboration of the person gets the module, approved modules stay as they are", func(t *testing.T) {
		org := newOrg(t)
		admins := &rosterv1.Collaboration{ObjectMeta: metav1.ObjectMeta{Name: "gina", Namespace: org.Namespace},
			Spec: rosterv1.CollaborationSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
				Collaborator: rosterv1.Collaborator{DisplayName: "Gina", Email: "gina@partner.example"},
				Modules:      []rosterv1.Module{{Kind: "Project", Name: "p00", Role: "editor"}}}}
		must(t, c.Create(ctx, admins))
		// The same person in another organization of the namespace is another Collaboration.
		other := admins.DeepCopy()
		other.Name, other.ResourceVersion, other.Spec.OrganizationRef.Name = "gina-other", "", "other"
		must(t, c.Create(ctx, other))

		if _, err := a.AskToJoin(ctx, org, link(0), rosterv1.Collaborator{DisplayName: "Gina", Email: "gina@partner.example"}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.AskToJoin(ctx, org, link(1), rosterv1.Collaborator{DisplayName: "Gina", Email: "gina@partner.example"}); err != nil {
			t.Fatal(err)
		}
		items := collaborations(t, org.Namespace)
		if len(items) != 2 {
			t.Fatalf("%d Collaborations, want the two the admin made", len(items))
		}
		got := &rosterv1.Collaboration{}
		must(t, c.Get(ctx, client.ObjectKeyFromObject(admins), got))
		want := []rosterv1.Module{{Kind: "Project", Name: "p00", Role: "editor", Approval: rosterv1.ModuleApproved},
			{Kind: "Project", Name: "p01", Role: "viewer", Approval: rosterv1.ModulePending}}
		if !slices.EqualFunc(got.Spec.Modules, want, func(a, b rosterv1.Module) bool { return a == b }) {
			t.Errorf("modules %+v, want %+v", got.Spec.Modules, want)
		}
		must(t, c.Get(ctx, client.ObjectKeyFromObject(other), other))
		if len(other.Spec.Modules) != 1 {
			t.Errorf("the other organization's Collaboration changed: %+v", other.Spec.Modules)
		}
	})

	t.Run("without an email the phone finds the person", func(t *testing.T) {
		org := newOrg(t)
		for i := range 3 {
			if _, err := a.AskToJoin(ctx, org, link(i), rosterv1.Collaborator{DisplayName: "Hugo", Phone: "+4915100000001"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.AskToJoin(ctx, org, link(0), rosterv1.Collaborator{DisplayName: "Ida", Phone: "+4915100000002"}); err != nil {
			t.Fatal(err)
		}
		items := collaborations(t, org.Namespace)
		if len(items) != 2 {
			t.Fatalf("%d Collaborations, want one each for Hugo and Ida", len(items))
		}
		for _, it := range items {
			if n := len(it.Spec.Modules); (it.Spec.Collaborator.DisplayName == "Hugo") != (n == 3) {
				t.Errorf("%s has %d modules", it.Spec.Collaborator.DisplayName, n)
			}
		}
	})

	t.Run("a request without a way to reach the person is refused", func(t *testing.T) {
		org := newOrg(t)
		if _, err := a.AskToJoin(ctx, org, link(0), rosterv1.Collaborator{DisplayName: "Nobody"}); err == nil ||
			!strings.Contains(err.Error(), "email address or phone number") {
			t.Errorf("err = %v", err)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
