package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/operator"
)

// startShard starts a manager for one shard, as a Deployment started with --shard would,
// and returns it and how to stop it. Only one of them serves the webhooks, on envtest's
// port; a named shard without them caches only its own organizations' children, as
// cmd/manager does.
func startShard(shard string, webhooks bool) (manager.Manager, func()) {
	opts := testEnv.WebhookInstallOptions
	mopts := manager.Options{
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if webhooks {
		mopts.WebhookServer = webhook.NewServer(webhook.Options{Host: opts.LocalServingHost, Port: opts.LocalServingPort, CertDir: opts.LocalServingCertDir})
	}
	newManager := operator.NewManager
	if operator.NarrowsCache(shard, webhooks) {
		newManager = func(cfg *rest.Config, o manager.Options) (manager.Manager, error) {
			return operator.NewShardManager(cfg, o, shard)
		}
	}
	mgr, err := newManager(managerCfg, mopts)
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	Expect(operator.Setup(ctx, mgr, operator.Options{
		Clock: fakeClock, Notifier: notifier, PortalURL: "https://join.test", TrustedUsers: []string{managerUser},
		PortalUsers: []string{portalUser}, Webhooks: webhooks, Shard: shard,
	})).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
	return mgr, func() { cancel(); <-done }
}

var _ = Describe("Shards", Ordered, func() {
	var stopA, stopDefault func()
	var shardA manager.Manager
	BeforeAll(func() {
		stopManager()
		<-managerDone
		shardA, stopA = startShard("a", false)
		_, stopDefault = startShard(rosterv1.DefaultShard, true)
	})
	AfterAll(func() {
		stopA()
		stopDefault()
		startManager()
	})

	It("two managers, one a shard, split 100 organizations and act on no object both", func(ctx context.Context) {
		ns := newNamespace(ctx)
		const n = 100
		shardOf := func(i int) string {
			if i%2 == 0 {
				return "a"
			}
			return rosterv1.DefaultShard // unlabelled: the default shard's
		}
		for i := range n {
			org := &rosterv1.Organization{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("org-%d", i), Namespace: ns},
				Spec:       rosterv1.OrganizationSpec{DisplayName: fmt.Sprintf("Org %d", i), Admins: []rosterv1.Subject{{Kind: "User", Name: adminUser}}},
			}
			if shardOf(i) == "a" {
				org.Labels = map[string]string{rosterv1.LabelShard: "a"}
			}
			Eventually(func() error { return k8sClient.Create(ctx, org) }, timeout, interval).Should(Succeed())
		}
		for i := range n {
			inv := invitation(ns, fmt.Sprintf("inv-%d", i), rosterv1.InvitationMethodLink, rosterv1.Invitee{Name: "Someone"}, func(inv *rosterv1.Invitation) {
				inv.Spec.OrganizationRef.Name = fmt.Sprintf("org-%d", i)
				inv.Labels = map[string]string{rosterv1.LabelShard: "elsewhere"} // what a client writes does not route it
			})
			Eventually(func() error { return adminClient.Create(ctx, inv) }, timeout, interval).Should(Succeed())
			if shardOf(i) == "a" {
				Expect(inv.Labels).To(HaveKeyWithValue(rosterv1.LabelShard, "a"), "born in its organization's shard")
			} else {
				Expect(inv.Labels).NotTo(HaveKey(rosterv1.LabelShard), "born in its organization's shard")
			}
		}

		By("every invitation sent, its Member made, and the children labelled with their organization's shard")
		Eventually(func(g Gomega) {
			invs := &rosterv1.InvitationList{}
			g.Expect(k8sClient.List(ctx, invs, client.InNamespace(ns))).To(Succeed())
			g.Expect(invs.Items).To(HaveLen(n))
			for _, inv := range invs.Items {
				g.Expect(inv.Status.Phase).To(Equal(rosterv1.InvitationSent), inv.Name)
			}
			ms := &rosterv1.MemberList{}
			g.Expect(k8sClient.List(ctx, ms, client.InNamespace(ns))).To(Succeed())
			g.Expect(ms.Items).To(HaveLen(n))
		}, 60*time.Second, 200*time.Millisecond).Should(Succeed())
		invs := &rosterv1.InvitationList{}
		Expect(k8sClient.List(ctx, invs, client.InNamespace(ns), client.MatchingLabels{rosterv1.LabelShard: "a"})).To(Succeed())
		Expect(invs.Items).To(HaveLen(n / 2))
		ms := &rosterv1.MemberList{}
		Expect(k8sClient.List(ctx, ms, client.InNamespace(ns), client.MatchingLabels{rosterv1.LabelShard: "a"})).To(Succeed())
		Expect(ms.Items).To(HaveLen(n/2), "members are born in their invitation's shard")

		By("shard a's manager caches its own organizations' children only, and every Organization")
		Expect(shardA.GetCache().List(ctx, ms, client.InNamespace(ns))).To(Succeed())
		Expect(ms.Items).To(HaveLen(n / 2))
		for _, m := range ms.Items {
			Expect(m.Labels).To(HaveKeyWithValue(rosterv1.LabelShard, "a"), m.Name)
		}
		Expect(shardA.GetCache().List(ctx, invs, client.InNamespace(ns))).To(Succeed())
		Expect(invs.Items).To(HaveLen(n / 2))
		orgs := &rosterv1.OrganizationList{}
		Expect(shardA.GetCache().List(ctx, orgs, client.InNamespace(ns))).To(Succeed())
		Expect(orgs.Items).To(HaveLen(n))

		By("each object's Events come from its own shard's manager only")
		// Events are recorded in the background, after the status that says Sent.
		Eventually(func(g Gomega) {
			list := &eventsv1List{}
			g.Expect(k8sClient.List(ctx, &list.EventList, client.InNamespace(ns))).To(Succeed())
			actedOn := map[string]map[string]bool{} // object -> shards that recorded Events on it
			for _, e := range list.Items {
				shard := e.ReportingController[strings.LastIndex(e.ReportingController, "-")+1:]
				id := e.Regarding.Kind + "/" + e.Regarding.Name
				if actedOn[id] == nil {
					actedOn[id] = map[string]bool{}
				}
				actedOn[id][shard] = true
			}
			for i := range n {
				for _, id := range []string{fmt.Sprintf("Organization/org-%d", i), fmt.Sprintf("Invitation/inv-%d", i)} {
					g.Expect(actedOn[id]).To(Equal(map[string]bool{shardOf(i): true}), "%s", id)
				}
			}
		}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
	})

	It("an organization moves to a shard whose cache did not hold its children, and back, and is deleted there", func(ctx context.Context) {
		ns := newNamespace(ctx)
		org := &rosterv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "mover", Namespace: ns},
			Spec: rosterv1.OrganizationSpec{DisplayName: "Mover", Admins: []rosterv1.Subject{{Kind: "User", Name: adminUser}}}}
		Eventually(func() error { return k8sClient.Create(ctx, org) }, timeout, interval).Should(Succeed())
		for i := range 3 {
			inv := invitation(ns, fmt.Sprintf("inv-%d", i), rosterv1.InvitationMethodLink, rosterv1.Invitee{Name: "Someone"}, func(inv *rosterv1.Invitation) {
				inv.Spec.OrganizationRef.Name = "mover"
			})
			Eventually(func() error { return adminClient.Create(ctx, inv) }, timeout, interval).Should(Succeed())
		}
		shardOfChildren := func(g Gomega) map[string]string {
			got := map[string]string{}
			invs, ms := &rosterv1.InvitationList{}, &rosterv1.MemberList{}
			g.Expect(k8sClient.List(ctx, invs, client.InNamespace(ns))).To(Succeed())
			g.Expect(k8sClient.List(ctx, ms, client.InNamespace(ns))).To(Succeed())
			for _, o := range invs.Items {
				got["Invitation/"+o.Name] = o.Labels[rosterv1.LabelShard]
			}
			for _, o := range ms.Items {
				got["Member/"+o.Name] = o.Labels[rosterv1.LabelShard]
			}
			return got
		}
		Eventually(func(g Gomega) {
			got := shardOfChildren(g)
			g.Expect(got).To(HaveLen(6), "three invitations, each with its Member")
			for id, shard := range got {
				g.Expect(shard).To(BeEmpty(), id)
			}
		}, 30*time.Second, interval).Should(Succeed())

		moveTo := func(shard string) {
			Expect(patchLabels(ctx, org, shard)).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, key(ns, "mover"), org)).To(Succeed())
				g.Expect(org.Status.Shard).To(Equal(shard))
			}, 30*time.Second, 50*time.Millisecond).Should(Succeed())
			// status.shard says that every child carries the label, so they all do by now.
			for id, got := range shardOfChildren(Default) {
				Expect(got).To(Equal(shard), id)
			}
		}
		By("to shard a, whose cache held none of its children")
		moveTo("a")
		Eventually(func(g Gomega) {
			ms := &rosterv1.MemberList{}
			g.Expect(shardA.GetCache().List(ctx, ms, client.InNamespace(ns))).To(Succeed())
			g.Expect(ms.Items).To(HaveLen(3))
		}, timeout, interval).Should(Succeed())
		By("back to the default shard")
		moveTo("")
		By("to shard a again, and deleted there")
		moveTo("a")
		Expect(adminClient.Delete(ctx, org)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(shardOfChildren(g)).To(BeEmpty())
			g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, key(ns, "mover"), org))).To(BeTrue())
		}, 30*time.Second, interval).Should(Succeed())
	})
})

// patchLabels sets, or with "" removes, an Organization's shard label.
func patchLabels(ctx context.Context, org *rosterv1.Organization, shard string) error {
	value := "null"
	if shard != "" {
		value = fmt.Sprintf("%q", shard)
	}
	return k8sClient.Patch(ctx, org, client.RawPatch(types.MergePatchType,
		[]byte(fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, rosterv1.LabelShard, value))))
}
