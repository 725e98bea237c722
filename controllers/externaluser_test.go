package controllers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
	"github.com/roster-dev/roster/internal/membership"
	"github.com/roster-dev/roster/internal/notify"
)

// externalUser is an ExternalUser of application app in acme.
func externalUser(ns, name, app string, mutate ...func(*rosterv1.ExternalUser)) *rosterv1.ExternalUser {
	x := &rosterv1.ExternalUser{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: rosterv1.ExternalUserSpec{
			OrganizationRef: rosterv1.OrganizationReference{Name: "acme"},
			Application:     app,
			DisplayName:     name,
		},
	}
	for _, m := range mutate {
		m(x)
	}
	return x
}

func approved(x *rosterv1.ExternalUser) { x.Spec.Approval = rosterv1.ApprovalApproved }

func withApps(apps ...rosterv1.Application) func(*rosterv1.Organization) {
	return func(o *rosterv1.Organization) { o.Spec.Applications = apps }
}

func licensed(name string, seats int32) rosterv1.Application {
	return rosterv1.Application{Name: name, DisplayName: "The " + name, Portal: rosterv1.Portal{Enabled: true}, License: rosterv1.License{Seats: seats}}
}

// waitXU waits until the controller acted on the external user's spec and it is in phase.
func waitXU(ctx context.Context, ns, name string, phase rosterv1.ExternalUserPhase) *rosterv1.ExternalUser {
	GinkgoHelper()
	x := &rosterv1.ExternalUser{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key(ns, name), x)).To(Succeed())
		g.Expect(x.Status.ObservedGeneration).To(Equal(x.Generation))
		g.Expect(x.Status.Phase).To(Equal(phase), "external user %s/%s: %v", ns, name, x.Status.Conditions)
	}, timeout, interval).Should(Succeed())
	return x
}

// setXUStatus writes status as the portal does: as Roster's own identity.
func setXUStatus(ctx context.Context, x *rosterv1.ExternalUser, patch string) {
	GinkgoHelper()
	Expect(k8sClientAs(managerCfg).Status().Patch(ctx, x, client.RawPatch("application/merge-patch+json", []byte(`{"status":`+patch+`}`)))).To(Succeed())
}

func refused(err error, message string) {
	GinkgoHelper()
	Expect(err).To(HaveOccurred())
	Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	Expect(err.Error()).To(ContainSubstring(message))
}

func orgApplications(ctx context.Context, ns string) map[string]rosterv1.ApplicationStatus {
	org := &rosterv1.Organization{}
	Expect(k8sClient.Get(ctx, key(ns, "acme"), org)).To(Succeed())
	out := map[string]rosterv1.ApplicationStatus{}
	for _, a := range org.Status.Applications {
		out[a.Name] = a
	}
	return out
}

var _ = Describe("External users", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("F22 external users are added only by admins, and only to an application with an active license", func(ctx context.Context) {
		past := metav1.NewTime(fakeClock.Now().Add(-time.Hour))
		expired := licensed("old", 5)
		expired.License.ExpiresAt = &past
		newOrganization(ctx, ns, withApps(licensed("support", 3), licensed("unlicensed", 0), expired))
		member(ctx, ns, "mallory", "mallory@f22.example", rosterv1.RoleMember)
		waitMember(ctx, ns, "mallory", rosterv1.MemberActive)

		refused(adminClient.Create(ctx, externalUser(ns, "a", "unlicensed")), "license of application unlicensed has no seats")
		refused(adminClient.Create(ctx, externalUser(ns, "b", "old")), "license of application old expired")
		refused(adminClient.Create(ctx, externalUser(ns, "c", "nosuch")), `has no application "nosuch"`)
		refused(asUser("mallory").Create(ctx, externalUser(ns, "d", "support")), "only admins of Organization acme add external users")
		refused(asUser("stranger").Create(ctx, externalUser(ns, "e", "support")), "only admins")

		Expect(adminClient.Create(ctx, externalUser(ns, "erin", "support"))).To(Succeed())
		x := waitXU(ctx, ns, "erin", rosterv1.ExternalUserInvited)
		refused(setSpec(ctx, asUser("mallory"), x, `{"access":"Locked"}`), "only admins of Organization acme change external users")
		refused(asUser("mallory").Delete(ctx, x), "only admins of Organization acme delete external users")
	})

	It("F24 every external user gets an individual link, mailed when the email is known, and a new link kills the old one", func(ctx context.Context) {
		newOrganization(ctx, ns, withApps(licensed("support", 3)))
		Expect(adminClient.Create(ctx, externalUser(ns, "erin", "support", func(x *rosterv1.ExternalUser) {
			x.Spec.Email = "erin@f24.example"
			x.Spec.Invitation.SkipContactConfirmation = true
		}))).To(Succeed())
		x := waitXU(ctx, ns, "erin", rosterv1.ExternalUserInvited)

		secretLink := func() (string, *corev1.Secret) {
			GinkgoHelper()
			sec := &corev1.Secret{}
			Expect(x.Status.LinkSecretRef).NotTo(BeNil())
			Expect(k8sClient.Get(ctx, key(ns, x.Status.LinkSecretRef.Name), sec)).To(Succeed())
			return string(sec.Data[linktoken.SecretKeyLink]), sec
		}
		Expect(x.Status.LinkSecretRef.Name).To(Equal("erin-portal-link"))
		first, sec := secretLink()
		Expect(first).To(HavePrefix("https://join.test/portal/"))
		token := first[len("https://join.test/portal/"):]
		Expect(string(sec.Data[linktoken.SecretKeyHash])).To(Equal(linktoken.Hash(token)))
		Expect(sec.Labels).To(HaveKeyWithValue(rosterv1.LabelPartOf, rosterv1.PartOfRoster))
		Expect(sec.Labels).To(HaveKeyWithValue(linktoken.HashLabel, linktoken.LabelValue(linktoken.Hash(token))))
		Expect(metav1.IsControlledBy(sec, x)).To(BeTrue())

		Eventually(func() []sentMessage { return notifier.to("erin@f24.example") }, timeout, interval).Should(HaveLen(1))
		msg := notifier.to("erin@f24.example")[0].Message
		Expect(msg.Template).To(Equal(notify.TemplateExternalInvitation))
		Expect(msg.Key).To(Equal(fmt.Sprintf("%s/external-invitation/0", x.UID)))
		Expect(msg.Data).To(HaveKeyWithValue("Link", first))
		Expect(msg.Data).To(HaveKeyWithValue("ApplicationName", "The support"))
		Expect(msg.Data).To(HaveKeyWithValue("OrganizationName", "Acme"))
		Expect(msg.Data).To(HaveKeyWithValue("InviteeName", "erin"))
		Expect(msg.Data).To(HaveKeyWithValue("SkipContactConfirmation", true))
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key(ns, "erin"), x)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(x.Status.Conditions, rosterv1.ConditionReconciling)).To(BeFalse())
			g.Expect(readyCondition(x.Status.Conditions).Reason).To(Equal(rosterv1.ReasonInvited))
		}, timeout, interval).Should(Succeed())

		By("rotating the link")
		Expect(setSpec(ctx, adminClient, x, `{"invitation":{"linkGeneration":1}}`)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key(ns, "erin"), x)).To(Succeed())
			g.Expect(x.Status.LinkGeneration).To(BeEquivalentTo(1))
		}, timeout, interval).Should(Succeed())
		second, sec := secretLink()
		Expect(second).NotTo(Equal(first))
		Expect(linktoken.Matches(string(sec.Data[linktoken.SecretKeyHash]), token)).To(BeFalse(), "the old link still works")
		Eventually(func() []sentMessage { return notifier.to("erin@f24.example") }, timeout, interval).Should(HaveLen(2))
		Expect(notifier.to("erin@f24.example")[1].Message.Data).To(HaveKeyWithValue("Link", second))
		Consistently(func() []sentMessage { return notifier.to("erin@f24.example") }, 2*time.Second, interval).Should(HaveLen(2))
		Expect(eventReasons(ctx, x)).To(ContainElement("LinkRotated"))

		By("an external user without email gets a link and no mail")
		Expect(adminClient.Create(ctx, externalUser(ns, "quiet", "support"))).To(Succeed())
		q := waitXU(ctx, ns, "quiet", rosterv1.ExternalUserInvited)
		Expect(q.Status.LinkSecretRef).NotTo(BeNil())
		Expect(q.Status.Deliveries).To(BeEmpty())
	})

	It("F26 F27 F33 every external user is in the system group, can be locked and enabled, and is selected by labels", func(ctx context.Context) {
		newOrganization(ctx, ns, withApps(licensed("support", 3), licensed("billing", 3)))
		Expect(adminClient.Create(ctx, externalUser(ns, "erin", "support", approved, func(x *rosterv1.ExternalUser) { x.Spec.Company = "Partner GmbH & Co" }))).To(Succeed())
		Expect(adminClient.Create(ctx, externalUser(ns, "erin-billing", "billing", approved))).To(Succeed())
		x := waitXU(ctx, ns, "erin", rosterv1.ExternalUserActive)
		Expect(x.Status.Groups).To(ContainElement(rosterv1.SystemGroupExternalUsers))
		Expect(x.Status.RegisteredAt).NotTo(BeNil())
		Expect(x.Labels).To(HaveKeyWithValue(rosterv1.LabelCompany, "Partner-GmbH-Co"))
		Expect(readyCondition(x.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))

		list := &rosterv1.ExternalUserList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{
			rosterv1.LabelApplication: "support", rosterv1.LabelPhase: "Active", rosterv1.LabelCompany: "Partner-GmbH-Co"})).To(Succeed())
		Expect(list.Items).To(HaveLen(1))

		By("locking")
		Expect(setSpec(ctx, adminClient, x, `{"access":"Locked"}`)).To(Succeed())
		x = waitXU(ctx, ns, "erin", rosterv1.ExternalUserLocked)
		Expect(readyCondition(x.Status.Conditions).Message).To(ContainSubstring(`"access":"Enabled"`))
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{rosterv1.LabelPhase: "Locked"})).To(Succeed())
		Expect(list.Items).To(HaveLen(1))
		Expect(eventReasons(ctx, x)).To(ContainElement("Locked"))

		By("enabling again")
		Expect(setSpec(ctx, adminClient, x, `{"access":"Enabled"}`)).To(Succeed())
		waitXU(ctx, ns, "erin", rosterv1.ExternalUserActive)
		waitXU(ctx, ns, "erin-billing", rosterv1.ExternalUserActive)
	})

	It("F29 self-registrations wait for an admin's approval where the portal asks for it", func(ctx context.Context) {
		app := licensed("support", 3)
		app.Portal.SelfRegistration, app.Portal.ApprovalRequired = true, true
		newOrganization(ctx, ns, withApps(app))
		member(ctx, ns, "mallory", "mallory@f29.example", rosterv1.RoleMember)
		waitMember(ctx, ns, "mallory", rosterv1.MemberActive)
		for _, name := range []string{"sam", "sid"} {
			Expect(adminClient.Create(ctx, externalUser(ns, name, "support"))).To(Succeed())
			x := waitXU(ctx, ns, name, rosterv1.ExternalUserInvited)
			setXUStatus(ctx, x, `{"selfRegistered":true,"emailVerified":true}`)
		}
		sam := waitXU(ctx, ns, "sam", rosterv1.ExternalUserPendingApproval)
		Expect(readyCondition(sam.Status.Conditions).Message).To(ContainSubstring(`kubectl patch xu sam -n ` + ns))

		By("nobody but Roster writes status, and only admins decide")
		refused(asUser("mallory").Status().Patch(ctx, sam, client.RawPatch("application/merge-patch+json", []byte(`{"status":{"phase":"Active"}}`))), "only Roster writes")
		refused(adminClient.Status().Patch(ctx, sam, client.RawPatch("application/merge-patch+json", []byte(`{"status":{"phase":"Active"}}`))), "only Roster writes")
		refused(setSpec(ctx, asUser("mallory"), sam, `{"approval":"Approved"}`), "only admins")

		Expect(setSpec(ctx, adminClient, sam, `{"approval":"Approved"}`)).To(Succeed())
		waitXU(ctx, ns, "sam", rosterv1.ExternalUserActive)
		sid := waitXU(ctx, ns, "sid", rosterv1.ExternalUserPendingApproval)
		Expect(setSpec(ctx, adminClient, sid, `{"approval":"Rejected"}`)).To(Succeed())
		sid = waitXU(ctx, ns, "sid", rosterv1.ExternalUserRejected)
		Expect(meta.FindStatusCondition(sid.Status.Conditions, rosterv1.ConditionStalled)).To(BeNil())
	})

	It("F35 F25 a person who registers on a portal whose application requires a team waits until an admin gives them one", func(ctx context.Context) {
		app := licensed("support", 3)
		app.Portal.Enabled, app.Portal.SelfRegistration, app.RequireTeam = true, true, true
		org := newOrganization(ctx, ns, withApps(app))
		member(ctx, ns, "bob", "bob@f35.example", rosterv1.RoleMember)
		waitMember(ctx, ns, "bob", rosterv1.MemberActive)

		x, err := acceptor().SelfRegister(ctx, org, "support", membership.ExternalRegistration{DisplayName: "Tia", Email: "tia@f35.example"})
		Expect(err).NotTo(HaveOccurred())
		x = waitXU(ctx, ns, x.Name, rosterv1.ExternalUserPendingApproval)
		Expect(readyCondition(x.Status.Conditions).Message).To(ContainSubstring(`"team":[{"member":"<member-name>","lead":true}]`))
		Expect(x.Labels).NotTo(HaveKey(rosterv1.LabelSeat), "no seat before a team")

		By("approval alone is refused: the team comes with it")
		refused(setSpec(ctx, adminClient, x, `{"approval":"Approved"}`), "requires every external user to have a team")
		Expect(setSpec(ctx, adminClient, x, `{"approval":"Approved","team":[{"member":"bob","lead":true}]}`)).To(Succeed())
		waitXU(ctx, ns, x.Name, rosterv1.ExternalUserActive)
	})

	It("F30 F18 unlinking from the company and deleting leave the same person's other applications alone", func(ctx context.Context) {
		newOrganization(ctx, ns, withApps(licensed("support", 3), licensed("billing", 3)))
		for _, app := range []string{"support", "billing"} {
			Expect(adminClient.Create(ctx, externalUser(ns, "erin-"+app, app, approved, func(x *rosterv1.ExternalUser) { x.Spec.Company = "Partner" }))).To(Succeed())
		}
		x := waitXU(ctx, ns, "erin-support", rosterv1.ExternalUserActive)
		Expect(x.Labels).To(HaveKeyWithValue(rosterv1.LabelCompany, "Partner"))
		Expect(setSpec(ctx, adminClient, x, `{"company":null}`)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key(ns, "erin-support"), x)).To(Succeed())
			g.Expect(x.Labels).NotTo(HaveKey(rosterv1.LabelCompany))
		}, timeout, interval).Should(Succeed())

		Expect(adminClient.Delete(ctx, x)).To(Succeed())
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, key(ns, "erin-support"), x)) }, timeout, interval).Should(BeTrue())
		Consistently(func() rosterv1.ExternalUserPhase {
			return waitXU(ctx, ns, "erin-billing", rosterv1.ExternalUserActive).Status.Phase
		}, time.Second, 200*time.Millisecond).
			Should(Equal(rosterv1.ExternalUserActive))
	})

	It("F32 admins resend the registration confirmation and the welcome mail", func(ctx context.Context) {
		newOrganization(ctx, ns, withApps(licensed("support", 3)))
		Expect(adminClient.Create(ctx, externalUser(ns, "erin", "support", func(x *rosterv1.ExternalUser) { x.Spec.Email = "erin@f32.example" }))).To(Succeed())
		x := waitXU(ctx, ns, "erin", rosterv1.ExternalUserInvited)
		Eventually(func() []sentMessage { return notifier.to("erin@f32.example") }, timeout, interval).Should(HaveLen(1))

		Expect(setSpec(ctx, adminClient, x, `{"resendConfirmationRequests":1}`)).To(Succeed())
		Eventually(func() []sentMessage { return notifier.to("erin@f32.example") }, timeout, interval).Should(HaveLen(2))
		Expect(notifier.to("erin@f32.example")[1].Message.Template).To(Equal(notify.TemplateRegistrationConfirmation))

		Expect(setSpec(ctx, adminClient, x, `{"resendWelcomeRequests":1}`)).To(Succeed())
		Eventually(func() []sentMessage { return notifier.to("erin@f32.example") }, timeout, interval).Should(HaveLen(3))
		welcome := notifier.to("erin@f32.example")[2].Message
		Expect(welcome.Template).To(Equal(notify.TemplateWelcome))
		Expect(welcome.Data).To(HaveKeyWithValue("PortalURL", "https://join.test/portal"))
		Consistently(func() []sentMessage { return notifier.to("erin@f32.example") }, 2*time.Second, interval).Should(HaveLen(3))
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key(ns, "erin"), x)).To(Succeed())
			g.Expect(x.Status.ConfirmationResendsHandled).To(BeEquivalentTo(1))
			g.Expect(x.Status.WelcomeResendsHandled).To(BeEquivalentTo(1))
		}, timeout, interval).Should(Succeed())
	})

	It("F36/F38 teams are the organization's active members, with one lead who stays until replaced", func(ctx context.Context) {
		app := licensed("support", 3)
		app.RequireTeam = true
		newOrganization(ctx, ns, withApps(app))
		for _, name := range []string{"dana", "dave"} {
			member(ctx, ns, name, name+"@f36.example", rosterv1.RoleMember)
			waitMember(ctx, ns, name, rosterv1.MemberActive)
		}
		refused(adminClient.Create(ctx, externalUser(ns, "erin", "support")), "requires every external user to have a team")
		refused(adminClient.Create(ctx, externalUser(ns, "erin", "support", func(x *rosterv1.ExternalUser) {
			x.Spec.Team = []rosterv1.TeamMember{{Member: "ghost", Lead: true}}
		})), `team member "ghost" is not an active Member`)
		refused(adminClient.Create(ctx, externalUser(ns, "erin", "support", func(x *rosterv1.ExternalUser) {
			x.Spec.Team = []rosterv1.TeamMember{{Member: "dana", Lead: true}, {Member: "dave", Lead: true}}
		})), "at most one lead")
		Expect(adminClient.Create(ctx, externalUser(ns, "erin", "support", func(x *rosterv1.ExternalUser) {
			x.Spec.Team = []rosterv1.TeamMember{{Member: "dana", Lead: true}, {Member: "dave"}}
		}))).To(Succeed())
		x := waitXU(ctx, ns, "erin", rosterv1.ExternalUserInvited)

		refused(setSpec(ctx, adminClient, x, `{"team":[{"member":"dave"}]}`), "lead")
		refused(setSpec(ctx, adminClient, x, `{"team":[{"member":"dana"},{"member":"dave"}]}`), "lead")
		Expect(setSpec(ctx, adminClient, x, `{"team":[{"member":"dave","lead":true}]}`)).To(Succeed())
		Expect(k8sClient.Get(ctx, key(ns, "erin"), x)).To(Succeed())
		Expect(x.Spec.Team).To(Equal([]rosterv1.TeamMember{{Member: "dave", Lead: true}}))
		refused(setSpec(ctx, adminClient, x, `{"team":[]}`), "lead")
	})

	It("F16 seats: the oldest get them, expansion and renewal admit the waiting, and nobody takes a seat by hand", func(ctx context.Context) {
		newOrganization(ctx, ns, withApps(licensed("support", 2)))
		for _, name := range []string{"u1", "u2", "u3"} {
			Expect(adminClient.Create(ctx, externalUser(ns, name, "support", approved))).To(Succeed())
			time.Sleep(1100 * time.Millisecond) // creationTimestamp has seconds
		}
		waitXU(ctx, ns, "u1", rosterv1.ExternalUserActive)
		waitXU(ctx, ns, "u2", rosterv1.ExternalUserActive)
		u3 := waitXU(ctx, ns, "u3", rosterv1.ExternalUserWaitingForSeat)
		Expect(readyCondition(u3.Status.Conditions).Reason).To(Equal(rosterv1.ReasonWaitingForSeat))
		Eventually(func() rosterv1.ApplicationStatus { return orgApplications(ctx, ns)["support"] }, timeout, interval).
			Should(Equal(rosterv1.ApplicationStatus{Name: "support", Seats: 2, SeatsUsed: 2, Waiting: 1}))

		By("nobody sets the seat label but Roster")
		refused(adminClient.Patch(ctx, u3, client.RawPatch("application/merge-patch+json",
			[]byte(`{"metadata":{"labels":{"org.roster.dev/seat":"granted"}}}`))), "is Roster's")
		refused(adminClient.Create(ctx, externalUser(ns, "sneaky", "support", approved, func(x *rosterv1.ExternalUser) {
			x.Labels = map[string]string{rosterv1.LabelSeat: rosterv1.SeatGranted}
		})), "is Roster's")

		By("expanding the license admits the waiting")
		org := &rosterv1.Organization{}
		Expect(k8sClient.Get(ctx, key(ns, "acme"), org)).To(Succeed())
		Expect(setSpec(ctx, adminClient, org, `{"applications":[{"name":"support","license":{"seats":3}}]}`)).To(Succeed())
		waitXU(ctx, ns, "u3", rosterv1.ExternalUserActive)

		By("an expired license takes every seat back, and renewing it gives them back")
		past := fakeClock.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		Expect(setSpec(ctx, adminClient, org, `{"applications":[{"name":"support","license":{"seats":3,"expiresAt":"`+past+`"}}]}`)).To(Succeed())
		for _, name := range []string{"u1", "u2", "u3"} {
			x := waitXU(ctx, ns, name, rosterv1.ExternalUserWaitingForSeat)
			Expect(readyCondition(x.Status.Conditions).Reason).To(Equal(rosterv1.ReasonLicenseExpired))
			Expect(meta.IsStatusConditionTrue(x.Status.Conditions, rosterv1.ConditionStalled)).To(BeTrue())
		}
		Eventually(func() rosterv1.ApplicationStatus { return orgApplications(ctx, ns)["support"] }, timeout, interval).
			Should(Equal(rosterv1.ApplicationStatus{Name: "support", Seats: 3, Waiting: 3, LicenseExpired: true}))
		refused(adminClient.Create(ctx, externalUser(ns, "late", "support")), "expired")
		future := fakeClock.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
		Expect(setSpec(ctx, adminClient, org, `{"applications":[{"name":"support","license":{"seats":2,"expiresAt":"`+future+`"}}]}`)).To(Succeed())
		waitXU(ctx, ns, "u1", rosterv1.ExternalUserActive)
		waitXU(ctx, ns, "u2", rosterv1.ExternalUserActive)
		waitXU(ctx, ns, "u3", rosterv1.ExternalUserWaitingForSeat)

		By("freeing a seat admits the oldest waiting")
		Expect(adminClient.Delete(ctx, &rosterv1.ExternalUser{ObjectMeta: metav1.ObjectMeta{Name: "u1", Namespace: ns}})).To(Succeed())
		waitXU(ctx, ns, "u3", rosterv1.ExternalUserActive)
	})

	It("F16 seats under churn: no moment has more Active users than seats, and the counts end exact", func(ctx context.Context) {
		seats := map[string]int32{"alpha": 3, "beta": 5, "gamma": 7}
		newOrganization(ctx, ns, withApps(licensed("alpha", 3), licensed("beta", 5), licensed("gamma", 7)))
		apps := []string{"alpha", "beta", "gamma"}

		stop := make(chan struct{})
		var violations []string
		var polls int
		var pollMu sync.Mutex
		pollDone := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(pollDone)
			for {
				select {
				case <-stop:
					return
				default:
				}
				list := &rosterv1.ExternalUserList{}
				if err := k8sClient.List(ctx, list, client.InNamespace(ns)); err != nil {
					continue
				}
				active := map[string]int32{}
				for _, x := range list.Items {
					if x.Status.Phase == rosterv1.ExternalUserActive {
						active[x.Spec.Application]++
					}
				}
				pollMu.Lock()
				polls++
				for app, n := range active {
					if n > seats[app] {
						violations = append(violations, fmt.Sprintf("%s: %d active, %d seats (rv %s)", app, n, seats[app], list.ResourceVersion))
					}
				}
				pollMu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()

		var wg sync.WaitGroup
		deleted := make([]bool, 50)
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				x := externalUser(ns, fmt.Sprintf("churn-%02d", i), apps[i%3], approved)
				Expect(adminClient.Create(ctx, x)).To(Succeed())
				time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond)
				if i%2 == 0 {
					Expect(adminClient.Delete(ctx, x)).To(Succeed())
					deleted[i] = true
				}
			}()
		}
		wg.Wait()

		want := map[string]rosterv1.ApplicationStatus{}
		for i, app := range []string{"alpha", "beta", "gamma"} {
			remaining := int32(0)
			for j := range 50 {
				if j%3 == i && !deleted[j] {
					remaining++
				}
			}
			used := min(remaining, seats[app])
			want[app] = rosterv1.ApplicationStatus{Name: app, Seats: seats[app], SeatsUsed: used, Waiting: remaining - used}
		}
		Eventually(func(g Gomega) {
			list := &rosterv1.ExternalUserList{}
			g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			g.Expect(list.Items).To(HaveLen(25))
			got := map[string]rosterv1.ApplicationStatus{}
			for _, x := range list.Items {
				g.Expect(x.Status.ObservedGeneration).To(Equal(x.Generation))
				s := got[x.Spec.Application]
				switch x.Status.Phase {
				case rosterv1.ExternalUserActive:
					s.SeatsUsed++
				case rosterv1.ExternalUserWaitingForSeat:
					s.Waiting++
				default:
					g.Expect(x.Status.Phase).To(BeElementOf(rosterv1.ExternalUserActive, rosterv1.ExternalUserWaitingForSeat))
				}
				got[x.Spec.Application] = s
			}
			for app, w := range want {
				g.Expect(got[app].SeatsUsed).To(Equal(w.SeatsUsed), app)
				g.Expect(got[app].Waiting).To(Equal(w.Waiting), app)
			}
			g.Expect(orgApplications(ctx, ns)).To(Equal(want))
		}, 2*timeout, interval).Should(Succeed())
		close(stop)
		<-pollDone
		pollMu.Lock()
		defer pollMu.Unlock()
		Expect(polls).To(BeNumerically(">", 10))
		Expect(violations).To(BeEmpty())
	})
})

var _ = Describe("External users' teams", func() {
	It("F36 a team member who leaves is named on the clients they served, so an admin knows whom to reassign", func(ctx context.Context) {
		ns := newNamespace(ctx)
		newOrganization(ctx, ns, withApps(licensed("support", 5)))
		dana := member(ctx, ns, "dana", "dana@team.example", rosterv1.RoleMember)
		ed := member(ctx, ns, "ed", "ed@team.example", rosterv1.RoleMember)
		waitMember(ctx, ns, "dana", rosterv1.MemberActive)
		waitMember(ctx, ns, "ed", rosterv1.MemberActive)
		Expect(adminClient.Create(ctx, externalUser(ns, "client", "support", func(x *rosterv1.ExternalUser) {
			x.Spec.Team = []rosterv1.TeamMember{{Member: "dana", Lead: true}, {Member: "ed"}}
		}))).To(Succeed())
		team := func(g Gomega) *metav1.Condition {
			x := &rosterv1.ExternalUser{}
			g.Expect(k8sClient.Get(ctx, key(ns, "client"), x)).To(Succeed())
			c := meta.FindStatusCondition(x.Status.Conditions, rosterv1.ConditionTeam)
			g.Expect(c).NotTo(BeNil())
			return c
		}
		Eventually(func(g Gomega) { g.Expect(team(g).Status).To(Equal(metav1.ConditionTrue)) }, timeout, interval).Should(Succeed())

		Expect(setSpec(ctx, adminClient, dana, `{"access":"Terminated"}`)).To(Succeed())
		Eventually(func(g Gomega) {
			c := team(g)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(rosterv1.ReasonTeamMemberLeft))
			g.Expect(c.Message).To(Equal(fmt.Sprintf("dana (removed) left the organization and no longer serve this client; reassign them: kubectl edit xu client -n %s (spec.team)", ns)))
		}, timeout, interval).Should(Succeed())
		Expect(adminClient.Delete(ctx, ed)).To(Succeed())
		Eventually(func(g Gomega) { g.Expect(team(g).Message).To(HavePrefix("dana (removed), ed (deleted) left")) }, timeout, interval).Should(Succeed())
	})
})
