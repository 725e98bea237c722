package controllers_test

import (
	"context"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/linktoken"
	"github.com/roster-dev/roster/internal/notify"
)

var _ = Describe("External user features", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	names := func(xs []rosterv1.ExternalUser) []string {
		var out []string
		for _, x := range xs {
			out = append(out, x.Name)
		}
		slices.Sort(out)
		return out
	}

	It("F15 each application's portal judges the people who register on it by its own rules", func(ctx context.Context) {
		open := licensed("shop", 5)
		open.Portal.SelfRegistration = true
		vetted := licensed("partners", 5)
		vetted.Portal.SelfRegistration, vetted.Portal.ApprovalRequired = true, true
		newOrganization(ctx, ns, withApps(open, vetted))
		pages := k8sClientAs(managerCfg) // the portal registers people as Roster's identity
		for _, app := range []string{"shop", "partners"} {
			x := externalUser(ns, "ria-"+app, app, func(x *rosterv1.ExternalUser) { x.Spec.Email = "ria@f15.example" })
			Expect(pages.Create(ctx, x)).To(Succeed())
			setXUStatus(ctx, waitXU(ctx, ns, x.Name, rosterv1.ExternalUserInvited), `{"selfRegistered":true,"emailVerified":true}`)
		}
		waitXU(ctx, ns, "ria-shop", rosterv1.ExternalUserActive)
		x := waitXU(ctx, ns, "ria-partners", rosterv1.ExternalUserPendingApproval)
		Eventually(func(g Gomega) { // once the messages under way are out, the summary says what to do
			g.Expect(k8sClient.Get(ctx, key(ns, "ria-partners"), x)).To(Succeed())
			g.Expect(meta.FindStatusCondition(x.Status.Conditions, rosterv1.ConditionReady).Message).To(ContainSubstring(`"approval":"Approved"`))
		}, timeout, interval).Should(Succeed())
		Expect(x.Status.RegisteredAt).NotTo(BeNil())
		By("an admin approving the one that waits")
		Expect(setSpec(ctx, adminClient, x, `{"approval":"Approved"}`)).To(Succeed())
		waitXU(ctx, ns, "ria-partners", rosterv1.ExternalUserActive)
	})

	It("F17 F34 external users are found server side by application, name, email, phone, company and status, and sorted by sign-up or last login", func(ctx context.Context) {
		newOrganization(ctx, ns, withApps(licensed("support", 5), licensed("billing", 5)))
		add := func(name, app, company, email, phone string) {
			Expect(adminClient.Create(ctx, externalUser(ns, name, app, approved, func(x *rosterv1.ExternalUser) {
				x.Spec.DisplayName, x.Spec.Company, x.Spec.Email, x.Spec.Phone = strings.ToUpper(name[:1])+name[1:], company, email, phone
			}))).To(Succeed())
		}
		add("ada", "support", "Partner GmbH", "ada@f17.example", "+4915100000001")
		add("bob", "support", "Other AG", "bob@f17.example", "+4915100000002")
		add("cyd", "billing", "Partner GmbH", "cyd@f17.example", "+4915100000003")
		add("dee", "support", "", "dee@f17.example", "")
		for _, n := range []string{"ada", "bob", "cyd", "dee"} {
			waitXU(ctx, ns, n, rosterv1.ExternalUserActive)
		}
		Expect(setSpec(ctx, adminClient, waitXU(ctx, ns, "bob", rosterv1.ExternalUserActive), `{"access":"Locked"}`)).To(Succeed())
		waitXU(ctx, ns, "bob", rosterv1.ExternalUserLocked)
		now := fakeClock.Now()
		for n, ago := range map[string]time.Duration{"ada": 3 * time.Hour, "cyd": time.Hour, "dee": 2 * time.Hour} {
			x := waitXU(ctx, ns, n, rosterv1.ExternalUserActive)
			setXUStatus(ctx, x, `{"lastLoginAt":"`+now.Add(-ago).UTC().Format(time.RFC3339)+`"}`)
		}

		find := func(opts ...client.ListOption) []string {
			GinkgoHelper()
			list := &rosterv1.ExternalUserList{}
			Expect(adminClient.List(ctx, list, append(opts, client.InNamespace(ns))...)).To(Succeed())
			return names(list.Items)
		}
		by := func(field, value string) client.ListOption {
			return client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector(field, value)}
		}
		Expect(find(client.MatchingLabels{rosterv1.LabelApplication: "support"})).To(Equal([]string{"ada", "bob", "dee"}))
		Expect(find(by("spec.application", "billing"))).To(Equal([]string{"cyd"}))
		Expect(find(by("spec.company", "Partner GmbH"))).To(Equal([]string{"ada", "cyd"}))
		Expect(find(client.MatchingLabels{rosterv1.LabelCompany: "Partner-GmbH"})).To(Equal([]string{"ada", "cyd"}))
		Expect(find(by("spec.email", "bob@f17.example"))).To(Equal([]string{"bob"}))
		Expect(find(by("spec.phone", "+4915100000003"))).To(Equal([]string{"cyd"}))
		Expect(find(by("spec.displayName", "Dee"))).To(Equal([]string{"dee"}))
		Expect(find(by("status.phase", "Locked"))).To(Equal([]string{"bob"}))
		Expect(find(client.MatchingLabels{rosterv1.LabelPhase: "Active", rosterv1.LabelApplication: "support"})).To(Equal([]string{"ada", "dee"}))
		Expect(find(by("metadata.name", "ada"))).To(Equal([]string{"ada"}), "the ID")

		By("sorting by last login and by sign-up, as kubectl --sort-by does with the fields Roster fills")
		list := &rosterv1.ExternalUserList{}
		Eventually(func(g Gomega) {
			g.Expect(adminClient.List(ctx, list, client.InNamespace(ns), client.MatchingFields{"status.phase": "Active"})).To(Succeed())
			for _, x := range list.Items {
				g.Expect(x.Status.LastLoginAt).NotTo(BeNil(), x.Name)
				g.Expect(x.Status.RegisteredAt).NotTo(BeNil(), x.Name)
			}
		}, timeout, interval).Should(Succeed())
		slices.SortFunc(list.Items, func(a, b rosterv1.ExternalUser) int { return a.Status.LastLoginAt.Compare(b.Status.LastLoginAt.Time) })
		Expect(names(list.Items)).To(HaveLen(3))
		var order []string
		for _, x := range list.Items {
			order = append(order, x.Name)
		}
		Expect(order).To(Equal([]string{"ada", "dee", "cyd"}))
	})

	It("F23 an external user needs only a name; the link waits in a Secret for an admin to pass on", func(ctx context.Context) {
		newOrganization(ctx, ns, withApps(licensed("support", 5)))
		bare := externalUser(ns, "nora", "support")
		bare.Spec.DisplayName = ""
		refused(adminClient.Create(ctx, bare), "spec.displayName")
		Expect(adminClient.Create(ctx, externalUser(ns, "nora", "support"))).To(Succeed())
		x := waitXU(ctx, ns, "nora", rosterv1.ExternalUserInvited)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key(ns, "nora"), x)).To(Succeed())
			g.Expect(meta.FindStatusCondition(x.Status.Conditions, rosterv1.ConditionReady).Message).To(ContainSubstring("Secret nora-portal-link"))
		}, timeout, interval).Should(Succeed(), "the Ready message says where the link is")
		sec := &corev1.Secret{}
		Expect(adminClient.Get(ctx, key(ns, "nora-portal-link"), sec)).To(Succeed())
		Expect(string(sec.Data[linktoken.SecretKeyLink])).To(HavePrefix("https://join.test/portal/"))
		Consistently(func() []rosterv1.Delivery {
			Expect(k8sClient.Get(ctx, key(ns, "nora"), x)).To(Succeed())
			return x.Status.Deliveries
		}, "300ms", interval).Should(BeEmpty(), "no address, so no message")
	})

	It("F28 people added from a business partner's contacts carry the company, and the partner's people are selected together", func(ctx context.Context) {
		newOrganization(ctx, ns, withApps(licensed("support", 5)))
		for _, c := range []struct{ name, email string }{{"paul", "paul@partner.example"}, {"pia", "pia@partner.example"}} {
			Expect(adminClient.Create(ctx, externalUser(ns, c.name, "support", func(x *rosterv1.ExternalUser) {
				x.Spec.Company, x.Spec.Email, x.Spec.Title = "Partner & Söhne KG", c.email, "Buyer"
			}))).To(Succeed())
		}
		Expect(adminClient.Create(ctx, externalUser(ns, "olga", "support", func(x *rosterv1.ExternalUser) { x.Spec.Company = "Other" }))).To(Succeed())
		x := waitXU(ctx, ns, "paul", rosterv1.ExternalUserInvited)
		value := x.Labels[rosterv1.LabelCompany]
		Expect(value).To(Equal("Partner-S-hne-KG"), "a label-safe form of the company")
		list := &rosterv1.ExternalUserList{}
		Eventually(func() []string {
			Expect(adminClient.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{rosterv1.LabelCompany: value})).To(Succeed())
			return names(list.Items)
		}, timeout, interval).Should(Equal([]string{"paul", "pia"}))
		By("unlinking one of them from the company")
		Expect(setSpec(ctx, adminClient, x, `{"company":null}`)).To(Succeed())
		Eventually(func() []string {
			Expect(adminClient.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{rosterv1.LabelCompany: value})).To(Succeed())
			return names(list.Items)
		}, timeout, interval).Should(Equal([]string{"pia"}))
	})

	It("F35 a client is invited by email with name and email, or by a link an admin copies", func(ctx context.Context) {
		newOrganization(ctx, ns, withApps(licensed("support", 5)))
		member(ctx, ns, "sam", "sam@f35.example", rosterv1.RoleMember)
		waitMember(ctx, ns, "sam", rosterv1.MemberActive)
		team := func(x *rosterv1.ExternalUser) { x.Spec.Team = []rosterv1.TeamMember{{Member: "sam", Lead: true}} }
		Expect(adminClient.Create(ctx, externalUser(ns, "carla", "support", team, func(x *rosterv1.ExternalUser) {
			x.Spec.DisplayName, x.Spec.Email = "Carla Client", "carla@f35.example"
		}))).To(Succeed())
		Expect(adminClient.Create(ctx, externalUser(ns, "cody", "support", team, func(x *rosterv1.ExternalUser) { x.Spec.DisplayName = "Cody Client" }))).To(Succeed())

		carla := waitXU(ctx, ns, "carla", rosterv1.ExternalUserInvited)
		Eventually(func() []sentMessage { return notifier.to("carla@f35.example") }, timeout, interval).Should(HaveLen(1))
		msg := notifier.to("carla@f35.example")[0].Message
		Expect(msg.Template).To(Equal(notify.TemplateExternalInvitation))
		Expect(msg.To.Name).To(Equal("Carla Client"))
		sec := &corev1.Secret{}
		Expect(adminClient.Get(ctx, key(ns, carla.Status.LinkSecretRef.Name), sec)).To(Succeed())
		Expect(msg.Data).To(HaveKeyWithValue("Link", string(sec.Data[linktoken.SecretKeyLink])), "the mail carries the link an admin would copy")

		cody := waitXU(ctx, ns, "cody", rosterv1.ExternalUserInvited)
		Expect(adminClient.Get(ctx, key(ns, cody.Status.LinkSecretRef.Name), sec)).To(Succeed())
		Expect(string(sec.Data[linktoken.SecretKeyLink])).To(HavePrefix("https://join.test/portal/"))
		Expect(meta.FindStatusCondition(cody.Status.Conditions, rosterv1.ConditionTeam).Status).To(Equal(metav1.ConditionTrue))
	})
})
