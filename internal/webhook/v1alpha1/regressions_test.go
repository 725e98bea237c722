package v1alpha1

import (
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
)

// What the fuzz targets found, as plain cases through the same admission pipeline. Their
// inputs are kept in testdata/fuzz as well.

func fzMember(name, username string, role rosterv1.Role, mutate ...func(*rosterv1.Member)) *rosterv1.Member {
	m := &rosterv1.Member{
		TypeMeta:   metav1.TypeMeta{APIVersion: rosterv1.GroupVersion.String(), Kind: "Member"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: fzNS},
		Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Username: username,
			DisplayName: name, Email: name + "@acme.example", Role: role, Access: rosterv1.AccessActive},
	}
	for _, f := range mutate {
		f(m)
	}
	return m
}

var invitationOwner = metav1.OwnerReference{APIVersion: rosterv1.GroupVersion.String(), Kind: "Invitation", Name: "bob", UID: "uid-bob",
	Controller: new(true), BlockOwnerDeletion: new(true)}

func owned(m *rosterv1.Member) { m.OwnerReferences = []metav1.OwnerReference{invitationOwner} }

// wantRefused checks a decision: refused by the validating webhook with a message that
// contains want, or admitted when want is "".
func wantDecision[T client.Object](t *testing.T, v fzVerdict[T], want string) {
	t.Helper()
	switch {
	case want == "" && !v.allowed():
		t.Errorf("refused (%s): %s", v.Stage, v.Err)
	case want != "" && v.allowed():
		t.Errorf("admitted; want refused with %q", want)
	case want != "" && (v.Stage != "validate" || !strings.Contains(v.Err, want)):
		t.Errorf("refused at %s with %q; want the webhook's refusal with %q", v.Stage, v.Err, want)
	}
}

// Owner references decide what the garbage collector deletes: an object whose owners are all
// gone is deleted with them, by the garbage collector, which the webhooks let clean up. So a
// plain member who could add an owner reference to anyone's Member (every person may update
// Members, to change their own details) could have the garbage collector delete a Super
// Admin's Member, which only admins of at least that rank may delete. Only Roster and the
// cluster's own controllers change owner references now.
func TestOwnerReferencesAreRosters(t *testing.T) {
	const refused = "metadata.ownerReferences are Roster's"
	for _, tc := range []struct {
		name     string
		user     int
		old, obj *rosterv1.Member
		want     string
	}{
		{"a member gives a Super Admin's Member an owner that will be deleted", uMia,
			fzMember("gina", "gina", rosterv1.RoleSuperAdmin), fzMember("gina", "gina", rosterv1.RoleSuperAdmin, owned), refused},
		{"an admin does the same", uAlice,
			fzMember("dana", "dana", rosterv1.RoleAccountAdmin), fzMember("dana", "dana", rosterv1.RoleAccountAdmin, owned), refused},
		{"a member keeps an invited Member from going with its invitation", uMia,
			fzMember("bob", "", rosterv1.RoleMember, owned), fzMember("bob", "", rosterv1.RoleMember), refused},
		{"the manager makes an invitation's Member", uManager,
			fzMember("bob", "", rosterv1.RoleMember), fzMember("bob", "", rosterv1.RoleMember, owned), ""},
		{"the manager releases a signed-up Member", uManager,
			fzMember("bob", "bob", rosterv1.RoleMember, owned), fzMember("bob", "bob", rosterv1.RoleMember), ""},
		{"the garbage collector orphans a dependent", uGC,
			fzMember("bob", "", rosterv1.RoleMember, owned), fzMember("bob", "", rosterv1.RoleMember), ""},
		{"the portal signs someone up and drops the invitation's ownership", uPortal,
			fzMember("bob", "", rosterv1.RoleMember, owned), fzMember("bob", "bob", rosterv1.RoleMember), ""},
		{"labels and annotations stay anyone's", uMia,
			fzMember("bob", "", rosterv1.RoleMember, owned), fzMember("bob", "", rosterv1.RoleMember, owned, func(m *rosterv1.Member) {
				m.Annotations = map[string]string{"note": "x"}
			}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := memberKind.admit(t, fzCase[*rosterv1.Member]{User: fzUsers[tc.user], Op: admissionv1.Update, Old: tc.old, Obj: tc.obj})
			wantDecision(t, v, tc.want)
		})
	}

	inv := &rosterv1.Invitation{}
	if err := readSample("org_v1alpha1_invitation.yaml", inv); err != nil {
		t.Fatal(err)
	}
	inv.Namespace, inv.Spec.InvitedBy, inv.Spec.InviterRole = fzNS, "mia", rosterv1.RoleMember
	withOwner := inv.DeepCopy()
	withOwner.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "gone", UID: "uid-gone"}}
	for _, user := range []int{uMia, uAlice} {
		v := invitationKind.admit(t, fzCase[*rosterv1.Invitation]{User: fzUsers[user], Op: admissionv1.Update, Old: inv, Obj: withOwner})
		wantDecision(t, v, refused)
	}
}

// Nothing is added to an organization that is being deleted: its deletion removes what it
// has, and a Member added meanwhile would be left behind, with its role, for an organization
// of the same name made later. Invitations, external users and collaborations were refused
// already; Members, and the portal's self-registrations, were not.
func TestNothingJoinsAnOrganizationBeingDeleted(t *testing.T) {
	joiner := func(org string) *rosterv1.Member {
		return fzMember("newbie", "newbie", rosterv1.RoleMember, func(m *rosterv1.Member) {
			m.Spec.OrganizationRef.Name = org
			m.Spec.Provenance.JoinMethod = rosterv1.JoinMethodPublicLink
		})
	}
	for _, tc := range []struct {
		name string
		user int
		obj  *rosterv1.Member
		want string
	}{
		{"an admin adds a member", uAlice, fzMember("newbie", "", rosterv1.RoleMember, func(m *rosterv1.Member) { m.Spec.OrganizationRef.Name = "doomed" }),
			"Organization doomed is being deleted"},
		{"the portal's join", uPortal, joiner("doomed"), "Organization doomed is being deleted"},
		{"the portal's join of an organization that does not exist", uPortal, joiner("ghost"), "an organization that does not exist"},
		{"the portal's join of one that stays", uPortal, joiner("acme"), ""},
		{"an admin adds a member to one that stays", uAlice, fzMember("newbie", "", rosterv1.RoleMember), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := memberKind.admit(t, fzCase[*rosterv1.Member]{User: fzUsers[tc.user], Op: admissionv1.Create, Obj: tc.obj})
			wantDecision(t, v, tc.want)
		})
	}

	x := &rosterv1.ExternalUser{
		TypeMeta:   metav1.TypeMeta{APIVersion: rosterv1.GroupVersion.String(), Kind: "ExternalUser"},
		ObjectMeta: metav1.ObjectMeta{Name: "rita", Namespace: fzNS},
		Spec: rosterv1.ExternalUserSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "doomed"}, Application: "wiki",
			DisplayName: "Rita", Email: "rita@partner.example", Access: rosterv1.ExternalAccessEnabled},
	}
	v := externalUserKind.admit(t, fzCase[*rosterv1.ExternalUser]{User: fzUsers[uPortal], Op: admissionv1.Create, Obj: x})
	wantDecision(t, v, "Organization doomed is being deleted")
	x.Spec.OrganizationRef.Name = "acme"
	v = externalUserKind.admit(t, fzCase[*rosterv1.ExternalUser]{User: fzUsers[uPortal], Op: admissionv1.Create, Obj: x})
	wantDecision(t, v, "")
}

// An inviter who deletes their invitation once it was accepted was told that they "did not
// send this one (they did)".
func TestInviterDeletingAnAcceptedInvitationIsToldWhy(t *testing.T) {
	inv := &rosterv1.Invitation{}
	if err := readSample("org_v1alpha1_invitation.yaml", inv); err != nil {
		t.Fatal(err)
	}
	inv.Namespace, inv.Spec.InvitedBy, inv.Spec.InviterRole = fzNS, "mia", rosterv1.RoleMember
	inv.Status.Phase = rosterv1.InvitationAccepted
	v := invitationKind.admit(t, fzCase[*rosterv1.Invitation]{User: fzUsers[uMia], Op: admissionv1.Delete, Old: inv})
	wantDecision(t, v, "once it was accepted")
	if strings.Contains(v.Err, "did not send") {
		t.Errorf("the inviter is told they did not send their own invitation: %s", v.Err)
	}
	inv.Status.Phase = rosterv1.InvitationSent
	wantDecision(t, invitationKind.admit(t, fzCase[*rosterv1.Invitation]{User: fzUsers[uMia], Op: admissionv1.Delete, Old: inv}), "")
}
