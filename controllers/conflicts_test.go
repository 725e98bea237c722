package controllers_test

import (
	"context"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/controllers"
	"github.com/roster-dev/roster/internal/operator"
)

// Write conflicts: another writer got there first. A reconciler returns the error, is called
// again, and ends where it would have ended without the conflict. The manager is stopped so
// that only the reconciler under test acts.
var _ = Describe("write conflicts", func() {
	It("are retried, and the invitation ends with one member and one delivery", func(ctx context.Context) {
		ns := newNamespace(ctx)
		stopManager()
		<-managerDone
		DeferCleanup(startManager)

		inv := invitation(ns, "lee", rosterv1.InvitationMethodEmail, rosterv1.Invitee{Name: "Lee", Email: "lee@conflict.example"},
			func(i *rosterv1.Invitation) {
				i.Spec.InvitedBy, i.Spec.InviterRole = adminUser, rosterv1.RoleSuperAdmin
			})
		// With the manager down there is no webhook server either.
		restore := removeWebhooks(ctx, &admissionregistrationv1.MutatingWebhookConfigurationList{})
		DeferCleanup(removeWebhooks(ctx, &admissionregistrationv1.ValidatingWebhookConfigurationList{}))
		DeferCleanup(restore)
		Expect(k8sClient.Create(ctx, &rosterv1.Organization{
			ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns},
			Spec:       rosterv1.OrganizationSpec{DisplayName: "Acme", InvitationTTL: metav1.Duration{Duration: 168 * 3600e9}},
		})).To(Succeed())
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())

		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cacheOpts := operator.CacheOptions()
		cacheOpts.Scheme = operator.NewScheme()
		cch, err := cache.New(managerCfg, cacheOpts)
		Expect(err).NotTo(HaveOccurred())
		Expect(controllers.SetupIndexes(cctx, cch)).To(Succeed())
		go func() { _ = cch.Start(cctx) }()
		Expect(cch.WaitForCacheSync(cctx)).To(BeTrue())
		base, err := client.NewWithWatch(managerCfg, client.Options{Scheme: cacheOpts.Scheme, Cache: &client.CacheOptions{Reader: cch}})
		Expect(err).NotTo(HaveOccurred())

		var mu sync.Mutex
		injected := map[string]bool{}
		conflictOnce := func(what string) error {
			mu.Lock()
			defer mu.Unlock()
			if injected[what] {
				return nil
			}
			injected[what] = true
			return apierrors.NewConflict(schema.GroupResource{Group: "org.roster.dev", Resource: what}, "lee", nil)
		}
		c := interceptor.NewClient(base, interceptor.Funcs{
			Create: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if _, ok := obj.(*rosterv1.Member); ok {
					if err := conflictOnce("members"); err != nil {
						return err
					}
				}
				return cl.Create(ctx, obj, opts...)
			},
			SubResourcePatch: func(ctx context.Context, cl client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
				if i, ok := obj.(*rosterv1.Invitation); ok && i.Status.Phase == rosterv1.InvitationSent {
					if err := conflictOnce("invitations/status"); err != nil {
						return err
					}
				}
				return cl.SubResource(sub).Patch(ctx, obj, p, opts...)
			},
		})
		r := &controllers.InvitationReconciler{Client: c, Recorder: events.NewFakeRecorder(100), Clock: fakeClock,
			Notifications: controllers.Notifications{Notifier: notifier, APIReader: k8sClient}, PortalURL: "https://join.test"}

		var conflicts int
		Eventually(func(g Gomega) {
			_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: key(ns, "lee")})
			if apierrors.IsConflict(err) {
				conflicts++
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(k8sClient.Get(ctx, key(ns, "lee"), inv)).To(Succeed())
			g.Expect(inv.Status.Phase).To(Equal(rosterv1.InvitationSent))
		}, timeout, interval).Should(Succeed())

		Expect(injected).To(HaveKey("members"))
		Expect(injected).To(HaveKey("invitations/status"))
		Expect(conflicts).To(BeNumerically(">=", 2))
		members := &rosterv1.MemberList{}
		Expect(k8sClient.List(ctx, members, client.InNamespace(ns))).To(Succeed())
		Expect(members.Items).To(HaveLen(1))
		// The status write that recorded the send lost to the conflict, so the send is
		// repeated under the same key: at least once, and a receiver can tell.
		msgs := notifier.to("lee@conflict.example")
		Expect(len(msgs)).To(BeNumerically("<=", 2))
		for _, m := range msgs {
			Expect(m.Message.Key).To(Equal(string(inv.UID) + "/invitation/0"))
		}
		Expect(inv.Status.Deliveries).To(HaveLen(1))
		Expect(inv.Status.Deliveries[0].State).To(Equal(controllers.DeliverySent))
	})
})
