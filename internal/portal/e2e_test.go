package portal

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// invite has alice invite someone by email and returns the link from the mail.
func invite(t *testing.T, org *rosterv1.Organization, name, email string) string {
	t.Helper()
	must(t, e2e.admin.Create(context.Background(), &rosterv1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: org.Namespace},
		Spec: rosterv1.InvitationSpec{OrganizationRef: rosterv1.OrganizationReference{Name: org.Name}, Method: rosterv1.InvitationMethodEmail,
			Invitee: rosterv1.Invitee{Name: strings.ToUpper(name[:1]) + name[1:], Email: email}}}))
	link := linkIn(t, nextMail(t, email), "invite")
	// The mail leaves before the invitation's status says Sent; a person is slower than
	// the portal's cache, a test is not.
	eventually(t, "the portal sees the invitation sent", func() bool {
		inv := &rosterv1.Invitation{}
		return e2e.portalCfg.Client.Get(context.Background(), client.ObjectKey{Namespace: org.Namespace, Name: name}, inv) == nil &&
			inv.Status.Phase == rosterv1.InvitationSent
	})
	return link
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
		shot(t, ctx, "signed-out")
		open(t, ctx, e2e.url+"/signin")
		fill(t, ctx, map[string]string{"login": "robert@partner.example", "password": testPassword})
		submit(t, ctx, "signin")
		expectPage(t, ctx, "Your details")
	})
}

// signUpMember fills the details, the emailed code and a password on a member sign-up that
// is open in ctx.
func signUpMember(t *testing.T, ctx context.Context, username, email string) {
	t.Helper()
	fill(t, ctx, map[string]string{"username": username, "displayName": strings.ToUpper(username[:1]) + username[1:], "email": email, "department": "Sales"})
	submit(t, ctx, "details")
	expectPage(t, ctx, "Check your messages")
	fill(t, ctx, map[string]string{"code": codeIn(t, nextMail(t, email))})
	submit(t, ctx, "verify")
	expectPage(t, ctx, "Choose a password")
	fill(t, ctx, map[string]string{"password": testPassword, "password2": testPassword})
	submit(t, ctx, "setpassword")
}

// TestDoorNumberJoin: the start page takes a door number; the joiner waits for approval.
func TestDoorNumberJoin(t *testing.T) {
	needE2E(t)
	org := newOrg(t)
	ctx := tab(t)
	open(t, ctx, e2e.url+"/")
	expectPage(t, ctx, "Join an organization")
	shot(t, ctx, "home")
	fill(t, ctx, map[string]string{"door": "0000000"})
	if status := submit(t, ctx, "join"); status != 404 {
		t.Errorf("an unknown door number answers %d, want 404", status)
	}
	expectPage(t, ctx, "No organization found")
	shot(t, ctx, "refused-door")
	open(t, ctx, e2e.url+"/")
	fill(t, ctx, map[string]string{"door": org.Status.DoorNumber})
	submit(t, ctx, "join")
	expectPage(t, ctx, "Ask to join Acme Corporation", "An admin of the organization approves every request to join.")
	shot(t, ctx, "signup-door")
	signUpMember(t, ctx, "dora", "dora@example.org")
	expectPage(t, ctx, "Done", "An admin will look at your request")
	m := waitMemberPhase(t, org.Namespace, "dora", rosterv1.MemberPending)
	if m.Spec.Provenance.JoinMethod != rosterv1.JoinMethodDoorNumber || m.Spec.Provenance.InvitedBy != "" {
		t.Fatalf("provenance %+v", m.Spec.Provenance)
	}
}

// TestPublicLinkJoin: the public link's page shows its QR code and the joiner waits for
// approval.
func TestPublicLinkJoin(t *testing.T) {
	needE2E(t)
	org := newOrg(t)
	sec := &corev1.Secret{}
	must(t, e2e.k8s.Get(context.Background(), client.ObjectKey{Namespace: org.Namespace, Name: org.Status.PublicLinkSecretRef.Name}, sec))
	ctx := tab(t)
	open(t, ctx, string(sec.Data["link"]))
	expectPage(t, ctx, "Ask to join Acme Corporation")
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelector('.qr img').naturalWidth`))
	must(t, err)
	if width < 100 {
		t.Fatalf("the QR code image did not load (width %d)", width)
	}
	shot(t, ctx, "signup-public-link")
	signUpMember(t, ctx, "pat", "pat@example.org")
	expectPage(t, ctx, "Done")
	if m := waitMemberPhase(t, org.Namespace, "pat", rosterv1.MemberPending); m.Spec.Provenance.JoinMethod != rosterv1.JoinMethodPublicLink {
		t.Fatalf("provenance %+v", m.Spec.Provenance)
	}
}

// externalUser reads an ExternalUser.
func externalUser(t *testing.T, ns, name string) *rosterv1.ExternalUser {
	t.Helper()
	x := &rosterv1.ExternalUser{}
	must(t, e2e.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, x))
	return x
}

func waitXUPhase(t *testing.T, ns, name string, phase rosterv1.ExternalUserPhase) *rosterv1.ExternalUser {
	t.Helper()
	var x *rosterv1.ExternalUser
	eventually(t, "ExternalUser "+name+" is "+string(phase), func() bool {
		x = &rosterv1.ExternalUser{}
		return e2e.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, x) == nil && x.Status.Phase == phase
	})
	return x
}

// signIn signs in on a fresh sign-in page.
func signIn(t *testing.T, ctx context.Context, login string) int {
	t.Helper()
	open(t, ctx, e2e.url+"/signin")
	fill(t, ctx, map[string]string{"login": login, "password": testPassword})
	return submit(t, ctx, "signin")
}

// TestExternalSelfRegistration: registration with an emailed code ends in PendingApproval;
// sign-in says so until an admin approves; then it works and records lastLoginAt.
func TestExternalSelfRegistration(t *testing.T) {
	needE2E(t)
	org := newOrg(t)
	ctx := tab(t)
	open(t, ctx, e2e.url+"/register/"+org.Namespace+"/acme/support")
	expectPage(t, ctx, "Register for Support Portal")
	shot(t, ctx, "signup-self-registration")
	fill(t, ctx, map[string]string{"displayName": "Sam Client", "email": "sam@client.example"})
	submit(t, ctx, "details")
	fill(t, ctx, map[string]string{"code": codeIn(t, nextMail(t, "sam@client.example"))})
	submit(t, ctx, "verify")
	fill(t, ctx, map[string]string{"password": testPassword, "password2": testPassword})
	submit(t, ctx, "setpassword")
	expectPage(t, ctx, "Done", "An admin will approve your registration")

	list := &rosterv1.ExternalUserList{}
	must(t, e2e.k8s.List(context.Background(), list, client.InNamespace(org.Namespace)))
	if len(list.Items) != 1 {
		t.Fatalf("%d external users, want 1", len(list.Items))
	}
	name := list.Items[0].Name
	x := waitXUPhase(t, org.Namespace, name, rosterv1.ExternalUserPendingApproval)
	if x.Spec.Email != "sam@client.example" || !x.Status.SelfRegistered || x.Spec.Approval != "" {
		t.Fatalf("the registration is %+v / %+v", x.Spec, x.Status)
	}
	if n := mailsTo("sam@client.example"); n != 1 {
		t.Errorf("%d mails to the registrant, want only the code (no invitation link)", n)
	}

	if status := signIn(t, ctx, "sam@client.example"); status != 403 {
		t.Errorf("a pending registration signs in with %d, want 403", status)
	}
	expectPage(t, ctx, "Waiting for approval", "Support Portal")
	shot(t, ctx, "refused-pending")

	must(t, e2e.admin.Patch(context.Background(), x, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"approval":"Approved"}}`))))
	waitXUPhase(t, org.Namespace, name, rosterv1.ExternalUserActive)
	signIn(t, ctx, "sam@client.example")
	expectPage(t, ctx, "Your details")
	if externalUser(t, org.Namespace, name).Status.LastLoginAt == nil {
		t.Fatal("the sign-in did not record status.lastLoginAt")
	}
}

// linkFor waits for an external user's individual link in their mail. Until the
// ExternalUser controller sets status.linkExpiresAt (the portal's contract with it), the
// test sets it as the manager would.
func linkFor(t *testing.T, ns, name, email string) string {
	t.Helper()
	link := linkIn(t, nextMail(t, email), "portal")
	must(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		x := externalUser(t, ns, name)
		if x.Status.LinkExpiresAt != nil {
			return nil
		}
		exp := metav1.NewTime(time.Now().Add(time.Hour))
		x.Status.LinkExpiresAt = &exp
		return e2e.manager.Status().Update(context.Background(), x)
	}))
	return link
}

func addExternalUser(t *testing.T, org *rosterv1.Organization, name, app, email string, skip bool) {
	t.Helper()
	must(t, e2e.admin.Create(context.Background(), &rosterv1.ExternalUser{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: org.Namespace},
		Spec: rosterv1.ExternalUserSpec{OrganizationRef: rosterv1.OrganizationReference{Name: org.Name}, Application: app, DisplayName: name,
			Email: email, Invitation: rosterv1.ExternalUserInvitation{SkipContactConfirmation: skip}}}))
}

// TestExternalIndividualLink: an admin who vouched for the address lets the person skip the
// code; the user becomes Active. Raising linkGeneration makes the old link stop working.
func TestExternalIndividualLink(t *testing.T) {
	needE2E(t)
	org := newOrg(t)
	addExternalUser(t, org, "erin", "support", "erin@partner.example", true)
	link := linkFor(t, org.Namespace, "erin", "erin@partner.example")
	ctx := tab(t)
	open(t, ctx, link)
	expectPage(t, ctx, "Register for Support Portal")
	shot(t, ctx, "signup-external-link")
	submit(t, ctx, "details")
	expectPage(t, ctx, "Choose a password")
	fill(t, ctx, map[string]string{"password": testPassword, "password2": testPassword})
	submit(t, ctx, "setpassword")
	expectPage(t, ctx, "Done", "You can sign in now")
	x := waitXUPhase(t, org.Namespace, "erin", rosterv1.ExternalUserActive)
	if !x.Status.EmailVerified || x.Status.RegisteredAt == nil {
		t.Fatalf("status %+v", x.Status)
	}

	t.Run("rotated link", func(t *testing.T) {
		addExternalUser(t, org, "finn", "support", "finn@partner.example", false)
		old := linkFor(t, org.Namespace, "finn", "finn@partner.example")
		x := externalUser(t, org.Namespace, "finn")
		must(t, e2e.admin.Patch(context.Background(), x, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"invitation":{"linkGeneration":1}}}`))))
		eventually(t, "the link is rotated", func() bool { return externalUser(t, org.Namespace, "finn").Status.LinkGeneration == 1 })
		other := tab(t)
		if status := open(t, other, old); status != 404 {
			t.Errorf("a rotated link answers %d, want 404", status)
		}
		expectPage(t, other, "This link does not work")
	})
}
