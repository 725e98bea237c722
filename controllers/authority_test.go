package controllers_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
	"github.com/roster-dev/roster/internal/membership"
)

// Authority that cannot be forged. Every spec acts, through the real API server, as one of
// the attackers of the threat model, each of whom has RBAC to write every Roster object in
// the namespace (the test clients are in system:masters), so that only the admission
// webhooks stand in the way:
//   - mallory, an ordinary Active member of acme;
//   - eve, who is nobody in acme;
//   - oscar, a Super Admin of another organization in another namespace;
//   - adam, an Admin of acme who would like to be more.
var _ = Describe("Authority that cannot be forged", func() {
	var (
		ns                        string
		mallory, eve, oscar, adam client.Client
	)
	const (
		malloryUser = "mallory"
		eveUser     = "eve"
		oscarUser   = "oscar"
		adamUser    = "adam"
	)

	BeforeEach(func(ctx context.Context) {
		ns = newNamespace(ctx)
		newOrganization(ctx, ns)
		member(ctx, ns, malloryUser, "mallory@attack.example", rosterv1.RoleMember)
		member(ctx, ns, adamUser, "adam@attack.example", rosterv1.RoleAdmin)
		waitMember(ctx, ns, malloryUser, rosterv1.MemberActive)
		waitMember(ctx, ns, adamUser, rosterv1.MemberActive)
		other := newNamespace(ctx)
		Expect(k8sClient.Create(ctx, &rosterv1.Organization{
			ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: other},
			Spec:       rosterv1.OrganizationSpec{DisplayName: "Other", Admins: []rosterv1.Subject{{Kind: "User", Name: oscarUser}}},
		})).To(Succeed())
		mallory, eve, oscar, adam = asUser(malloryUser), asUser(eveUser), asUser(oscarUser), asUser(adamUser)
	})

	get := func(ctx context.Context, name string) *rosterv1.Member {
		m := &rosterv1.Member{}
		Expect(k8sClient.Get(ctx, key(ns, name), m)).To(Succeed())
		return m
	}
	forbidden := func(err error, message string) {
		GinkgoHelper()
		Expect(err).To(HaveOccurred())
		Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring(message))
	}

	It("roles: nobody changes a role but an admin, and nobody grants a role above their own", func(ctx context.Context) {
		By("a member promotes herself")
		forbidden(setSpec(ctx, mallory, get(ctx, malloryUser), `{"role":"SuperAdmin"}`),
			"only admins of Organization acme change spec.role (approve, reject, remove, restore, change roles and edit work details); mallory has role Member there")
		By("an admin of another organization promotes her")
		forbidden(setSpec(ctx, oscar, get(ctx, malloryUser), `{"role":"Admin"}`), "oscar has no role there")
		By("an Admin mints a Super Admin, himself or another")
		forbidden(setSpec(ctx, adam, get(ctx, adamUser), `{"role":"SuperAdmin"}`),
			"adam has role Admin in Organization acme and cannot grant or act on role SuperAdmin: nobody acts above their own role. Ask a SuperAdmin of acme")
		forbidden(setSpec(ctx, adam, get(ctx, malloryUser), `{"role":"AccountAdmin"}`), "cannot grant or act on role AccountAdmin")
		forbidden(adam.Create(ctx, invitation(ns, "boss", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "boss@attack.example"},
			func(i *rosterv1.Invitation) { i.Spec.Role = rosterv1.RoleSuperAdmin })),
			"adam has role Admin in Organization acme and cannot invite someone as SuperAdmin: nobody grants a role above their own. Invite them as Admin, or ask a SuperAdmin of acme")
		forbidden(adam.Create(ctx, &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "boss", Namespace: ns},
			Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Username: "boss", Role: rosterv1.RoleSuperAdmin}}),
			"cannot grant or act on role SuperAdmin")
		By("an Admin demotes a Super Admin")
		member(ctx, ns, "sue", "sue@attack.example", rosterv1.RoleSuperAdmin)
		waitMember(ctx, ns, "sue", rosterv1.MemberActive)
		forbidden(setSpec(ctx, adam, get(ctx, "sue"), `{"role":"Member"}`), "cannot grant or act on role SuperAdmin")

		By("within their rank, admins do change roles")
		Expect(setSpec(ctx, adam, get(ctx, malloryUser), `{"role":"Admin"}`)).To(Succeed())
		Expect(setSpec(ctx, adminClient, get(ctx, adamUser), `{"role":"SuperAdmin"}`)).To(Succeed())
		Expect(get(ctx, malloryUser).Spec.Role).To(Equal(rosterv1.RoleAdmin))
	})

	It("provenance: nothing a client writes decides whether someone needs approval", func(ctx context.Context) {
		By("an admin's directly added member is recorded as the admin's, whatever the client sent")
		m := &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "direct", Namespace: ns},
			Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, DisplayName: "Direct",
				Provenance: rosterv1.MemberProvenance{JoinMethod: rosterv1.JoinMethodPublicLink, InvitedBy: "someone", InviterRole: rosterv1.RoleMember, ApprovalBy: "someone"}}}
		Expect(adam.Create(ctx, m)).To(Succeed())
		Expect(m.Spec.Provenance).To(Equal(rosterv1.MemberProvenance{InvitedBy: adamUser, InviterRole: rosterv1.RoleAdmin}))

		By("a member who joined by the public link waits for approval; rewriting the provenance changes nothing")
		p := member(ctx, ns, "pat", "pat@attack.example", rosterv1.RoleMember, func(m *rosterv1.Member) {
			m.Spec.Provenance.JoinMethod = rosterv1.JoinMethodPublicLink
		})
		waitMember(ctx, ns, "pat", rosterv1.MemberPending)
		err := mallory.Patch(ctx, p, client.RawPatch("application/merge-patch+json",
			[]byte(`{"spec":{"provenance":{"joinMethod":null,"inviterRole":"SuperAdmin","invitedBy":"alice@acme.example"}}}`)))
		Expect(err).NotTo(HaveOccurred(), "the webhook keeps the recorded values, so the write is harmless")
		Expect(get(ctx, "pat").Spec.Provenance).To(Equal(rosterv1.MemberProvenance{JoinMethod: rosterv1.JoinMethodPublicLink}))
		poke(ctx, p)
		Consistently(func() rosterv1.MemberPhase { return get(ctx, "pat").Status.Phase }, "1s", interval).Should(Equal(rosterv1.MemberPending))

		By("nor does writing status")
		p = get(ctx, "pat")
		forbidden(mallory.Status().Patch(ctx, p, client.RawPatch("application/merge-patch+json",
			[]byte(`{"status":{"phase":"Active","requiresApproval":false}}`))), "only Roster writes a member's status")
		inv := invite(ctx, mallory, invitation(ns, "by-mallory", rosterv1.InvitationMethodLink, rosterv1.Invitee{Name: "M"}), rosterv1.InvitationSent)
		for _, c := range []client.Client{mallory, eve} {
			forbidden(c.Status().Patch(ctx, inv, client.RawPatch("application/merge-patch+json", []byte(`{"status":{"requiresApproval":false}}`))),
				"only Roster writes an invitation's status")
		}
		By("nor approving oneself")
		forbidden(setSpec(ctx, mallory, p, `{"approval":"Approved"}`), "only admins of Organization acme change spec.approval")
	})

	It("sign-up claims: only the sign-up pages set spec.username, so nobody takes over someone else's invitation", func(ctx context.Context) {
		inv := invite(ctx, adminClient, invitation(ns, "victim", rosterv1.InvitationMethodEmail,
			rosterv1.Invitee{Name: "Victim", Email: "victim@attack.example"}, func(i *rosterv1.Invitation) { i.Spec.Role = rosterv1.RoleAdmin }),
			rosterv1.InvitationSent)
		victim := waitMember(ctx, ns, "victim", rosterv1.MemberInactivated)
		for who, c := range map[string]client.Client{malloryUser: mallory, eveUser: eve, oscarUser: oscar, "alice": adminClient} {
			forbidden(setSpec(ctx, c, victim, `{"username":"`+who+`","email":"`+who+`@attack.example"}`),
				"spec.username is set when the person signs up through their invitation link; nobody sets it for them")
		}
		Consistently(func() rosterv1.InvitationPhase {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(inv), inv)).To(Succeed())
			return inv.Status.Phase
		}, "1s", interval).Should(Equal(rosterv1.InvitationSent))
	})

	It("before sign-up, where the invitation link goes is an admin's to say: nobody else redirects it", func(ctx context.Context) {
		invite(ctx, adminClient, invitation(ns, "target", rosterv1.InvitationMethodEmail,
			rosterv1.Invitee{Name: "Target", Email: "target@attack.example"}, func(i *rosterv1.Invitation) { i.Spec.Role = rosterv1.RoleAdmin }),
			rosterv1.InvitationSent)
		target := waitMember(ctx, ns, "target", rosterv1.MemberInactivated)
		for _, c := range []client.Client{mallory, eve, oscar} {
			forbidden(setSpec(ctx, c, target, `{"email":"thief@attack.example"}`),
				"change spec.email (approve, reject, remove, restore, change roles and edit work details)")
			forbidden(setSpec(ctx, c, target, `{"phone":"+4915100000666"}`), "change spec.phone")
		}
		Expect(get(ctx, "target").Spec.Email).To(Equal("target@attack.example"))
		By("an admin may correct a typo before the person signs up")
		Expect(setSpec(ctx, adminClient, target, `{"email":"target.right@attack.example"}`)).To(Succeed())
	})

	It("a second Member with someone's username, slipped past admission, holds no role and says why", func(ctx context.Context) {
		withoutValidatingWebhook(ctx, func() {
			Expect(adminClient.Create(ctx, &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "mallory-boss", Namespace: ns},
				Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Username: malloryUser, Role: rosterv1.RoleSuperAdmin}})).To(Succeed())
		})
		Eventually(func(g Gomega) {
			dup := get(ctx, "mallory-boss")
			c := readyCondition(dup.Status.Conditions)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(rosterv1.ReasonUsernameTaken))
			g.Expect(c.Message).To(ContainSubstring(`Username "mallory" is Member mallory's in Organization acme`))
		}, timeout, interval).Should(Succeed())
		forbidden(setSpec(ctx, mallory, get(ctx, adamUser), `{"approval":"Rejected"}`), "mallory has role Member there")
	})

	It("deleting the organization is a Super Admin's decision", func(ctx context.Context) {
		org := &rosterv1.Organization{}
		Expect(k8sClient.Get(ctx, key(ns, "acme"), org)).To(Succeed())
		for _, c := range []client.Client{mallory, eve, oscar, adam} {
			forbidden(c.Delete(ctx, org), "only Super Admins of Organization acme delete it")
		}
		Expect(adminClient.Delete(ctx, org)).To(Succeed())
	})

	It("members created directly: only admins add them, so nobody skips the invitation and its approval", func(ctx context.Context) {
		for who, c := range map[string]client.Client{malloryUser: mallory, eveUser: eve, oscarUser: oscar} {
			err := c.Create(ctx, &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "sneak-" + who, Namespace: ns},
				Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Username: "sneak-" + who}})
			forbidden(err, "only admins of Organization acme add members directly")
			Expect(err.Error()).To(ContainSubstring("create an Invitation for the person instead"))
		}
		By("an admin may, and the username must be free")
		forbidden(adminClient.Create(ctx, &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "mallory-2", Namespace: ns},
			Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Username: malloryUser}}),
			`username "mallory" is already Member mallory's in Organization acme`)
	})

	It("standing: only an Active member acts in their role; a pending or removed one has none", func(ctx context.Context) {
		By("an Admin who joined by the public link and waits for approval approves himself")
		member(ctx, ns, "pam", "pam@attack.example", rosterv1.RoleAdmin, func(m *rosterv1.Member) {
			m.Spec.Provenance.JoinMethod = rosterv1.JoinMethodPublicLink
		})
		pam := waitMember(ctx, ns, "pam", rosterv1.MemberPending)
		forbidden(setSpec(ctx, asUser("pam"), pam, `{"approval":"Approved"}`),
			"only admins of Organization acme change spec.approval (approve, reject, remove, restore, change roles and edit work details); pam has no role there")
		forbidden(asUser("pam").Create(ctx, invitation(ns, "from-pam", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "x@attack.example"})),
			"pam is not an active member of Organization acme; only its members invite")

		By("a removed Admin restores himself, or goes on inviting")
		Expect(setSpec(ctx, adminClient, get(ctx, adamUser), `{"access":"Terminated"}`)).To(Succeed())
		Eventually(func() rosterv1.Access { // the webhook reads the Member from the manager's cache
			m := &rosterv1.Member{}
			Expect(mgrClient.Get(ctx, key(ns, adamUser), m)).To(Succeed())
			return m.Spec.Access
		}, timeout, interval).Should(Equal(rosterv1.AccessTerminated))
		forbidden(setSpec(ctx, adam, get(ctx, adamUser), `{"access":"Active"}`),
			"only admins of Organization acme change spec.access (approve, reject, remove, restore, change roles and edit work details); adam has no role there")
		forbidden(adam.Create(ctx, invitation(ns, "from-adam", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "y@attack.example"})),
			"adam is not an active member of Organization acme; only its members invite")
		Expect(get(ctx, "pam").Spec.Approval).NotTo(Equal(rosterv1.ApprovalApproved))
		Expect(get(ctx, adamUser).Spec.Access).To(Equal(rosterv1.AccessTerminated))
	})

	It("invitations: only members invite, and only into an organization that exists", func(ctx context.Context) {
		forbidden(eve.Create(ctx, invitation(ns, "from-eve", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "x@attack.example"})),
			"eve is not an active member of Organization acme; only its members invite")
		forbidden(oscar.Create(ctx, invitation(ns, "from-oscar", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "x@attack.example"})),
			"oscar is not an active member of Organization acme")
		forbidden(adminClient.Create(ctx, invitation(ns, "early", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "x@attack.example"},
			func(i *rosterv1.Invitation) { i.Spec.OrganizationRef.Name = "later" })),
			"spec.organizationRef.name: Not found: \"later: create Organization later in namespace "+ns+" first (GitOps tools retry until it exists)\"")
		By("once the Organization exists, the same invitation is admitted and checked")
		newOrganization(ctx, ns, func(o *rosterv1.Organization) { o.Name = "later" })
		Expect(adminClient.Create(ctx, invitation(ns, "early", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "x@attack.example"},
			func(i *rosterv1.Invitation) { i.Spec.OrganizationRef.Name = "later" }))).To(Succeed())
	})

	It("plan and quota, like every setting of the organization, are an admin's to change", func(ctx context.Context) {
		org := &rosterv1.Organization{}
		Expect(k8sClient.Get(ctx, key(ns, "acme"), org)).To(Succeed())
		for _, c := range []client.Client{mallory, eve, oscar} {
			forbidden(setSpec(ctx, c, org, `{"plan":"Paid"}`), "only admins of Organization acme change its spec")
			forbidden(setSpec(ctx, c, org, `{"importQuota":{"perUserPerDay":100}}`), "only admins of Organization acme change its spec")
			forbidden(setSpec(ctx, c, org, `{"portalURL":"https://evil.example"}`), "only admins of Organization acme change its spec")
		}
		forbidden(setSpec(ctx, adam, org, `{"admins":[{"kind":"User","name":"adam"}]}`), "only Super Admins of Organization acme change spec.admins; adam has role Admin there")
		Expect(setSpec(ctx, adam, org, `{"plan":"Paid"}`)).To(Succeed())
	})

	It("daily quota: 20 parallel creates admit exactly the quota", func(ctx context.Context) {
		org := &rosterv1.Organization{}
		Expect(k8sClient.Get(ctx, key(ns, "acme"), org)).To(Succeed())
		Expect(setSpec(ctx, adminClient, org, `{"importQuota":{"perUserPerDay":5}}`)).To(Succeed())
		Eventually(func() int32 { // the webhook reads the Organization from the manager's cache
			Expect(mgrClient.Get(ctx, key(ns, "acme"), org)).To(Succeed())
			if org.Spec.ImportQuota == nil {
				return -1
			}
			return ptr.Deref(org.Spec.ImportQuota.PerUserPerDay, -1)
		}, timeout, interval).Should(BeEquivalentTo(5))
		var admitted, refused atomic.Int32
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				defer GinkgoRecover()
				err := mallory.Create(ctx, invitation(ns, fmt.Sprintf("burst-%d", i), rosterv1.InvitationMethodLink, rosterv1.Invitee{Name: fmt.Sprintf("B%d", i)}))
				switch {
				case err == nil:
					admitted.Add(1)
				case apierrors.IsForbidden(err):
					Expect(err.Error()).To(ContainSubstring("QuotaExceeded"))
					refused.Add(1)
				default:
					Fail(err.Error())
				}
			})
		}
		wg.Wait()
		Expect(admitted.Load()).To(BeEquivalentTo(5))
		Expect(refused.Load()).To(BeEquivalentTo(15))
	})

	It("deletes: only admins delete, and an inviter cancels only their own pending invitation", func(ctx context.Context) {
		invite(ctx, adminClient, invitation(ns, "admins", rosterv1.InvitationMethodLink, rosterv1.Invitee{Name: "A"}), rosterv1.InvitationSent)
		own := invite(ctx, mallory, invitation(ns, "own", rosterv1.InvitationMethodLink, rosterv1.Invitee{Name: "O"}), rosterv1.InvitationSent)
		removed := member(ctx, ns, "removed", "removed@attack.example", rosterv1.RoleMember, func(m *rosterv1.Member) { m.Spec.Access = rosterv1.AccessTerminated })
		waitMember(ctx, ns, "removed", rosterv1.MemberTerminated)

		for _, c := range []client.Client{mallory, eve, oscar} {
			forbidden(c.Delete(ctx, &rosterv1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "admins", Namespace: ns}}),
				"only admins of Organization acme delete invitations, and inviters cancel their own until accepted")
			forbidden(c.Delete(ctx, removed), "only admins of Organization acme delete members")
		}
		sue := member(ctx, ns, "sue", "sue@attack.example", rosterv1.RoleSuperAdmin)
		forbidden(adam.Delete(ctx, sue), "adam has role Admin in Organization acme and cannot grant or act on role SuperAdmin")
		Expect(mallory.Delete(ctx, own)).To(Succeed(), "an inviter cancels her own pending invitation")
		Expect(adam.Delete(ctx, removed)).To(Succeed())
	})

	It("contact invitations look only in the organization's namespace, and say nothing of others", func(ctx context.Context) {
		elsewhere := newNamespace(ctx)
		Expect(k8sClient.Create(ctx, &rosterv1.Organization{
			ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: elsewhere},
			Spec:       rosterv1.OrganizationSpec{DisplayName: "O", Admins: []rosterv1.Subject{{Kind: "User", Name: oscarUser}}},
		})).To(Succeed())
		Eventually(func() error {
			return oscar.Create(ctx, &rosterv1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "steal", Namespace: elsewhere},
				Spec: rosterv1.InvitationSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "o"}, Method: rosterv1.InvitationMethodContact,
					Invitee: rosterv1.Invitee{Username: malloryUser}}})
		}, timeout, interval).Should(Succeed())
		Expect(oscar.Create(ctx, &rosterv1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "nobody", Namespace: elsewhere},
			Spec: rosterv1.InvitationSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "o"}, Method: rosterv1.InvitationMethodContact,
				Invitee: rosterv1.Invitee{Username: "no-such-user"}}})).To(Succeed())
		messages := map[string]string{}
		for _, name := range []string{"steal", "nobody"} {
			inv := &rosterv1.Invitation{}
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, key(elsewhere, name), inv)).To(Succeed())
				g.Expect(readyCondition(inv.Status.Conditions)).NotTo(BeNil())
				g.Expect(readyCondition(inv.Status.Conditions).Reason).To(Equal("AccountNotFound"))
			}, timeout, interval).Should(Succeed())
			messages[name] = readyCondition(inv.Status.Conditions).Message
			Expect(k8sClient.Get(ctx, key(elsewhere, name), &rosterv1.Member{})).NotTo(Succeed(), "no Member with someone else's email and phone")
		}
		Expect(messages["steal"]).To(Equal(fmt.Sprintf(`No account with username "mallory" in namespace %s; invite them by email or phone instead`, elsewhere)))
		Expect(messages["nobody"]).To(Equal(fmt.Sprintf(`No account with username "no-such-user" in namespace %s; invite them by email or phone instead`, elsewhere)))
		Expect(notifier.to("mallory@attack.example")).To(BeEmpty())
	})

	It("the portal: it signs people up and changes their own fields, nothing else", func(ctx context.Context) {
		portal := k8sClientAs(portalConfig())
		m := get(ctx, malloryUser)
		By("it changes a signed-up person's name, email and phone")
		Expect(setSpec(ctx, portal, m, `{"displayName":"Mallory M.","phone":"+4915100000099"}`)).To(Succeed())
		By("but never a role, an approval, an access or work details")
		forbidden(setSpec(ctx, portal, get(ctx, malloryUser), `{"role":"SuperAdmin"}`), "the portal may not change spec.role")
		forbidden(setSpec(ctx, portal, get(ctx, malloryUser), `{"approval":"Approved"}`), "the portal may not change spec.approval")
		forbidden(setSpec(ctx, portal, get(ctx, malloryUser), `{"department":"Board"}`), "the portal may not change spec.work details")
		By("nor a status beyond the last sign-in")
		forbidden(portal.Status().Patch(ctx, get(ctx, malloryUser), client.RawPatch("application/merge-patch+json",
			[]byte(`{"status":{"phase":"Rejected","requiresApproval":true}}`))), "the portal may not write a member's status beyond lastLoginAt")
		Expect(portal.Status().Patch(ctx, get(ctx, malloryUser), client.RawPatch("application/merge-patch+json",
			[]byte(`{"status":{"lastLoginAt":"2026-01-02T03:04:05Z"}}`)))).To(Succeed())
		By("it creates only undecided ordinary members of the public link and door number")
		forbidden(portal.Create(ctx, &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "boss", Namespace: ns},
			Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Username: "boss", Role: rosterv1.RoleAdmin,
				Provenance: rosterv1.MemberProvenance{JoinMethod: rosterv1.JoinMethodPublicLink}}}), "the portal may not give a joiner a role")
		forbidden(portal.Create(ctx, &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "direct", Namespace: ns},
			Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Username: "direct"}}),
			"the portal may not create a member other than by the public link or door number")
		By("it does not touch invitations or delete anyone")
		forbidden(portal.Create(ctx, invitation(ns, "from-portal", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "p@attack.example"})),
			"is not an active member of Organization acme")
		forbidden(portal.Delete(ctx, get(ctx, malloryUser)), "the portal may not delete a member")
		By("and the manager no longer changes a signed-up person's own fields")
		forbidden(setSpec(ctx, k8sClientAs(managerCfg), get(ctx, malloryUser), `{"email":"evil@attack.example"}`),
			"they change them on the portal's profile page")
	})

	It("link tokens: only the Secret the invitation names opens it", func(ctx context.Context) {
		inv := invite(ctx, adminClient, invitation(ns, "target", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "target@attack.example"}),
			rosterv1.InvitationSent)
		token, hash, err := linktoken.New()
		Expect(err).NotTo(HaveOccurred())
		forged := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "forged-link", Namespace: ns,
			Labels: map[string]string{rosterv1.LabelPartOf: rosterv1.PartOfRoster, rosterv1.LabelInvitation: inv.Name, linktoken.HashLabel: linktoken.LabelValue(hash)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: rosterv1.GroupVersion.String(), Kind: "Invitation", Name: inv.Name, UID: inv.UID,
				Controller: ptr.To(true)}}},
			Data: map[string][]byte{linktoken.SecretKeyHash: []byte(hash)}}
		Expect(mallory.Create(ctx, forged)).To(Succeed())
		Consistently(func() error { _, err := acceptor().Lookup(ctx, token); return err }, "1s", interval).Should(MatchError(membership.ErrInvalidLink))
		_, err = acceptor().Accept(ctx, token, membership.SignUp{Username: "mallory2"})
		Expect(err).To(MatchError(membership.ErrInvalidLink))
	})

	It("a sign-up and a delete of its invitation right after: the new member stays", func(ctx context.Context) {
		invite(ctx, adminClient, invitation(ns, "quick", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "quick@attack.example"}), rosterv1.InvitationSent)
		m, err := accept(ctx, "quick@attack.example", membership.SignUp{Username: "quick"})
		Expect(err).NotTo(HaveOccurred())
		Expect(metav1.GetControllerOf(m)).To(BeNil(), "the sign-up itself releases the member from the invitation")
		Expect(adminClient.Delete(ctx, &rosterv1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "quick", Namespace: ns}})).To(Succeed())
		Eventually(func() error { return k8sClient.Get(ctx, key(ns, "quick"), &rosterv1.Invitation{}) }, timeout, interval).ShouldNot(Succeed())
		Consistently(func() error { return k8sClient.Get(ctx, key(ns, "quick"), &rosterv1.Member{}) }, "1s", interval).Should(Succeed())
	})

	It("collaborations: only admins bring outside people into modules, change or remove them; status is Roster's", func(ctx context.Context) {
		c := collaboration(ns, "carl", "carl@attack.example", inModules(rosterv1.Module{Kind: "Project", Name: "apollo"}))
		refused(mallory.Create(ctx, c.DeepCopy()), "only admins of Organization acme bring collaborators into modules")
		refused(eve.Create(ctx, c.DeepCopy()), "only admins")
		other := c.DeepCopy()
		other.Spec.OrganizationRef.Name = "nosuch"
		refused(adam.Create(ctx, other), "Organization nosuch does not exist")
		Expect(adam.Create(ctx, c)).To(Succeed(), "an Admin may")
		c = waitCollaboration(ctx, c, rosterv1.CollaborationActive)

		refused(setSpec(ctx, mallory, c, `{"modules":[{"kind":"Project","name":"apollo"},{"kind":"File","name":"secrets.xlsx"}]}`),
			"only admins of Organization acme change collaborations")
		refused(mallory.Status().Patch(ctx, c, client.RawPatch("application/merge-patch+json", []byte(`{"status":{"phase":"Removed"}}`))),
			"only Roster writes a collaboration's status")
		refused(adam.Status().Patch(ctx, c, client.RawPatch("application/merge-patch+json", []byte(`{"status":{"activeModules":0}}`))),
			"only Roster writes a collaboration's status")
		refused(mallory.Delete(ctx, c), "only admins of Organization acme remove collaborators")
		Expect(adminClient.Delete(ctx, c)).To(Succeed(), "a Super Admin may")
	})

	It("module links: the portal records requests to join and lets nobody in; members who may write collaborations are refused", func(ctx context.Context) {
		org := &rosterv1.Organization{}
		Expect(k8sClient.Get(ctx, key(ns, "acme"), org)).To(Succeed())
		Expect(setSpec(ctx, adminClient, org, `{"moduleLinks":[{"kind":"Project","name":"apollo","role":"viewer"},{"kind":"File","name":"plan.xlsx"}]}`)).To(Succeed())
		portal := k8sClientAs(portalConfig())
		asked := func(mutate ...func(*rosterv1.Module)) func(*rosterv1.Collaboration) {
			m := rosterv1.Module{Kind: "Project", Name: "apollo", Role: "viewer", Approval: rosterv1.ModulePending}
			for _, f := range mutate {
				f(&m)
			}
			return inModules(m)
		}
		jsonPatch := func(c client.Client, obj client.Object, ops string) error {
			return c.Patch(ctx, obj, client.RawPatch(types.JSONPatchType, []byte(ops)))
		}

		By("a member with RBAC to write collaborations asks for herself, or adds a module to someone's: refused as before")
		refused(mallory.Create(ctx, collaboration(ns, "mallory-asks", "mallory@attack.example", asked())), "only admins of Organization acme bring collaborators into modules")
		carl := collaboration(ns, "carl", "carl@attack.example", inModules(rosterv1.Module{Kind: "Task", Name: "copy"}))
		Expect(adminClient.Create(ctx, carl)).To(Succeed())
		refused(jsonPatch(mallory, carl, `[{"op":"add","path":"/spec/modules/-","value":{"kind":"Project","name":"apollo","role":"viewer","approval":"Pending"}}]`),
			"only admins of Organization acme change collaborations")

		By("the portal makes nobody a collaborator: every module it writes is Pending, offered by a link, with the link's role")
		refused(portal.Create(ctx, collaboration(ns, "p1", "p1@attack.example", asked(func(m *rosterv1.Module) { m.Approval = rosterv1.ModuleApproved }))),
			"the portal may not let anyone into a module: the module Project apollo must be Pending until an admin approves it")
		refused(portal.Create(ctx, collaboration(ns, "p2", "p2@attack.example", asked(func(m *rosterv1.Module) { m.Approval = "" }))),
			"must be Pending") // the API server defaults it to Approved
		refused(portal.Create(ctx, collaboration(ns, "p3", "p3@attack.example", asked(func(m *rosterv1.Module) { m.Name = "secret-project" }))),
			"the portal may not ask for the module Project secret-project: Organization acme offers no link for it in spec.moduleLinks")
		refused(portal.Create(ctx, collaboration(ns, "p4", "p4@attack.example", asked(func(m *rosterv1.Module) { m.Role = "owner" }))),
			`the portal may not ask for the module Project apollo with role "owner": its link gives role "viewer"`)
		never := metav1.NewTime(fakeClock.Now().Add(1000 * time.Hour))
		refused(portal.Create(ctx, collaboration(ns, "p5", "p5@attack.example", asked(func(m *rosterv1.Module) { m.ExpiresAt = &never }))),
			"the portal may not set when the module Project apollo expires")
		refused(portal.Create(ctx, collaboration(ns, "p6", "p6@attack.example", asked(), func(c *rosterv1.Collaboration) {
			c.Spec.CleanupPolicy = rosterv1.CleanupRetain
		})), "the portal may not choose a collaboration's cleanupPolicy")
		refused(portal.Create(ctx, collaboration(ns, "p7", "p7@attack.example", asked(), func(c *rosterv1.Collaboration) {
			c.Labels = map[string]string{"org.roster.dev/shard": "nowhere"}
		})), "the portal may not give a collaboration labels")

		By("it records a request")
		paula := collaboration(ns, "paula", "paula@attack.example", asked())
		Expect(portal.Create(ctx, paula)).To(Succeed())
		paula = waitCollaboration(ctx, paula, rosterv1.CollaborationPendingApproval)

		By("and then tries to approve it, change it, take it out, rename the person, or write status")
		refused(jsonPatch(portal, paula, `[{"op":"replace","path":"/spec/modules/0/approval","value":"Approved"}]`),
			"the portal may not change, approve or remove the module Project apollo: only admins decide on modules")
		refused(jsonPatch(portal, paula, `[{"op":"replace","path":"/spec/modules/0/role","value":"editor"}]`), "only admins decide on modules")
		refused(jsonPatch(portal, paula, `[{"op":"replace","path":"/spec/modules/0","value":{"kind":"File","name":"plan.xlsx","approval":"Pending"}}]`),
			"only admins decide on modules")
		refused(jsonPatch(portal, paula, `[{"op":"replace","path":"/spec/collaborator/email","value":"evil@attack.example"}]`),
			"the portal may not change a collaboration's person, organization or cleanup policy")
		refused(jsonPatch(portal, paula, `[{"op":"add","path":"/spec/modules/-","value":{"kind":"File","name":"plan.xlsx","approval":"Approved"}}]`),
			"the portal may not let anyone into a module")
		refused(portal.Status().Patch(ctx, paula, client.RawPatch(types.MergePatchType, []byte(`{"status":{"phase":"Active","activeModules":1}}`))),
			"the portal may not write a collaboration's status")
		refused(portal.Delete(ctx, paula), "only admins of Organization acme remove collaborators")
		By("nor does it approve anyone else's, an admin's collaborator's included")
		refused(jsonPatch(portal, carl, `[{"op":"add","path":"/spec/modules/-","value":{"kind":"File","name":"plan.xlsx","approval":"Approved"}}]`),
			"the portal may not let anyone into a module")
		refused(jsonPatch(portal, carl, `[{"op":"remove","path":"/spec/modules/0"}]`), "only admins decide on modules")

		By("it adds another request; only an admin lets her in")
		Expect(jsonPatch(portal, paula, `[{"op":"add","path":"/spec/modules/-","value":{"kind":"File","name":"plan.xlsx","approval":"Pending"}}]`)).To(Succeed())
		refused(jsonPatch(mallory, paula, `[{"op":"replace","path":"/spec/modules/0/approval","value":"Approved"}]`), "only admins of Organization acme change collaborations")
		Expect(jsonPatch(adam, paula, `[{"op":"replace","path":"/spec/modules/0/approval","value":"Approved"}]`)).To(Succeed(), "an Admin may")
		paula = waitCollaboration(ctx, paula, rosterv1.CollaborationActive)
		Expect(paula.Status.ActiveModules).To(BeEquivalentTo(1))
		Expect(paula.Status.PendingModules).To(BeEquivalentTo(1))
	})

	It("shards: nobody moves an organization's children to another shard; they follow the Organization", func(ctx context.Context) {
		relabel := func(c client.Client, obj client.Object) error {
			return c.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"org.roster.dev/shard":"nowhere"}}}`)))
		}
		refused(relabel(mallory, get(ctx, malloryUser)), "the label org.roster.dev/shard is Roster's")
		refused(relabel(adminClient, get(ctx, adamUser)), "the label org.roster.dev/shard is Roster's")
		inv := invite(ctx, mallory, invitation(ns, "shardy", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "shardy@attack.example"}), rosterv1.InvitationSent)
		refused(relabel(mallory, inv), "the label org.roster.dev/shard is Roster's")
		org := &rosterv1.Organization{}
		Expect(k8sClient.Get(ctx, key(ns, "acme"), org)).To(Succeed())
		Expect(relabel(adminClient, org)).To(Succeed(), "a Super Admin moves the Organization")
		Eventually(func() string {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(inv), inv)).To(Succeed())
			return inv.Labels["org.roster.dev/shard"]
		}, timeout, interval).Should(Equal("nowhere"), "its children follow on their next pass")
	})

	It("uniqueness: of 20 parallel sign-ups with one username, one wins", func(ctx context.Context) {
		tokens := make([]string, 20)
		for i := range 20 {
			email := fmt.Sprintf("same-%d@attack.example", i)
			invite(ctx, adminClient, invitation(ns, fmt.Sprintf("same-%d", i), rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: email}), rosterv1.InvitationSent)
			_, tokens[i] = linkIn(notifier.to(email)[0])
		}
		for _, t := range tokens { // the manager's cache has every token before the race starts
			Eventually(func() error { _, err := acceptor().Lookup(ctx, t); return err }, timeout, interval).Should(Succeed())
		}
		var won, taken atomic.Int32
		var wg sync.WaitGroup
		for _, t := range tokens {
			wg.Go(func() {
				defer GinkgoRecover()
				_, err := acceptor().Accept(ctx, t, membership.SignUp{Username: "highlander"})
				switch {
				case err == nil:
					won.Add(1)
				case err == membership.ErrUsernameTaken:
					taken.Add(1)
				default:
					Fail(err.Error())
				}
			})
		}
		wg.Wait()
		Expect(won.Load()).To(BeEquivalentTo(1))
		Expect(taken.Load()).To(BeEquivalentTo(19))
		list := &rosterv1.MemberList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		n := 0
		for _, m := range list.Items {
			if m.Spec.Username == "highlander" {
				n++
			}
		}
		Expect(n).To(Equal(1))
	})
})

var _ = Describe("Door numbers", func() {
	It("of 20 organizations created at once with one door number, one holds it", func(ctx context.Context) {
		const door = "55501234"
		namespaces := make([]string, 20)
		for i := range namespaces {
			namespaces[i] = newNamespace(ctx)
		}
		var wg sync.WaitGroup
		for _, ns := range namespaces {
			wg.Go(func() {
				defer GinkgoRecover()
				_ = k8sClient.Create(ctx, &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns},
					Spec: rosterv1.OrganizationSpec{DisplayName: "Acme", DoorNumber: door}})
			})
		}
		wg.Wait()
		// holders counts the organizations whose door number is in force, and those told that
		// it is taken; every organization that was admitted is one or the other.
		holders := func() (n, taken, admitted int) {
			for _, ns := range namespaces {
				org := &rosterv1.Organization{}
				if err := k8sClient.Get(ctx, key(ns, "acme"), org); err != nil {
					continue
				}
				admitted++
				if org.Status.DoorNumber == door {
					n++
				}
				if c := readyCondition(org.Status.Conditions); c != nil && c.Reason == "DoorNumberTaken" {
					taken++
				}
			}
			return n, taken, admitted
		}
		Eventually(func(g Gomega) {
			n, taken, admitted := holders()
			g.Expect(n).To(Equal(1))
			g.Expect(n + taken).To(Equal(admitted))
		}, timeout, interval).Should(Succeed())
		Consistently(func() int { n, _, _ := holders(); return n }, "2s", interval).Should(Equal(1))

		By("the holder is the one the door number leads to, and a later organization is refused")
		org, err := acceptor().OrganizationForDoorNumber(ctx, door)
		Expect(err).NotTo(HaveOccurred())
		Expect(org.Status.DoorNumber).To(Equal(door))
		late := newNamespace(ctx)
		err = k8sClient.Create(ctx, &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: late},
			Spec: rosterv1.OrganizationSpec{DisplayName: "Late", DoorNumber: door}})
		Expect(err).To(MatchError(ContainSubstring(`spec.doorNumber: Duplicate value: "` + door + `"`)))
	})
})
