package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/notify"
)

// readyReason is the reason of the object's Ready condition.
func readyReason(x *rosterv1.ExternalUser) string {
	if c := meta.FindStatusCondition(x.Status.Conditions, rosterv1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

// templateNamesTo lists the templates of the messages sent to addr, oldest first.
func templateNamesTo(addr string) []notify.TemplateName {
	var out []notify.TemplateName
	for _, m := range notifier.to(addr) {
		out = append(out, m.Message.Template)
	}
	return out
}

var _ = Describe("External user lifecycle", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("F24 an individual link works for the organization's invitationTTL, a new generation replaces an expired one, and a used one is retired", func(ctx context.Context) {
		newOrganization(ctx, ns, withApps(licensed("support", 3)), func(o *rosterv1.Organization) { o.Spec.InvitationTTL = metav1.Duration{Duration: time.Hour} })
		Expect(adminClient.Create(ctx, externalUser(ns, "erin", "support", func(x *rosterv1.ExternalUser) { x.Spec.Email = "erin@link-life.example" }))).To(Succeed())
		x := waitXU(ctx, ns, "erin", rosterv1.ExternalUserInvited)
		Expect(x.Status.LinkExpiresAt).NotTo(BeNil())
		Expect(x.Status.LinkExpiresAt.Time).To(BeTemporally("~", fakeClock.Now().Add(time.Hour), 2*time.Second))
		Eventually(func() []notify.TemplateName { return templateNamesTo("erin@link-life.example") }, timeout, interval).Should(HaveLen(1))
		Expect(notifier.to("erin@link-life.example")[0].Message.Data).To(HaveKeyWithValue("ExpiresAt", x.Status.LinkExpiresAt),
			"the mail says until when the link works")

		By("the link running out unused")
		fakeClock.Step(61 * time.Minute)
		poke(ctx, x)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key(ns, "erin"), x)).To(Succeed())
			g.Expect(readyReason(x)).To(Equal(rosterv1.ReasonLinkExpired))
		}, timeout, interval).Should(Succeed())
		expectStatus(ctx, x, status.FailedStatus, "linkGeneration")

		By("a new generation")
		Expect(setSpec(ctx, adminClient, x, `{"invitation":{"linkGeneration":1}}`)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key(ns, "erin"), x)).To(Succeed())
			g.Expect(x.Status.LinkGeneration).To(Equal(int64(1)))
			g.Expect(readyReason(x)).To(Equal(rosterv1.ReasonInvited))
			g.Expect(x.Status.LinkExpiresAt.Time).To(BeTemporally(">", fakeClock.Now()))
		}, timeout, interval).Should(Succeed())
		Eventually(func() []notify.TemplateName { return templateNamesTo("erin@link-life.example") }, timeout, interval).Should(HaveLen(2))

		By("the person confirming their address with it")
		setXUStatus(ctx, x, `{"emailVerified":true}`)
		x = waitXU(ctx, ns, "erin", rosterv1.ExternalUserActive)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key(ns, "erin"), x)).To(Succeed())
			g.Expect(x.Status.LinkSecretRef).To(BeNil())
			g.Expect(x.Status.LinkExpiresAt).To(BeNil())
			g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, key(ns, "erin-portal-link"), &corev1.Secret{}))).To(BeTrue(), "the used link's Secret is gone")
		}, timeout, interval).Should(Succeed())
		By("raising the generation after it was used")
		Expect(setSpec(ctx, adminClient, x, `{"invitation":{"linkGeneration":2}}`)).To(Succeed())
		waitXU(ctx, ns, "erin", rosterv1.ExternalUserActive)
		Consistently(func() error { return k8sClient.Get(ctx, key(ns, "erin-portal-link"), &corev1.Secret{}) }, "500ms", interval).
			Should(Satisfy(apierrors.IsNotFound), "no link is made for someone who registered")
		Expect(templateNamesTo("erin@link-life.example")).To(HaveLen(2))
	})

	It("inactivity: a user who stops signing in is disabled and told once, frees the seat, and is deleted later; an admin reactivates them", func(ctx context.Context) {
		app := licensed("support", 1)
		app.Inactivity = &rosterv1.Inactivity{DisableAfter: &metav1.Duration{Duration: time.Hour}, DeleteAfter: &metav1.Duration{Duration: 2 * time.Hour}}
		org := newOrganization(ctx, ns, withApps(app))
		withEmail := func(addr string) func(*rosterv1.ExternalUser) {
			return func(x *rosterv1.ExternalUser) { x.Spec.Email = addr; x.Spec.Approval = rosterv1.ApprovalApproved }
		}
		Expect(adminClient.Create(ctx, externalUser(ns, "ivy", "support", withEmail("ivy@idle.example")))).To(Succeed())
		ivy := waitXU(ctx, ns, "ivy", rosterv1.ExternalUserActive)
		setXUStatus(ctx, ivy, `{"emailVerified":true,"lastLoginAt":"`+fakeClock.Now().UTC().Format(time.RFC3339)+`"}`)
		Expect(adminClient.Create(ctx, externalUser(ns, "wes", "support", withEmail("wes@idle.example")))).To(Succeed())
		wes := waitXU(ctx, ns, "wes", rosterv1.ExternalUserWaitingForSeat)

		By("an hour and a minute without signing in")
		fakeClock.Step(61 * time.Minute)
		poke(ctx, ivy)
		ivy = waitXU(ctx, ns, "ivy", rosterv1.ExternalUserDisabled)
		Expect(ivy.Status.DisabledAt).NotTo(BeNil())
		expectStatus(ctx, ivy, status.CurrentStatus, "")
		Expect(meta.FindStatusCondition(ivy.Status.Conditions, rosterv1.ConditionReady).Message).To(ContainSubstring(`"reactivateRequests":1`))
		Expect(eventReasons(ctx, ivy)).To(ContainElement(rosterv1.ReasonDisabledForInactivity))
		Eventually(func() []notify.TemplateName { return templateNamesTo("ivy@idle.example") }, timeout, interval).
			Should(ContainElement(notify.TemplateExternalDisabled))
		Expect(notifier.to("ivy@idle.example")[len(notifier.to("ivy@idle.example"))-1].Message.Data).To(HaveKey("DeleteAt"))
		By("the freed seat going to the one who waited, who is judged from now on")
		wes = waitXU(ctx, ns, "wes", rosterv1.ExternalUserActive)
		Expect(wes.Status.SeatSince).NotTo(BeNil())

		By("an admin letting ivy in again: she waits for a seat")
		Expect(setSpec(ctx, adminClient, ivy, `{"reactivateRequests":1}`)).To(Succeed())
		ivy = waitXU(ctx, ns, "ivy", rosterv1.ExternalUserWaitingForSeat)
		Expect(ivy.Status.DisabledAt).To(BeNil())
		Expect(ivy.Status.ReactivatedAt).NotTo(BeNil())

		By("another hour: wes is disabled, ivy gets the seat")
		fakeClock.Step(61 * time.Minute)
		poke(ctx, wes)
		waitXU(ctx, ns, "wes", rosterv1.ExternalUserDisabled)
		ivy = waitXU(ctx, ns, "ivy", rosterv1.ExternalUserActive)

		By("past deleteAfter: wes, disabled and told, is deleted")
		fakeClock.Step(61 * time.Minute)
		// Another pass may delete wes before the poke arrives.
		Expect(client.IgnoreNotFound(k8sClient.Patch(ctx, wes, client.RawPatch("application/merge-patch+json",
			[]byte(`{"metadata":{"annotations":{"test.roster.dev/poke":"deleted"}}}`))))).To(Succeed())
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, key(ns, "wes"), &rosterv1.ExternalUser{})) }, timeout, interval).Should(BeTrue())
		Eventually(func() []string { return eventReasons(ctx, org) }, timeout, interval).Should(ContainElement("ExternalUserDeleted"))
		count := func(addr string, t notify.TemplateName) int {
			n := 0
			for _, got := range templateNamesTo(addr) {
				if got == t {
					n++
				}
			}
			return n
		}
		Expect(count("wes@idle.example", notify.TemplateExternalDisabled)).To(Equal(1), "told once")
		Expect(count("ivy@idle.example", notify.TemplateExternalDisabled)).To(Equal(1), "told once per time she was disabled")
	})
})
