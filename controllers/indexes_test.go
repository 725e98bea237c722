package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/controllers"
	"github.com/roster-dev/roster/internal/operator"
)

var _ = Describe("Cache indexes", func() {
	It("TestNamespacedIndexesServeTheCachesLists: keyed by namespace only, they answer a List in one namespace and nothing else", func(ctx context.Context) {
		nsA, nsB := newNamespace(ctx), newNamespace(ctx)
		for _, ns := range []string{nsA, nsB} {
			newOrganization(ctx, ns)
			member(ctx, ns, "sam", "Sam@Index.example", rosterv1.RoleMember, func(m *rosterv1.Member) { m.Spec.Phone = "+4930555" })
		}

		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		opts := operator.CacheOptions()
		opts.Scheme = operator.NewScheme()
		cch, err := cache.New(managerCfg, opts)
		Expect(err).NotTo(HaveOccurred())
		Expect(controllers.SetupIndexes(cctx, cch)).To(Succeed())
		go func() { _ = cch.Start(cctx) }()
		Expect(cch.WaitForCacheSync(cctx)).To(BeTrue())

		for field, value := range map[string]string{
			rosterv1.IndexEmail:        "sam@index.example",
			rosterv1.IndexPhone:        "+4930555",
			rosterv1.IndexUsername:     "sam",
			rosterv1.IndexOrganization: "acme",
		} {
			list := &rosterv1.MemberList{}
			Expect(cch.List(ctx, list, client.InNamespace(nsA), client.MatchingFields{field: value})).To(Succeed())
			Expect(list.Items).To(HaveLen(1), "%s=%s in %s", field, value, nsA)
			Expect(list.Items[0].Namespace).To(Equal(nsA))

			// Across namespaces the index has no keys: Roster never asks that, and the keys
			// it would need are what this index saves.
			all := &rosterv1.MemberList{}
			Expect(cch.List(ctx, all, client.MatchingFields{field: value})).To(Succeed())
			Expect(all.Items).To(BeEmpty(), "%s=%s across namespaces", field, value)
		}
	})
})
