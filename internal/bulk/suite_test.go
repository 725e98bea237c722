package bulk_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	rosterv1 "github.com/roster-dev/roster/api/v1alpha1"
	"github.com/roster-dev/roster/internal/testenv"
)

// These tests run the bulk operations against a real kube-apiserver with Roster's CRDs and
// no controllers, so what the schema and admission refuse is what an admin would see.

var (
	testEnv   *envtest.Environment
	k8sClient client.WithWatch
)

func TestBulk(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Bulk operations suite")
}

var _ = BeforeSuite(func() { testEnv, k8sClient = testenv.Start() })

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// bulkClient is the client the operations under test get. It fails the test on any Update:
// the package promises merge patches only, so that it never overwrites what controllers or
// other admins wrote meanwhile.
func bulkClient() client.Client {
	return interceptor.NewClient(k8sClient, interceptor.Funcs{
		Update: func(context.Context, client.WithWatch, client.Object, ...client.UpdateOption) error {
			defer GinkgoRecover()
			Fail("bulk used Update; it must patch")
			return nil
		},
	})
}

func newNamespace(ctx context.Context) string { return testenv.Namespace(ctx, k8sClient, "bulk") }

// newOrganization creates the Organization the bulk operations check for.
func newOrganization(ctx context.Context, ns, name string) {
	org := &rosterv1.Organization{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       rosterv1.OrganizationSpec{DisplayName: name},
	}
	Expect(k8sClient.Create(ctx, org)).To(Succeed())
}

// newMember creates a Member and, with no controller running, gives it the phase (and
// sign-up time) a test needs through the status subresource, as the Member controller
// would.
func newMember(ctx context.Context, ns, name string, spec rosterv1.MemberSpec, phase rosterv1.MemberPhase, signedUp *time.Time) *rosterv1.Member {
	m := &rosterv1.Member{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if phase != "" {
		m.Labels = map[string]string{rosterv1.LabelPhase: string(phase)}
	}
	Expect(k8sClient.Create(ctx, m)).To(Succeed())
	if phase != "" || signedUp != nil {
		m.Status.Phase = phase
		if signedUp != nil {
			m.Status.SignedUpAt = &metav1.Time{Time: *signedUp}
		}
		Expect(k8sClient.Status().Update(ctx, m)).To(Succeed())
	}
	return m
}

func getMember(ctx context.Context, ns, name string) *rosterv1.Member {
	m := &rosterv1.Member{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m)).To(Succeed())
	return m
}

func invitations(ctx context.Context, ns string) []rosterv1.Invitation {
	list := &rosterv1.InvitationList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}
