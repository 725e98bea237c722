package portal

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// invite has alice invite someone by email and returns the link from the mail.
func invite(t *testing.T, org *rosterv1.Organization, name, email string) string {
	t.Helper()
	must(t, e2e.admin.Create(context.Background(), &rosterv1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: org.Namespace},
		Spec: rosterv1.InvitationSpec{OrganizationRef: rosterv1.OrganizationReference{Name: org.Name}, Method: rosterv1.InvitationMethodEmail,
			Invitee: rosterv1.Invitee{Name: strings.ToUpper(name[:1]) + name[1:], Email: email}}}))
	return linkIn(t, nextMail(t, email), "invite")
}

// member reads a Member.
func member(t *testing.T, ns, name string) *rosterv1.Member {
	t.Helper()
	m := &rosterv1.Member{}
	must(t, e2e.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, m))
	return m
}

// waitMemberPhase waits for a Member's phase.
func waitMemberPhase(t *testing.T, ns, name string, phase rosterv1.MemberPhase) *rosterv1.Member {
	t.Helper()
	var m *rosterv1.Member
	eventually(t, "Member "+name+" is "+string(phase), func() bool {
		m = &rosterv1.Member{}
		return e2e.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, m) == nil && m.Status.Phase == phase
	})
	return m
}

// TestInvitedByEmail: the mailed link, the details with the organization's required field,
// the emailed code, a password, and an Active member; then sign-in and a profile email
// change that waits for the new address's code. The used link then opens nothing.
func TestInvitedByEmail(t *testing.T) {
	needE2E(t)
	org := newOrg(t)
	link := invite(t, org, "bob", "bob@partner.example")
	ctx := tab(t)

	open(t, ctx, link)
	if l := location(t, ctx); l != e2e.url+"/signup" {
		t.Fatalf("after the first hop the address is %q, want the clean %s/signup", l, e2e.url)
	}
	expectPage(t, ctx, "You are invited to Acme Corporation", adminUser+" invited you.")
	shot(t, ctx, "signup-invitation")
	fill(t, ctx, map[string]string{"username": "bob", "department": "Engineering"})
	submit(t, ctx, "details")
	expectPage(t, ctx, "Check your messages", "bo•••@partner.example")
	shot(t, ctx, "verify")
	fill(t, ctx, map[string]string{"code": codeIn(t, nextMail(t, "bob@partner.example"))})
	submit(t, ctx, "verify")
	expectPage(t, ctx, "Choose a password")
	shot(t, ctx, "password")
	fill(t, ctx, map[string]string{"password": testPassword, "password2": testPassword})
	submit(t, ctx, "setpassword")
	expectPage(t, ctx, "Done", "Welcome to Acme Corporation!")
	shot(t, ctx, "done")

	m := waitMemberPhase(t, org.Namespace, "bob", rosterv1.MemberActive)
	if m.Spec.Username != "bob" || m.Spec.Department != "Engineering" || m.Spec.Email != "bob@partner.example" {
		t.Fatalf("the member is %+v", m.Spec)
	}

	t.Run("the used link opens nothing", func(t *testing.T) {
		other := tab(t)
		if status := open(t, other, link); status != 404 {
			t.Errorf("status %d, want 404", status)
		}
		expectPage(t, other, "This link does not work", "already used, replaced by a newer one, or cancelled")
		shot(t, other, "refused-link")
	})

	t.Run("sign in, and a new email address is written only with its code", func(t *testing.T) {
		open(t, ctx, e2e.url+"/signin")
		shot(t, ctx, "signin")
		fill(t, ctx, map[string]string{"login": "bob@partner.example", "password": "wrong password!"})
		if status := submit(t, ctx, "signin"); status != 401 {
			t.Errorf("a wrong password answers %d, want 401", status)
		}
		expectPage(t, ctx, "Sign in", "The email address, username or password is not right.")
		fill(t, ctx, map[string]string{"login": "bob", "password": testPassword})
		submit(t, ctx, "signin")
		expectPage(t, ctx, "Your details")
		shot(t, ctx, "profile")
		if member(t, org.Namespace, "bob").Status.LastLoginAt == nil {
			t.Error("the sign-in did not record status.lastLoginAt")
		}
		fill(t, ctx, map[string]string{"email": "robert@partner.example", "displayName": "Robert"})
		submit(t, ctx, "profile")
		expectPage(t, ctx, "Check your messages", "ro•••@partner.example")
		if got := member(t, org.Namespace, "bob").Spec; got.Email != "bob@partner.example" || got.DisplayName != "Robert" {
			t.Fatalf("before the code: email %q (want the old one), name %q (want the new one)", got.Email, got.DisplayName)
		}
		fill(t, ctx, map[string]string{"code": codeIn(t, nextMail(t, "robert@partner.example"))})
		submit(t, ctx, "verify")
		expectPage(t, ctx, "Your details", "Saved.")
		if got := member(t, org.Namespace, "bob").Spec.Email; got != "robert@partner.example" {
			t.Fatalf("after the code the email is %q", got)
		}
		resp := submit(t, ctx, "signout")
		if resp != 200 {
			t.Errorf("sign-out answered %d", resp)
		}
		expectPage(t, ctx, "Signed out")
		open(t, ctx, e2e.url+"/signin")
		fill(t, ctx, map[string]string{"login": "robert@partner.example", "password": testPassword})
		submit(t, ctx, "signin")
		expectPage(t, ctx, "Your details")
	})
}
