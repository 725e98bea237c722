package bulk_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/bulk"
)

// newUser creates an ExternalUser of application support in acme and, with no controller
// running, gives it the status a test needs, as the ExternalUser controller would.
func newUser(ctx context.Context, ns, name string, spec rosterv1.ExternalUserSpec, status *rosterv1.ExternalUserStatus) {
	spec.OrganizationRef = rosterv1.OrganizationReference{Name: "acme"}
	if spec.Application == "" {
		spec.Application = "support"
	}
	x := &rosterv1.ExternalUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	Expect(k8sClient.Create(ctx, x)).To(Succeed())
	if status != nil {
		x.Status = *status
		Expect(k8sClient.Status().Update(ctx, x)).To(Succeed())
	}
}

func names(users []rosterv1.ExternalUser) []string {
	out := make([]string, 0, len(users))
	for _, x := range users {
		out = append(out, x.Name)
	}
	return out
}

var _ = Describe("F17 F34 finding external users", func() {
	It("searches 2,000 users page by page and returns the right ones, sorted", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		newPortalOrganization(ctx, ns, false)
		base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		// Every 20th user is at Initech and registered, at an hour that does not follow the
		// order of creation; every other of those signed in; every 4th of them is locked.
		registeredHour := func(i int) int { return (i / 20 * 37) % 100 }
		work := make(chan int)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				defer GinkgoRecover()
				for i := range work {
					spec := rosterv1.ExternalUserSpec{DisplayName: fmt.Sprintf("User %04d", i),
						Email: fmt.Sprintf("u%04d@partner.example", i), Phone: fmt.Sprintf("+49151%07d", i), Company: "Partner GmbH"}
					var status *rosterv1.ExternalUserStatus
					if i%20 == 0 {
						spec.Company = "Initech"
						reg := metav1.NewTime(base.Add(time.Duration(registeredHour(i)) * time.Hour))
						status = &rosterv1.ExternalUserStatus{Phase: rosterv1.ExternalUserActive, RegisteredAt: &reg}
						if i%40 == 0 {
							login := metav1.NewTime(reg.Add(time.Duration(i) * time.Minute))
							status.LastLoginAt = &login
						}
						if i%80 == 0 {
							status.Phase = rosterv1.ExternalUserLocked
						}
					}
					newUser(ctx, ns, fmt.Sprintf("u-%04d", i), spec, status)
				}
			})
		}
		for i := range 2000 {
			work <- i
		}
		close(work)
		wg.Wait()
		// One user of another application, who matches everything else.
		newUser(ctx, ns, "other-app", rosterv1.ExternalUserSpec{Application: "billing", DisplayName: "User 0000", Company: "Initech"}, nil)

		var lists, biggest int
		counting := interceptor.NewClient(k8sClient, interceptor.Funcs{
			List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				err := c.List(ctx, list, opts...)
				if l, ok := list.(*rosterv1.ExternalUserList); ok {
					lists++
					biggest = max(biggest, len(l.Items))
				}
				return err
			},
		})

		after := base.Add(50 * time.Hour)
		found, err := bulk.FindUsers(ctx, counting, ns, bulk.UserQuery{Application: "support", Company: "initech",
			SignedUpAfter: after, Sort: "signup"})
		Expect(err).NotTo(HaveOccurred())
		Expect(lists).To(BeNumerically(">=", 5), "2,001 users come in pages")
		Expect(biggest).To(BeNumerically("<=", 500))
		var want []string
		for hour := 50; hour < 100; hour++ {
			for i := 0; i < 2000; i += 20 {
				if registeredHour(i) == hour {
					want = append(want, fmt.Sprintf("u-%04d", i))
				}
			}
		}
		Expect(want).To(HaveLen(50))
		Expect(names(found)).To(Equal(want))

		By("sorting by last login, and keeping those who never signed in out of --login-after")
		found, err = bulk.FindUsers(ctx, k8sClient, ns, bulk.UserQuery{Application: "support", LoginAfter: base, Sort: "login"})
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(HaveLen(50))
		for i := 1; i < len(found); i++ {
			Expect(found[i].Status.LastLoginAt.Before(found[i-1].Status.LastLoginAt)).To(BeFalse())
		}

		By("those who never signed in have not signed in since any time")
		found, err = bulk.FindUsers(ctx, k8sClient, ns, bulk.UserQuery{Application: "support", LoginBefore: base,
			Statuses: []string{"active"}, Company: "Initech"})
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(HaveLen(50), "Initech's 100 registered users less the 50 who signed in")
		Expect(found[0].Name).To(Equal("u-0020"), "sorted by name")

		By("searching a phone however it is spaced, a name, and an email")
		for search, want := range map[string][]string{
			"+49 151 000 1234": {"u-1234"},
			"user 0042":        {"u-0042"},
			"U1999@PARTNER":    {"u-1999"},
			"u-000":            {"u-0000", "u-0001", "u-0002", "u-0003", "u-0004", "u-0005", "u-0006", "u-0007", "u-0008", "u-0009"},
		} {
			found, err := bulk.FindUsers(ctx, k8sClient, ns, bulk.UserQuery{Application: "support", Search: search})
			Expect(err).NotTo(HaveOccurred())
			Expect(names(found)).To(Equal(want), search)
		}

		By("locked users by status")
		found, err = bulk.FindUsers(ctx, k8sClient, ns, bulk.UserQuery{Application: "support", Statuses: []string{"Locked"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(HaveLen(25))

		_, err = bulk.FindUsers(ctx, k8sClient, ns, bulk.UserQuery{Application: "support", Statuses: []string{"Enabled"}})
		Expect(err).To(MatchError(ContainSubstring(`unknown status "Enabled"`)))
	})
})

var _ = Describe("F18 F27 F30 F32 F33 F24 changing external users", func() {
	var ns string

	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		newPortalOrganization(ctx, ns, false)
		newUser(ctx, ns, "erin", rosterv1.ExternalUserSpec{DisplayName: "Erin", Email: "erin@partner.example", Company: "Partner GmbH"}, nil)
		newUser(ctx, ns, "frank", rosterv1.ExternalUserSpec{DisplayName: "Frank", Phone: "+4915112345678", Access: rosterv1.ExternalAccessLocked}, nil)
		newUser(ctx, ns, "erin-billing", rosterv1.ExternalUserSpec{Application: "billing", DisplayName: "Erin", Email: "erin@partner.example"}, nil)
	})

	sel := func(names ...string) bulk.UserSelector {
		return bulk.UserSelector{Selector: bulk.Selector{Names: names}, Application: "support"}
	}

	It("locks and unlocks, unlinks from the company, one result per user", func(ctx SpecContext) {
		res, err := bulk.LockUsers(ctx, bulkClient(), ns, "", sel("erin", "frank", "erin-billing", "ghost"))
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{
			`erin changed: access "Enabled" → "Locked"`,
			`erin-billing failed: not changed: it is a user of application "billing", not "support"`,
			"frank unchanged: access is already Locked",
			"ghost failed: not found",
		}))
		Expect(getExternalUser(ctx, ns, "erin").Spec.Access).To(Equal(rosterv1.ExternalAccessLocked))
		Expect(getExternalUser(ctx, ns, "erin-billing").Spec.Access).To(Equal(rosterv1.ExternalAccessEnabled))

		res, err = bulk.UnlockUsers(ctx, bulkClient(), ns, "", sel("erin", "frank"))
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{`erin changed: access "Locked" → "Enabled"`, `frank changed: access "Locked" → "Enabled"`}))

		res, err = bulk.UnlinkUsers(ctx, bulkClient(), ns, "", sel("erin", "frank"))
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{`erin changed: company "Partner GmbH" → ""`, "frank unchanged: has no company"}))
		Expect(getExternalUser(ctx, ns, "erin").Spec.Company).To(BeEmpty())
	})

	It("changes nothing in a dry run", func(ctx SpecContext) {
		dry := client.NewDryRunClient(bulkClient())
		for _, op := range []func(context.Context, client.Client, string, string, bulk.UserSelector) (bulk.EditResult, error){
			bulk.LockUsers, bulk.UnlinkUsers, bulk.ResendWelcome, bulk.ResendConfirmation, bulk.Relink, bulk.DeleteUsers,
		} {
			res, err := op(ctx, dry, ns, "", sel("erin"))
			Expect(err).NotTo(HaveOccurred())
			Expect(res.OK()).To(BeTrue(), "%v", outcomes(res))
		}
		x := getExternalUser(ctx, ns, "erin")
		Expect(x.Spec.Access).To(Equal(rosterv1.ExternalAccessEnabled))
		Expect(x.Spec.Company).To(Equal("Partner GmbH"))
		Expect(x.Spec.ResendWelcomeRequests).To(BeZero())
		Expect(x.Spec.Invitation.LinkGeneration).To(BeZero())
	})

	It("deletes one application's user and leaves the same person's other one", func(ctx SpecContext) {
		res, err := bulk.DeleteUsers(ctx, bulkClient(), ns, "", bulk.UserSelector{Selector: bulk.Selector{LabelSelector: "!nothing"}, Application: "support"})
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{"erin deleted: erin@partner.example, user of support", "frank deleted: +4915112345678, user of support"}))
		Expect(names(externalUsers(ctx, ns))).To(Equal([]string{"erin-billing"}))
	})

	It("raises the resend counters and the link generation by one each time", func(ctx SpecContext) {
		res, err := bulk.ResendConfirmation(ctx, bulkClient(), ns, "", sel("erin", "frank"))
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{"erin changed: resendConfirmationRequests 0 → 1",
			"frank unchanged: has no email to send the confirmation to"}))
		res, err = bulk.ResendWelcome(ctx, bulkClient(), ns, "", sel("erin"))
		Expect(err).NotTo(HaveOccurred())
		res, err = bulk.ResendWelcome(ctx, bulkClient(), ns, "", sel("erin"))
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{"erin changed: resendWelcomeRequests 1 → 2"}))
		res, err = bulk.Relink(ctx, bulkClient(), ns, "", sel("erin", "frank"))
		Expect(err).NotTo(HaveOccurred())
		Expect(outcomes(res)).To(Equal([]string{"erin changed: invitation.linkGeneration 0 → 1", "frank changed: invitation.linkGeneration 0 → 1"}))
		x := getExternalUser(ctx, ns, "erin")
		Expect([]int64{int64(x.Spec.ResendConfirmationRequests), int64(x.Spec.ResendWelcomeRequests), x.Spec.Invitation.LinkGeneration}).
			To(Equal([]int64{1, 2, 1}))
	})

	It("prints the current link, and none while it is being replaced or after registration", func(ctx SpecContext) {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erin-portal-link"},
			Data: map[string][]byte{"link": []byte("https://join.acme.example/portal/abc")}}
		Expect(k8sClient.Create(ctx, secret)).To(Succeed())
		expires := metav1.NewTime(time.Now().Add(72 * time.Hour).Truncate(time.Second))
		x := getExternalUser(ctx, ns, "erin")
		x.Status = rosterv1.ExternalUserStatus{Phase: rosterv1.ExternalUserInvited,
			LinkSecretRef: &rosterv1.LocalObjectReference{Name: secret.Name}, LinkExpiresAt: &expires}
		Expect(k8sClient.Status().Update(ctx, x)).To(Succeed())

		links, err := bulk.Links(ctx, bulkClient(), ns, "", sel("erin", "frank"))
		Expect(err).NotTo(HaveOccurred())
		Expect(links).To(Equal([]bulk.Link{
			{Name: "erin", URL: "https://join.acme.example/portal/abc", ExpiresAt: expires.UTC()},
			{Name: "frank", Problem: "has no link yet: Roster makes it shortly after the user is added"},
		}))

		_, err = bulk.Relink(ctx, bulkClient(), ns, "", sel("erin"))
		Expect(err).NotTo(HaveOccurred())
		links, err = bulk.Links(ctx, bulkClient(), ns, "", sel("erin"))
		Expect(err).NotTo(HaveOccurred())
		Expect(links[0].URL).To(BeEmpty(), "the old link is not given once a new one was asked for")
		Expect(links[0].Problem).To(ContainSubstring("a new link (generation 1) is being made"))
	})
})
