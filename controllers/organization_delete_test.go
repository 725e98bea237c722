package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify/mailsink"
)

var _ = Describe("Deleting an Organization", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("removes its children in order, invitations first and members last, and tells nobody anything", func(ctx context.Context) {
		sink := withSMTP(ctx, ns, mailsink.Options{}, withApps(licensed("support", 5)))
		org := &rosterv1.Organization{}
		Expect(k8sClient.Get(ctx, key(ns, "acme"), org)).To(Succeed())
		door := org.Status.DoorNumber
		Expect(door).NotTo(BeEmpty())

		// One person in every role: a member who serves a client, a client, a collaborator,
		// and two people invited but not signed up.
		member(ctx, ns, "sam", "sam@gone.example", rosterv1.RoleMember)
		waitMember(ctx, ns, "sam", rosterv1.MemberActive)
		Expect(adminClient.Create(ctx, externalUser(ns, "cleo", "support", approved, func(x *rosterv1.ExternalUser) {
			x.Spec.Email = "cleo@gone.example"
			x.Spec.Team = []rosterv1.TeamMember{{Member: "sam", Lead: true}}
		}))).To(Succeed())
		waitXU(ctx, ns, "cleo", rosterv1.ExternalUserActive)
		colin := collaboration(ns, "colin", "colin@gone.example", inModules(rosterv1.Module{Kind: "Project", Name: "apollo"}))
		Expect(adminClient.Create(ctx, colin)).To(Succeed())
		waitCollaboration(ctx, colin, rosterv1.CollaborationActive)
		for _, who := range []string{"ines", "ivan"} {
			invite(ctx, adminClient, invitation(ns, who, rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: who + "@gone.example"}), rosterv1.InvitationSent)
		}
		addrs := []string{"sam@gone.example", "cleo@gone.example", "colin@gone.example", "ines@gone.example", "ivan@gone.example"}
		sent := map[string]int{}
		Eventually(func(g Gomega) {
			for _, a := range addrs[2:] { // sam and cleo were added as already in
				g.Expect(mailsTo(sink, a)).NotTo(BeEmpty(), a)
			}
		}, timeout, interval).Should(Succeed())
		for _, a := range addrs {
			sent[a] = len(mailsTo(sink, a))
		}

		By("a Super Admin deleting it, while another finalizer holds it")
		const hold = "test.roster.dev/hold"
		Expect(k8sClient.Patch(ctx, org, client.RawPatch("application/merge-patch+json",
			[]byte(`{"metadata":{"finalizers":["`+rosterv1.Finalizer+`","`+hold+`"]}}`)))).To(Succeed())
		Expect(adminClient.Delete(ctx, org)).To(Succeed())

		// What is left of each kind, watched until the Organization is gone. Signed-up members
		// count; the invited ones go with their invitations.
		type left struct{ invitations, collaborations, externalUsers, members int }
		count := func() left {
			var l left
			// Listed in the reverse of the deletion order: a kind seen gone means every kind
			// listed after it is gone too, however the deletes interleave with the listing.
			ms := &rosterv1.MemberList{}
			Expect(k8sClient.List(ctx, ms, client.InNamespace(ns))).To(Succeed())
			for _, m := range ms.Items {
				if m.Spec.Username != "" {
					l.members++
				}
			}
			xs := &rosterv1.ExternalUserList{}
			Expect(k8sClient.List(ctx, xs, client.InNamespace(ns))).To(Succeed())
			l.externalUsers = len(xs.Items)
			cs := &rosterv1.CollaborationList{}
			Expect(k8sClient.List(ctx, cs, client.InNamespace(ns))).To(Succeed())
			l.collaborations = len(cs.Items)
			invs := &rosterv1.InvitationList{}
			Expect(k8sClient.List(ctx, invs, client.InNamespace(ns))).To(Succeed())
			l.invitations = len(invs.Items)
			return l
		}
		var seen []left
		Eventually(func() []string {
			seen = append(seen, count())
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), org)).To(Succeed())
			return org.Finalizers
		}, timeout, 10*time.Millisecond).Should(Equal([]string{hold}), "Roster lets the Organization go once its children are gone")
		Expect(count()).To(Equal(left{}))

		By("nothing new being admitted while it goes")
		refused(adminClient.Create(ctx, invitation(ns, "late", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Email: "late@gone.example"})),
			"Organization acme is being deleted")
		refused(adminClient.Create(ctx, externalUser(ns, "late", "support")), "Organization acme is being deleted")
		Expect(k8sClient.Patch(ctx, org, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(org), &rosterv1.Organization{}))
		}, timeout, interval).Should(BeTrue())
		for _, l := range seen {
			if l.collaborations < 1 {
				Expect(l.invitations).To(BeZero(), "collaborations went before invitations: %+v", seen)
			}
			if l.externalUsers < 1 {
				Expect(l.invitations+l.collaborations).To(BeZero(), "external users went before invitations and collaborations: %+v", seen)
			}
			if l.members < 1 {
				Expect(l.invitations+l.collaborations+l.externalUsers).To(BeZero(), "members went before the rest: %+v", seen)
			}
		}

		By("the door number is free again, and nobody heard anything")
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Name: membership.DoorNumberClaimName(door)}, &rosterv1.Claim{}))).To(BeTrue())
		Consistently(func(g Gomega) {
			for _, a := range addrs {
				g.Expect(mailsTo(sink, a)).To(HaveLen(sent[a]), "%s was told something about the deletion", a)
			}
		}, "1s", interval).Should(Succeed())
	})
})
