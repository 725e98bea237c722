package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify"
)

// Fixtures. Alice is a Super Admin of every organization the tests make.

func newOrganization(ctx context.Context, ns string, mutate ...func(*rosterv1.Organization)) *rosterv1.Organization {
	org := &rosterv1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns},
		Spec: rosterv1.OrganizationSpec{
			DisplayName: "Acme",
			Admins:      []rosterv1.Subject{{Kind: "User", Name: adminUser}},
		},
	}
	for _, m := range mutate {
		m(org)
	}
	Expect(k8sClient.Create(ctx, org)).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(org.Status.Conditions, rosterv1.ConditionReady)).To(BeTrue())
	}, timeout, interval).Should(Succeed())
	return org
}

func invitation(ns, name string, method rosterv1.InvitationMethod, invitee rosterv1.Invitee, mutate ...func(*rosterv1.Invitation)) *rosterv1.Invitation {
	inv := &rosterv1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: rosterv1.InvitationSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
			Method:          method,
			Invitee:         invitee,
		},
	}
	for _, m := range mutate {
		m(inv)
	}
	return inv
}

// invite creates an invitation as user c and waits until it reaches phase.
func invite(ctx context.Context, c client.Client, inv *rosterv1.Invitation, phase rosterv1.InvitationPhase) *rosterv1.Invitation {
	Expect(c.Create(ctx, inv)).To(Succeed())
	return waitInvitation(ctx, inv, phase)
}

func waitInvitation(ctx context.Context, inv *rosterv1.Invitation, phase rosterv1.InvitationPhase) *rosterv1.Invitation {
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(inv), inv)).To(Succeed())
		g.Expect(inv.Status.Phase).To(Equal(phase), "invitation %s: %v", describe(inv), inv.Status.Conditions)
		g.Expect(inv.Status.ObservedGeneration).To(Equal(inv.Generation))
	}, timeout, interval).Should(Succeed())
	return inv
}

func waitMember(ctx context.Context, ns, name string, phase rosterv1.MemberPhase) *rosterv1.Member {
	m := &rosterv1.Member{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key(ns, name), m)).To(Succeed())
		g.Expect(m.Status.Phase).To(Equal(phase), "member %s/%s: %v", ns, name, m.Status.Conditions)
	}, timeout, interval).Should(Succeed())
	return m
}

// member makes a Member directly, already signed up, as the admin adds one. A member who
// joined through a link (spec.provenance.joinMethod set) is made as Roster makes them: by
// its trusted identity, since the webhook records anyone else's Member as added directly.
func member(ctx context.Context, ns, name, email string, role rosterv1.Role, mutate ...func(*rosterv1.Member)) *rosterv1.Member {
	m := &rosterv1.Member{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: rosterv1.MemberSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
			Username:        name, DisplayName: name, Email: email, Role: role,
		},
	}
	for _, f := range mutate {
		f(m)
	}
	c := adminClient
	if m.Spec.Provenance.JoinMethod != "" {
		c = k8sClientAs(managerCfg)
	}
	Expect(c.Create(ctx, m)).To(Succeed())
	return m
}

// acceptor acts as the portal does: the portal's identity, a cache, and reads past the
// cache for claims.
func acceptor() *membership.Acceptor {
	return &membership.Acceptor{Client: portalClient, APIReader: k8sClientAs(portalConfig()), Clock: fakeClock}
}

// accept signs up through the link of the newest message to addr.
func accept(ctx context.Context, addr string, s membership.SignUp) (*rosterv1.Member, error) {
	msgs := notifier.to(addr)
	Expect(msgs).NotTo(BeEmpty(), "no message to %s", addr)
	_, token := linkIn(msgs[len(msgs)-1])
	return acceptToken(ctx, token, s)
}

// acceptToken signs up with a token as the sign-up pages would, once the manager's cache has
// seen the invitation the token belongs to as Sent.
func acceptToken(ctx context.Context, token string, s membership.SignUp) (*rosterv1.Member, error) {
	var m *rosterv1.Member
	var err error
	// The manager's cache may not have seen the newest token yet.
	Eventually(func() error {
		m, err = acceptor().Accept(ctx, token, s)
		if errors.Is(err, membership.ErrInvalidLink) {
			return err
		}
		return nil
	}, 5*time.Second, interval).Should(Succeed())
	return m, err
}

func setSpec(ctx context.Context, c client.Client, obj client.Object, patch string) error {
	return c.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", []byte(`{"spec":`+patch+`}`)))
}

func readyCondition(conds []metav1.Condition) *metav1.Condition {
	return meta.FindStatusCondition(conds, rosterv1.ConditionReady)
}

var _ = Describe("Members", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("F1 public link and door number: anyone can ask to join, and an admin must approve them", func(ctx context.Context) {
		org := newOrganization(ctx, ns, func(o *rosterv1.Organization) { o.Spec.PublicInvitation.Enabled = true })
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
			g.Expect(org.Status.PublicLinkSecretRef).NotTo(BeNil())
		}, timeout, interval).Should(Succeed())
		Expect(org.Status.DoorNumber).To(MatchRegexp(`^[0-9]{8}$`))

		link := func() string {
			sec := &corev1.Secret{}
			Expect(k8sClient.Get(ctx, key(ns, org.Status.PublicLinkSecretRef.Name), sec)).To(Succeed())
			Expect(string(sec.Data["hash"])).NotTo(ContainSubstring(string(sec.Data["link"])[len("https://join.test/join/"):]))
			return string(sec.Data["link"])
		}
		first := link()
		Expect(first).To(HavePrefix("https://join.test/join/"))
		token := first[len("https://join.test/join/"):]

		var found *rosterv1.Organization
		Eventually(func() (err error) { found, err = acceptor().OrganizationForPublicLink(ctx, token); return err }, timeout, interval).Should(Succeed())
		_, err := acceptor().Join(ctx, found, rosterv1.JoinMethodPublicLink, membership.SignUp{Username: "pat", DisplayName: "Pat", Email: "pat@x.example"})
		Expect(err).NotTo(HaveOccurred())
		pat := waitMember(ctx, ns, "pat", rosterv1.MemberPending)
		Expect(pat.Status.JoinMethod).To(Equal(rosterv1.JoinMethodPublicLink))

		byDoor, err := acceptor().OrganizationForDoorNumber(ctx, org.Status.DoorNumber)
		Expect(err).NotTo(HaveOccurred())
		_, err = acceptor().Join(ctx, byDoor, rosterv1.JoinMethodDoorNumber, membership.SignUp{Username: "dora", DisplayName: "Dora"})
		Expect(err).NotTo(HaveOccurred())
		Expect(waitMember(ctx, ns, "dora", rosterv1.MemberPending).Status.JoinMethod).To(Equal(rosterv1.JoinMethodDoorNumber))

		By("approving the joiner")
		Expect(setSpec(ctx, adminClient, pat, `{"approval":"Approved"}`)).To(Succeed())
		Expect(waitMember(ctx, ns, "pat", rosterv1.MemberActive).Status.ApprovedBy).To(Equal(adminUser))

		By("rotating the link: the old one stops working")
		Expect(setSpec(ctx, adminClient, org, `{"publicInvitation":{"enabled":true,"linkGeneration":1}}`)).To(Succeed())
		Eventually(link, timeout, interval).ShouldNot(Equal(first))
		Eventually(func() error { _, err := acceptor().OrganizationForPublicLink(ctx, token); return err }, timeout, interval).
			Should(MatchError(membership.ErrInvalidLink))

		By("closing the door")
		Expect(setSpec(ctx, adminClient, org, `{"publicInvitation":{"enabled":false}}`)).To(Succeed())
		Eventually(func() error {
			o, err := acceptor().OrganizationForDoorNumber(ctx, org.Status.DoorNumber)
			if err != nil {
				return err
			}
			_, err = acceptor().Join(ctx, o, rosterv1.JoinMethodDoorNumber, membership.SignUp{Username: "late"})
			return err
		}, timeout, interval).Should(MatchError(membership.ErrJoinClosed))
	})

	It("F2 invitation by email or phone: the person gets a sign-up link, and only its hash is stored", func(ctx context.Context) {
		newOrganization(ctx, ns)
		inv := invite(ctx, adminClient, invitation(ns, "bob", rosterv1.InvitationMethodEmail,
			rosterv1.Invitee{Name: "Bob", Email: "bob@f2.example"}), rosterv1.InvitationSent)
		Expect(inv.Spec.InvitedBy).To(Equal(adminUser))
		Expect(inv.Status.ExpiresAt.Sub(inv.Status.SentAt.Time)).To(Equal(168 * time.Hour))
		Expect(readyCondition(inv.Status.Conditions).Reason).To(Equal("Sent"))

		msgs := notifier.to("bob@f2.example")
		Expect(msgs).To(HaveLen(1))
		Expect(msgs[0].Channel).To(BeEquivalentTo("email"))
		Expect(msgs[0].Message.Key).To(Equal(string(inv.UID) + "/invitation/0"))
		link, token := linkIn(msgs[0])
		Expect(link).To(HavePrefix("https://join.test/invite/"))

		// The token is kept in the Secret while its message is delivered, so that a crash
		// between send and status resends the same link; the pass after Sent drops it.
		sec := &corev1.Secret{}
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key(ns, inv.Status.TokenSecretRef.Name), sec)).To(Succeed())
			g.Expect(string(sec.Data["hash"])).To(Equal(linktoken.Hash(token)))
			for k, v := range sec.Data {
				g.Expect(string(v)).NotTo(ContainSubstring(token), "Secret key %s holds the token", k)
			}
		}, timeout, interval).Should(Succeed())
		Expect(metav1.IsControlledBy(sec, inv)).To(BeTrue())

		By("invitedBy and the inviter's role come from the request, never from the client")
		member(ctx, ns, "bobby", "bobby@f2.example", rosterv1.RoleMember)
		waitMember(ctx, ns, "bobby", rosterv1.MemberActive)
		forged := invitation(ns, "forged", rosterv1.InvitationMethodLink, rosterv1.Invitee{Name: "F"}, func(i *rosterv1.Invitation) {
			i.Spec.InvitedBy = "mallory"
			i.Spec.InviterRole = rosterv1.RoleSuperAdmin
		})
		Expect(asUser("bobby").Create(ctx, forged)).To(Succeed())
		Expect(forged.Spec.InvitedBy).To(Equal("bobby"))
		Expect(forged.Spec.InviterRole).To(Equal(rosterv1.RoleMember))

		By("phone")
		invite(ctx, adminClient, invitation(ns, "carol", rosterv1.InvitationMethodPhone,
			rosterv1.Invitee{Name: "Carol", Phone: "+4915100000002"}), rosterv1.InvitationSent)
		sms := notifier.to("+4915100000002")
		Expect(sms).To(HaveLen(1))
		Expect(sms[0].Channel).To(BeEquivalentTo("sms"))
		Expect(string(sms[0].Message.Template)).To(Equal("invitation-sms"))
	})

	It("F2 a burst of invitations: every Secret ends with only the hash, whichever watch the manager hears first", func(ctx context.Context) {
		// The Secret with the kept token is created a moment before the status that says the
		// mail went; the manager may hear of the status first, while its cache has no Secret.
		newOrganization(ctx, ns)
		const n = 30
		invs := make([]*rosterv1.Invitation, n)
		for i := range invs {
			invs[i] = invitation(ns, fmt.Sprintf("burst-%d", i), rosterv1.InvitationMethodEmail,
				rosterv1.Invitee{Name: "Burst", Email: fmt.Sprintf("burst-%d@f2.example", i)})
			Expect(adminClient.Create(ctx, invs[i])).To(Succeed())
		}
		for _, inv := range invs {
			waitInvitation(ctx, inv, rosterv1.InvitationSent)
		}
		Eventually(func(g Gomega) {
			for _, inv := range invs {
				sec := &corev1.Secret{}
				g.Expect(k8sClient.Get(ctx, key(ns, inv.Status.TokenSecretRef.Name), sec)).To(Succeed())
				g.Expect(sec.Data).NotTo(HaveKey(linktoken.SecretKeyPending), "Secret %s still keeps the token of a delivered link", sec.Name)
				g.Expect(sec.Data).To(HaveKey(linktoken.SecretKeyHash))
			}
		}, timeout, interval).Should(Succeed())
	})

	It("F3 invitation from contacts: an existing account is invited without retyping", func(ctx context.Context) {
		newOrganization(ctx, ns)
		newOrganization(ctx, ns, func(o *rosterv1.Organization) { o.Name = "elsewhere" })
		Expect(adminClient.Create(ctx, &rosterv1.Member{
			ObjectMeta: metav1.ObjectMeta{Name: "erin", Namespace: ns},
			Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "elsewhere"},
				Username: "erin", DisplayName: "Erin Contact", Email: "erin@f3.example", Phone: "+4915100000003"},
		})).To(Succeed())
		waitMember(ctx, ns, "erin", rosterv1.MemberActive)

		inv := invite(ctx, adminClient, invitation(ns, "erin-acme", rosterv1.InvitationMethodContact,
			rosterv1.Invitee{Username: "erin"}), rosterv1.InvitationSent)
		m := waitMember(ctx, ns, inv.Status.MemberRef.Name, rosterv1.MemberInactivated)
		Expect(m.Spec.DisplayName).To(Equal("Erin Contact"))
		Expect(m.Spec.Email).To(Equal("erin@f3.example"))
		Expect(m.Spec.Phone).To(Equal("+4915100000003"))
		Expect(notifier.to("erin@f3.example")).To(HaveLen(1))

		By("signing up keeps the account's username")
		m, err := accept(ctx, "erin@f3.example", membership.SignUp{Username: "someone-else"})
		Expect(err).NotTo(HaveOccurred())
		Expect(m.Spec.Username).To(Equal("erin"))
		Expect(waitMember(ctx, ns, m.Name, rosterv1.MemberActive).Status.JoinMethod).To(Equal(rosterv1.JoinMethodContact))

		By("an unknown account")
		unknown := invitation(ns, "nobody", rosterv1.InvitationMethodContact, rosterv1.Invitee{Username: "nobody"})
		Expect(adminClient.Create(ctx, unknown)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(unknown), unknown)).To(Succeed())
			g.Expect(readyCondition(unknown.Status.Conditions)).NotTo(BeNil())
			g.Expect(readyCondition(unknown.Status.Conditions).Reason).To(Equal("AccountNotFound"))
		}, timeout, interval).Should(Succeed())
	})

	It("F4 resend and cancel: a resend sends a new link and kills the old; deleting cancels", func(ctx context.Context) {
		newOrganization(ctx, ns)
		inv := invite(ctx, adminClient, invitation(ns, "dan", rosterv1.InvitationMethodEmail,
			rosterv1.Invitee{Name: "Dan", Email: "dan@f4.example"}), rosterv1.InvitationSent)
		_, first := linkIn(notifier.to("dan@f4.example")[0])

		Expect(setSpec(ctx, adminClient, inv, `{"resendRequests":1}`)).To(Succeed())
		Eventually(func() []sentMessage { return notifier.to("dan@f4.example") }, timeout, interval).Should(HaveLen(2))
		second := notifier.to("dan@f4.example")[1]
		_, token := linkIn(second)
		Expect(token).NotTo(Equal(first))
		Expect(string(second.Message.Template)).To(Equal("invitation-resend"))
		Expect(second.Message.Key).To(HaveSuffix("/invitation/1"))
		Eventually(func() error { _, err := acceptor().Lookup(ctx, first); return err }, timeout, interval).Should(MatchError(membership.ErrInvalidLink))
		Eventually(func() error { _, err := acceptor().Lookup(ctx, token); return err }, timeout, interval).Should(Succeed())

		By("more than three resends in ten minutes wait")
		Expect(setSpec(ctx, adminClient, inv, `{"resendRequests":5}`)).To(Succeed())
		Eventually(func() []sentMessage { return notifier.to("dan@f4.example") }, timeout, interval).Should(HaveLen(4))
		Consistently(func() []sentMessage { return notifier.to("dan@f4.example") }, 2*time.Second, interval).Should(HaveLen(4))
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(inv), inv)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(inv.Status.Conditions, "ResendWaiting")).To(BeTrue())
		}, timeout, interval).Should(Succeed())
		fakeClock.Step(11 * time.Minute)
		poke(ctx, inv)
		Eventually(func() []sentMessage { return notifier.to("dan@f4.example") }, timeout, interval).Should(HaveLen(6))

		By("a delivery that failed for good is tried again by a resend, once fixed")
		notifier.fail("dan@f4.example", notify.ErrNotConfigured)
		Expect(setSpec(ctx, adminClient, inv, `{"resendRequests":7}`)).To(Succeed())
		waitInvitation(ctx, inv, rosterv1.InvitationFailed)
		Expect(inv.Status.Reason).To(Equal(rosterv1.ReasonDeliveryFailed))
		Expect(readyCondition(inv.Status.Conditions).Message).To(Equal(
			"The invitation could not be delivered: the Organization has no email channel; set spec.notifications.email. Fix it, then raise spec.resendRequests to send it again"))
		Eventually(func() []string { return eventReasons(ctx, inv) }, timeout, interval).Should(ContainElement("DeliveryFailed"))
		notifier.fail("dan@f4.example", nil)
		Expect(setSpec(ctx, adminClient, inv, `{"resendRequests":8}`)).To(Succeed())
		waitInvitation(ctx, inv, rosterv1.InvitationSent)
		Expect(inv.Status.Reason).To(BeEmpty())
		Eventually(func() []sentMessage { return notifier.to("dan@f4.example") }, timeout, interval).Should(HaveLen(7))

		By("deleting the invitation removes its Inactivated member")
		Expect(adminClient.Delete(ctx, inv)).To(Succeed())
		Eventually(func() bool {
			return errors.Is(client.IgnoreNotFound(k8sClient.Get(ctx, key(ns, "dan"), &rosterv1.Member{})), nil) &&
				k8sClient.Get(ctx, key(ns, "dan"), &rosterv1.Member{}) != nil
		}, timeout, interval).Should(BeTrue())
		Eventually(func() error { return k8sClient.Get(ctx, key(ns, "dan"), &rosterv1.Invitation{}) }, timeout, interval).ShouldNot(Succeed())
	})

	It("F5 an admin adds one member with name, email, department and position", func(ctx context.Context) {
		newOrganization(ctx, ns)
		invite(ctx, adminClient, invitation(ns, "fay", rosterv1.InvitationMethodEmail,
			rosterv1.Invitee{Name: "Fay", Email: "fay@f5.example"}, func(i *rosterv1.Invitation) {
				i.Spec.Department, i.Spec.Position = "Engineering", "SRE"
			}), rosterv1.InvitationSent)
		m := waitMember(ctx, ns, "fay", rosterv1.MemberInactivated)
		Expect(m.Spec.Department).To(Equal("Engineering"))
		Expect(m.Spec.Position).To(Equal("SRE"))
		Expect(m.Status.RequiresApproval).To(BeFalse(), "a Super Admin's invitation needs no approval")

		_, err := accept(ctx, "fay@f5.example", membership.SignUp{Username: "fay"})
		Expect(err).NotTo(HaveOccurred())
		m = waitMember(ctx, ns, "fay", rosterv1.MemberActive)
		Expect(m.Status.SignedUpAt).NotTo(BeNil())
		inv := waitInvitation(ctx, &rosterv1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "fay", Namespace: ns}}, rosterv1.InvitationAccepted)
		Expect(inv.Status.TokenSecretRef).To(BeNil())
		Expect(metav1.GetControllerOf(m)).To(BeNil(), "an accepted member no longer belongs to the invitation")

		By("the link is single-use")
		_, token := linkIn(notifier.to("fay@f5.example")[0])
		_, err = acceptor().Accept(ctx, token, membership.SignUp{Username: "fay2"})
		Expect(err).To(MatchError(membership.ErrInvalidLink))
	})

	It("F6 invitation quota: on the Free plan one user creates at most the quota a day, labelled as an import or not", func(ctx context.Context) {
		org := newOrganization(ctx, ns, func(o *rosterv1.Organization) {
			o.Spec.ImportQuota = &rosterv1.ImportQuota{PerUserPerDay: ptr.To[int32](2)}
		})
		imported := func(i *rosterv1.Invitation) {
			i.Labels = map[string]string{rosterv1.LabelSource: rosterv1.SourceImport}
		}
		Expect(adminClient.Create(ctx, invitation(ns, "dry", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "dry@f6.example"}),
			client.DryRunAll)).To(Succeed(), "a dry run counts nothing")
		Expect(adminClient.Create(ctx, invitation(ns, "imp-0", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "imp0@f6.example"}, imported))).To(Succeed())
		Expect(adminClient.Create(ctx, invitation(ns, "single", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "single@f6.example"}))).To(Succeed())
		third := func() error {
			return adminClient.Create(ctx, invitation(ns, "third", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "third@f6.example"}))
		}
		Expect(third()).To(MatchError(ContainSubstring(
			"QuotaExceeded: " + adminUser + " created 2 invitations in the last 24 hours, the Free plan's limit of 2 a day; the next invitation is possible at ")))

		By("deleting invitations gives no quota back")
		Expect(adminClient.Delete(ctx, &rosterv1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "single", Namespace: ns}})).To(Succeed())
		Expect(third()).To(MatchError(ContainSubstring("QuotaExceeded")))

		By("a day later the quota is back")
		fakeClock.Step(25 * time.Hour)
		Expect(third()).To(Succeed())

		By("a quota of 0 says so")
		Expect(setSpec(ctx, adminClient, org, `{"importQuota":{"perUserPerDay":0}}`)).To(Succeed())
		Eventually(func() error {
			return adminClient.Create(ctx, invitation(ns, "none", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "none@f6.example"}))
		}, timeout, interval).Should(MatchError(ContainSubstring(
			"QuotaExceeded: Organization acme allows no invitations (spec.importQuota.perUserPerDay is 0); an admin of the organization can raise spec.importQuota.perUserPerDay")))
	})

	It("F7 an invitation that cannot be sent says why", func(ctx context.Context) {
		newOrganization(ctx, ns)
		member(ctx, ns, "active", "active@f7.example", rosterv1.RoleMember)
		waitMember(ctx, ns, "active", rosterv1.MemberActive)
		member(ctx, ns, "pending", "pending@f7.example", rosterv1.RoleMember, func(m *rosterv1.Member) {
			m.Spec.Provenance.JoinMethod = rosterv1.JoinMethodPublicLink
		})
		waitMember(ctx, ns, "pending", rosterv1.MemberPending)
		member(ctx, ns, "rejected", "rejected@f7.example", rosterv1.RoleMember, func(m *rosterv1.Member) { m.Spec.Approval = rosterv1.ApprovalRejected })
		waitMember(ctx, ns, "rejected", rosterv1.MemberRejected)
		member(ctx, ns, "removed", "removed@f7.example", rosterv1.RoleMember, func(m *rosterv1.Member) { m.Spec.Access = rosterv1.AccessTerminated })
		waitMember(ctx, ns, "removed", rosterv1.MemberTerminated)

		refused := func(email, want string) {
			err := adminClient.Create(ctx, invitation(ns, "again", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Name: "New Person", Email: email}))
			Expect(err).To(MatchError(ContainSubstring(want)))
		}
		refused("ACTIVE@f7.example", "AlreadyMember: active is already a member (Member active); there is nothing to invite")
		refused("pending@f7.example", "AwaitingApproval: pending has signed up and is awaiting approval (Member pending); approve them instead: "+
			`kubectl patch mem pending -n `+ns+` --type=merge -p '{"spec":{"approval":"Approved"}}'`)
		refused("rejected@f7.example", "PreviouslyRejected: rejected was rejected before (Member rejected); re-approve them instead")
		refused("removed@f7.example", "PreviouslyRemoved: removed was removed before (Member removed); restore them instead: "+
			`kubectl patch mem removed -n `+ns+` --type=merge -p '{"spec":{"access":"Active"}}'. `+
			"If this is a different person who now has the same email or phone, restoring would show them removed's data: invite them with a different email")

		By("without the webhook, the controller fails the invitation with the same reason")
		withoutValidatingWebhook(ctx, func() {
			inv := invitation(ns, "bypass", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Name: "New Person", Email: "removed@f7.example"})
			Expect(adminClient.Create(ctx, inv)).To(Succeed())
			waitInvitation(ctx, inv, rosterv1.InvitationFailed)
			Expect(inv.Status.Reason).To(Equal(rosterv1.ReasonPreviouslyRemoved))
			Expect(readyCondition(inv.Status.Conditions).Message).To(ContainSubstring("restore them instead"))
			Expect(k8sClient.Get(ctx, key(ns, "bypass"), &rosterv1.Member{})).NotTo(Succeed(), "a failed invitation makes no member")
		})

		By("restoring the removed member for a different person with the same email warns")
		warnings := &warningRecorder{}
		Expect(setSpec(ctx, asUserWarned(adminUser, warnings), &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "removed", Namespace: ns}},
			`{"access":"Active"}`)).To(Succeed())
		Expect(warnings.all()).To(ContainElement(ContainSubstring(
			`Invitation bypass invites "New Person" with the same email or phone as removed; restoring gives them removed's data. If "New Person" is a different person, invite them with a different email instead`)))
	})

	It("F8 Inactivated until signed up; the link expires and a resend revives it", func(ctx context.Context) {
		newOrganization(ctx, ns, func(o *rosterv1.Organization) { o.Spec.InvitationTTL = metav1.Duration{Duration: time.Hour} })
		inv := invite(ctx, adminClient, invitation(ns, "gus", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "gus@f8.example"}), rosterv1.InvitationSent)
		waitMember(ctx, ns, "gus", rosterv1.MemberInactivated)
		_, token := linkIn(notifier.to("gus@f8.example")[0])

		fakeClock.Step(61 * time.Minute)
		_, err := acceptor().Accept(ctx, token, membership.SignUp{Username: "gus"})
		Expect(err).To(MatchError(membership.ErrExpired))
		poke(ctx, inv)
		waitInvitation(ctx, inv, rosterv1.InvitationExpired)
		Expect(readyCondition(inv.Status.Conditions).Message).To(ContainSubstring("raise spec.resendRequests"))

		Expect(setSpec(ctx, adminClient, inv, `{"resendRequests":1}`)).To(Succeed())
		waitInvitation(ctx, inv, rosterv1.InvitationSent)
		_, err = accept(ctx, "gus@f8.example", membership.SignUp{Username: "gus"})
		Expect(err).NotTo(HaveOccurred())
		waitMember(ctx, ns, "gus", rosterv1.MemberActive)
	})

	It("F9 who needs approval: non-admin invitations wait for an admin, Account Admin invitations do not", func(ctx context.Context) {
		newOrganization(ctx, ns)
		member(ctx, ns, "bob", "bob@f9.example", rosterv1.RoleMember)
		member(ctx, ns, "acct", "acct@f9.example", rosterv1.RoleAccountAdmin)
		waitMember(ctx, ns, "bob", rosterv1.MemberActive)
		waitMember(ctx, ns, "acct", rosterv1.MemberActive)

		invite(ctx, asUser("bob"), invitation(ns, "by-bob", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "x@f9.example"}), rosterv1.InvitationSent)
		invite(ctx, asUser("acct"), invitation(ns, "by-acct", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "y@f9.example"}), rosterv1.InvitationSent)
		_, err := accept(ctx, "x@f9.example", membership.SignUp{Username: "x"})
		Expect(err).NotTo(HaveOccurred())
		_, err = accept(ctx, "y@f9.example", membership.SignUp{Username: "y"})
		Expect(err).NotTo(HaveOccurred())
		x := waitMember(ctx, ns, "by-bob", rosterv1.MemberPending)
		Expect(x.Status.InvitedBy).To(Equal("bob"))
		Expect(readyCondition(x.Status.Conditions).Message).To(ContainSubstring(`kubectl patch mem by-bob -n ` + ns))
		waitMember(ctx, ns, "by-acct", rosterv1.MemberActive)

		By("only admins invite into admin roles or add decided members")
		err = asUser("bob").Create(ctx, invitation(ns, "boss", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "boss@f9.example"},
			func(i *rosterv1.Invitation) { i.Spec.Role = rosterv1.RoleAdmin }))
		Expect(err).To(MatchError(ContainSubstring("spec.role: Forbidden: bob has role Member in Organization acme and cannot invite someone as Admin: " +
			"nobody grants a role above their own. Invite them as Member, or ask a Admin of acme to invite them")))
		err = asUser("bob").Create(ctx, &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "self-approved", Namespace: ns},
			Spec: rosterv1.MemberSpec{OrganizationRef: rosterv1.OrganizationReference{Name: "acme"}, Username: "sa", Approval: rosterv1.ApprovalApproved}})
		Expect(err).To(MatchError(ContainSubstring("only admins of Organization acme add members directly, and bob has role Member there. " +
			"Members come from invitations, the public link and the door number: create an Invitation for the person instead")))

		By("only admins approve")
		err = setSpec(ctx, asUser("bob"), x, `{"approval":"Approved"}`)
		Expect(err).To(MatchError(ContainSubstring("only admins of Organization acme change spec.approval (approve, reject, remove, restore, change roles and edit work details); bob has role Member there")))
		By("an admin rejects, then re-examines and approves")
		Expect(setSpec(ctx, asUser("acct"), x, `{"approval":"Rejected"}`)).To(Succeed())
		waitMember(ctx, ns, "by-bob", rosterv1.MemberRejected)
		Expect(setSpec(ctx, adminClient, x, `{"approval":"Approved"}`)).To(Succeed())
		x = waitMember(ctx, ns, "by-bob", rosterv1.MemberActive)
		Expect(x.Status.ApprovedBy).To(Equal(adminUser))
		Expect(x.Status.ApprovedAt).NotTo(BeNil())
	})

	It("F10 join rules: the inviting-verification switch and the required fields", func(ctx context.Context) {
		newOrganization(ctx, ns, func(o *rosterv1.Organization) {
			o.Spec.JoinRules.ApprovalForNonAdminInvites = ptr.To(false)
			o.Spec.JoinRules.RequiredFields = []rosterv1.MemberField{"department", "position"}
		})
		member(ctx, ns, "bob", "bob@f10.example", rosterv1.RoleMember)
		waitMember(ctx, ns, "bob", rosterv1.MemberActive)
		invite(ctx, asUser("bob"), invitation(ns, "hal", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "hal@f10.example"},
			func(i *rosterv1.Invitation) { i.Spec.Department = "Sales" }), rosterv1.InvitationSent)

		_, err := accept(ctx, "hal@f10.example", membership.SignUp{Username: "hal"})
		var missing *membership.MissingFieldsError
		Expect(errors.As(err, &missing)).To(BeTrue(), "got %v", err)
		Expect(err).To(MatchError("please fill in: position"))
		_, err = accept(ctx, "hal@f10.example", membership.SignUp{Username: "hal", WorkDetails: rosterv1.WorkDetails{Position: "Rep"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(waitMember(ctx, ns, "hal", rosterv1.MemberActive).Status.RequiresApproval).To(BeFalse())
	})

	It("F11 admins edit work details; name, email and phone belong to the person", func(ctx context.Context) {
		newOrganization(ctx, ns)
		m := member(ctx, ns, "ivy", "ivy@f11.example", rosterv1.RoleMember)
		waitMember(ctx, ns, "ivy", rosterv1.MemberActive)

		Expect(setSpec(ctx, adminClient, m, `{"department":"Legal","position":"Counsel","workNumber":"+49 30 1","location":"Berlin"}`)).To(Succeed())
		Expect(setSpec(ctx, adminClient, m, `{"email":"other@f11.example"}`)).To(MatchError(ContainSubstring(
			`email belong to ivy, who signed up as "ivy"; only they can change them (admins edit department, position, workNumber and location)`)))
		Expect(setSpec(ctx, asUser("ivy"), m, `{"email":"ivy.new@f11.example","displayName":"Ivy N."}`)).To(Succeed())
		Expect(setSpec(ctx, k8sClientAs(portalConfig()), m, `{"phone":"+4915100000011"}`)).To(Succeed(), "the portal acts for the person")
		Expect(setSpec(ctx, k8sClientAs(managerCfg), m, `{"phone":"+4915100000012"}`)).To(MatchError(ContainSubstring(
			"they change them on the portal's profile page")), "the manager never acts for the person")
		Expect(k8sClient.Get(ctx, key(ns, "ivy"), m)).To(Succeed())
		Expect(m.Spec.Email).To(Equal("ivy.new@f11.example"))
		Expect(m.Spec.Department).To(Equal("Legal"))
	})

	It("F12 department and phase labels follow the members, so bulk work can select them", func(ctx context.Context) {
		newOrganization(ctx, ns)
		a := member(ctx, ns, "a", "a@f12.example", rosterv1.RoleMember, func(m *rosterv1.Member) { m.Spec.Department = "People Operations" })
		member(ctx, ns, "b", "b@f12.example", rosterv1.RoleMember, func(m *rosterv1.Member) { m.Spec.Department = "Sales" })
		selected := func(dept string) []string {
			list := &rosterv1.MemberList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{rosterv1.LabelDepartment: dept, rosterv1.LabelPhase: "Active"})).To(Succeed())
			var names []string
			for _, m := range list.Items {
				names = append(names, m.Name)
			}
			return names
		}
		Eventually(func() []string { return selected("People-Operations") }, timeout, interval).Should(ConsistOf("a"))
		Expect(setSpec(ctx, adminClient, a, `{"department":"Sales"}`)).To(Succeed())
		Eventually(func() []string { return selected("Sales") }, timeout, interval).Should(ConsistOf("a", "b"))
	})

	It("F13 the organization counts its members by phase", func(ctx context.Context) {
		org := newOrganization(ctx, ns)
		member(ctx, ns, "a", "a@f13.example", rosterv1.RoleMember)
		member(ctx, ns, "b", "b@f13.example", rosterv1.RoleMember, func(m *rosterv1.Member) { m.Spec.Access = rosterv1.AccessTerminated })
		invite(ctx, adminClient, invitation(ns, "c", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "c@f13.example"}), rosterv1.InvitationSent)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
			g.Expect(org.Status.Members).To(Equal(rosterv1.MemberCounts{Active: 1, Terminated: 1, Inactivated: 1}))
		}, timeout, interval).Should(Succeed())
	})

	It("F14 a terminated member keeps the record and can be restored", func(ctx context.Context) {
		newOrganization(ctx, ns)
		m := member(ctx, ns, "jo", "jo@f14.example", rosterv1.RoleMember, func(m *rosterv1.Member) { m.Spec.Department = "Ops" })
		waitMember(ctx, ns, "jo", rosterv1.MemberActive)
		Expect(setSpec(ctx, asUser("someone"), m, `{"access":"Terminated"}`)).To(MatchError(ContainSubstring("change spec.access")))
		Expect(setSpec(ctx, adminClient, m, `{"access":"Terminated"}`)).To(Succeed())
		m = waitMember(ctx, ns, "jo", rosterv1.MemberTerminated)
		Expect(m.Status.TerminatedAt).NotTo(BeNil())
		Expect(m.Spec.Department).To(Equal("Ops"))
		Expect(readyCondition(m.Status.Conditions).Message).To(ContainSubstring(`'{"spec":{"access":"Active"}}'`))

		Expect(setSpec(ctx, adminClient, m, `{"access":"Active"}`)).To(Succeed())
		m = waitMember(ctx, ns, "jo", rosterv1.MemberActive)
		Expect(m.Status.TerminatedAt).To(BeNil())
		Eventually(func() []string { return eventReasons(ctx, m) }, timeout, interval).Should(ContainElements("Terminated", "Restored"))
		Consistently(func() []string { return eventReasons(ctx, m) }, time.Second, interval).Should(
			HaveExactElements("Terminated", "Restored"), "one Event per transition, in order, and none for the first phase")
	})

	It("survives a manager restart: no second member, no second delivery, no lost state", func(ctx context.Context) {
		newOrganization(ctx, ns)
		inv := invite(ctx, adminClient, invitation(ns, "kim", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "kim@restart.example"}), rosterv1.InvitationSent)
		restartManager()
		poke(ctx, inv)
		Consistently(func() []sentMessage { return notifier.to("kim@restart.example") }, 2*time.Second, interval).Should(HaveLen(1))
		list := &rosterv1.MemberList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		Expect(list.Items).To(HaveLen(1))
		Expect(waitInvitation(ctx, inv, rosterv1.InvitationSent).Status.Deliveries).To(HaveLen(1))

		_, err := accept(ctx, "kim@restart.example", membership.SignUp{Username: "kim"})
		Expect(err).NotTo(HaveOccurred())
		waitMember(ctx, ns, "kim", rosterv1.MemberActive)
	})
})

// poke changes an annotation so the controller looks at the object again now, instead of at
// its requeue time, which the fake clock does not drive.
func poke(ctx context.Context, obj client.Object) {
	Expect(k8sClient.Patch(ctx, obj, client.RawPatch("application/merge-patch+json",
		[]byte(fmt.Sprintf(`{"metadata":{"annotations":{"test.roster.dev/poke":"%d"}}}`, time.Now().UnixNano()))))).To(Succeed())
}

func eventReasons(ctx context.Context, obj client.Object) []string {
	list := &eventsv1List{}
	Expect(k8sClient.List(ctx, &list.EventList, client.InNamespace(obj.GetNamespace()))).To(Succeed())
	var reasons []string
	slices.SortFunc(list.Items, func(a, b eventsv1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	for _, e := range list.Items {
		if e.Regarding.UID == obj.GetUID() {
			reasons = append(reasons, e.Reason)
			if e.Series != nil {
				for range e.Series.Count - 1 {
					reasons = append(reasons, e.Reason)
				}
			}
		}
	}
	return reasons
}
